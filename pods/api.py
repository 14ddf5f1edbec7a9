"""The REST API of pods, GPU types, data centres, templates and network volumes. Every write
goes through pods.services (the console's one write path), so it is validated, audited and
billed exactly as the console does it; the deploy is validated by the wizard's own form."""

from django.db.models import QuerySet
from django.http import QueryDict
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from api.authentication import PodPrincipal
from api.viewsets import TeamScopedViewSet
from billing.money import MAX_DIGITS
from pods import services
from pods.forms import DeployForm, NetworkVolumeForm, TemplateForm, apply_template, lookup_text
from pods.models import CloudType, DataCenter, GpuType, NetworkVolume, Pod, PodTemplate
from pods.scheduling import free_gpu_counts

# Serializers ---------------------------------------------------------------------------------


class EnvVarSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=100)
    value = serializers.CharField(max_length=4096, allow_blank=True, trim_whitespace=False)


class PortSerializer(serializers.Serializer):
    port = serializers.IntegerField()
    protocol = serializers.CharField()


class StoredRowsField(serializers.ReadOnlyField):
    """A stored list of dicts (a pod's env or ports, validated when written) shown with just
    `keys`: one comprehension instead of a nested serializer a row, which was a tenth of the
    pod list's serializing time (bench/api.py)."""

    keys: tuple[str, ...] = ()

    def to_representation(self, value: list[dict]) -> list[dict]:
        return [{key: row[key] for key in self.keys} for row in value]


@extend_schema_field(EnvVarSerializer(many=True))
class EnvRowsField(StoredRowsField):
    keys = ("key", "value")


@extend_schema_field(PortSerializer(many=True))
class PortRowsField(StoredRowsField):
    keys = ("port", "protocol")


class PodSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    gpu_type = serializers.CharField(source="gpu_type_id", allow_null=True)
    cpu_instance = serializers.CharField(source="cpu_instance_id", allow_null=True)
    data_center = serializers.CharField(source="machine.data_center_id")
    # null when the pod has none: allow_null puts that in the schema (schemathesis found it).
    template = serializers.CharField(source="template.public_id", default=None, allow_null=True)
    network_volume = serializers.CharField(
        source="network_volume.public_id", default=None, allow_null=True
    )
    env = EnvRowsField()
    ports = PortRowsField()
    price_per_hour = serializers.SerializerMethodField()

    class Meta:
        model = Pod
        fields = [
            "id",
            "name",
            "status",
            "status_reason",
            "cloud_type",
            "data_center",
            "gpu_type",
            "gpu_count",
            "requested_gpu_count",
            "cpu_instance",
            "vcpu",
            "memory_gb",
            "image",
            "container_disk_gb",
            "volume_gb",
            "volume_mount_path",
            "network_volume",
            "template",
            "start_command",
            "env",
            "ports",
            "pricing",
            "bid_per_gpu",
            "price_per_hour",
            "created_at",
            "started_at",
            "stopped_at",
            "terminated_at",
        ]

    @extend_schema(responses=serializers.DecimalField(max_digits=MAX_DIGITS, decimal_places=10))
    def get_price_per_hour(self, pod: Pod) -> str:
        return str(pod.price().total)


class PodCreateSerializer(serializers.Serializer):
    """What a deploy takes: the wizard's fields, with env and ports as JSON lists. Only the
    shapes are checked here; every rule is the wizard's form's (pods.forms.DeployForm)."""

    compute = serializers.ChoiceField(choices=["gpu", "cpu"], default="gpu")
    cloud_type = serializers.ChoiceField(choices=CloudType.choices, default=CloudType.SECURE)
    data_center = serializers.CharField(required=False, allow_blank=True)
    gpu_type = serializers.CharField(required=False, allow_blank=True)
    gpu_count = serializers.IntegerField(required=False, default=1)
    cpu_instance = serializers.CharField(required=False, allow_blank=True)
    template = serializers.CharField(required=False, allow_blank=True)
    name = serializers.CharField(required=False, allow_blank=True)
    image = serializers.CharField(required=False)
    container_disk_gb = serializers.IntegerField(required=False)
    volume_gb = serializers.IntegerField(required=False)
    volume_mount_path = serializers.CharField(required=False)
    network_volume = serializers.CharField(required=False, allow_blank=True)
    start_command = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    env = EnvVarSerializer(many=True, required=False, max_length=50)
    http_ports = serializers.ListField(child=serializers.IntegerField(), required=False)
    tcp_ports = serializers.ListField(child=serializers.IntegerField(), required=False)
    pricing = serializers.ChoiceField(choices=Pod.Pricing.choices, default=Pod.Pricing.ON_DEMAND)
    bid_per_gpu = serializers.DecimalField(
        max_digits=10, decimal_places=4, required=False, allow_null=True
    )


DEPLOY_DEFAULTS = {
    "container_disk_gb": "10",
    "volume_gb": "20",
    "volume_mount_path": "/workspace",
    "image": "",
}


def _ports_text(ports: list[int]) -> str:
    return ", ".join(str(port) for port in ports)


def wizard_data(team, values: dict) -> QueryDict:
    """The API's JSON as the wizard's form data: a template's values first (as picking it in
    the wizard prefills them), then every field the client sent."""
    data = QueryDict(mutable=True)
    data.update(DEPLOY_DEFAULTS)
    template_id = lookup_text(values.get("template"))
    template = PodTemplate.objects.visible_to(team).filter(public_id=template_id).first()
    if template is not None:
        apply_template(data, template)
    for name, value in values.items():
        if name == "env":
            for key in [k for k in data if k.startswith("env_")]:
                del data[key]
            for i, row in enumerate(value):
                data[f"env_key_{i}"], data[f"env_value_{i}"] = row["key"], row["value"]
            data["env_rows"] = str(len(value))
        elif name in ("http_ports", "tcp_ports"):
            data[name] = _ports_text(value)
        elif value is not None:
            data[name] = str(value)
    return data


def allowed_gpu_counts(data: QueryDict) -> list[int]:
    """The GPU counts the wizard offers for the chosen type: up to its largest machine."""
    center = lookup_text(data.get("data_center"))
    cloud = data.get("cloud_type") if data.get("cloud_type") in CloudType.values else None
    counts = free_gpu_counts(cloud_type=cloud, data_center=center)
    largest = counts.get(data.get("gpu_type"), (0, 0, 0))[2]
    return list(range(1, largest + 1)) or [1]


def form_errors(form) -> dict[str, list[str]]:
    """The form's errors under the API's field names (env rows as `env`)."""
    errors: dict[str, list[str]] = {}
    for name, messages in form.errors.items():
        field = "env" if name.startswith("env_") else name
        errors.setdefault("non_field_errors" if field == "__all__" else field, []).extend(messages)
    return errors


# Viewsets -----------------------------------------------------------------------------------


class PodViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TeamScopedViewSet):
    """The team's pods. `?status=running` (comma-separated for several) filters the list."""

    # Serverless workers' pods are the autoscaler's, shown on their endpoint.
    queryset = Pod.objects.user_pods().select_related(
        "machine", "template", "network_volume", "gpu_type", "cpu_instance"
    )
    serializer_class = PodSerializer
    capabilities = {
        "list": "use",
        "retrieve": "use",
        "create": "deploy",
        "stop": "deploy",
        "start": "deploy",
        "terminate": "deploy",
    }

    def get_queryset(self) -> QuerySet:
        pods = super().get_queryset().order_by("-created_at", "-id")
        if self.action == "list" and self.request.query_params.get("status"):
            wanted = self.request.query_params["status"].lower().split(",")
            unknown = [s for s in wanted if s not in Pod.Status.values]
            if unknown:
                raise ValidationError({"status": [f"Unknown status: {', '.join(unknown)}."]})
            pods = pods.filter(status__in=wanted)
        return pods

    @extend_schema(
        parameters=[OpenApiParameter("status", str, description="e.g. running or running,exited")]
    )
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=PodCreateSerializer, responses={201: PodSerializer})
    def create(self, request: Request) -> Response:
        shape = PodCreateSerializer(data=request.data)
        shape.is_valid(raise_exception=True)
        data = wizard_data(self.team, shape.validated_data)
        form = DeployForm(data, team=self.team, gpu_counts=allowed_gpu_counts(data))
        if not form.is_valid():
            raise ValidationError(form_errors(form))
        try:
            pod = services.deploy_pod(actor=request.user, team=self.team, request=form.to_request())
        except services.PodError as error:
            raise ValidationError({error.field or "non_field_errors": [str(error)]}) from error
        return Response(self.get_serializer(pod).data, status=status.HTTP_201_CREATED)

    def _run(self, verb, **kwargs) -> Response:
        try:
            pod = verb(actor=self.request.user, pod=self.get_object(), **kwargs)
        except services.PodError as error:
            raise ValidationError({"non_field_errors": [str(error)]}) from error
        return Response(self.get_serializer(pod).data)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, public_id: str) -> Response:
        return self._run(services.stop_pod)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def start(self, request: Request, public_id: str) -> Response:
        return self._run(services.start_pod)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def terminate(self, request: Request, public_id: str) -> Response:
        return self._run(services.terminate_pod)


class GpuTypeSerializer(serializers.ModelSerializer):
    free = serializers.SerializerMethodField(help_text="Free GPUs of this type in all machines.")
    max_per_pod = serializers.SerializerMethodField(help_text="Most free on one machine.")

    class Meta:
        model = GpuType
        fields = [
            "id",
            "display_name",
            "manufacturer",
            "memory_gb",
            "secure_price",
            "community_price",
            "min_bid",
            "free",
            "max_per_pod",
        ]

    def _counts(self, gpu: GpuType) -> tuple[int, int, int]:
        return self.context["free_counts"].get(gpu.id, (0, 0, 0))

    def get_free(self, gpu: GpuType) -> int:
        return self._counts(gpu)[0]

    def get_max_per_pod(self, gpu: GpuType) -> int:
        return self._counts(gpu)[1]


class CatalogueViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TeamScopedViewSet):
    """Rows every team sees alike (no team column): still asked through a team's membership."""

    capabilities = {"list": "use", "retrieve": "use"}
    lookup_field = "pk"
    lookup_value_regex = "[^/]+"
    pagination_class = None

    def get_queryset(self) -> QuerySet:
        return self.queryset.all()


class GpuTypeViewSet(CatalogueViewSet):
    """Active GPU types with prices per GPU per hour and free counts, as the wizard shows
    them; `?cloud_type=` and `?data_center=` narrow the counts."""

    queryset = GpuType.objects.filter(is_active=True)
    serializer_class = GpuTypeSerializer

    def get_serializer_context(self) -> dict:
        params = self.request.query_params
        cloud = params.get("cloud_type") if params.get("cloud_type") in CloudType.values else None
        center = lookup_text(params.get("data_center"))
        counts = free_gpu_counts(cloud_type=cloud, data_center=center)
        return {**super().get_serializer_context(), "free_counts": counts}


class DataCenterSerializer(serializers.ModelSerializer):
    class Meta:
        model = DataCenter
        fields = ["id", "name", "country"]


class DataCenterViewSet(CatalogueViewSet):
    queryset = DataCenter.objects.all()
    serializer_class = DataCenterSerializer


class TemplateSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    is_official = serializers.BooleanField(read_only=True)
    env = EnvVarSerializer(many=True)
    ports = PortSerializer(many=True)

    class Meta:
        model = PodTemplate
        fields = [
            "id",
            "name",
            "image",
            "container_disk_gb",
            "volume_gb",
            "volume_mount_path",
            "start_command",
            "env",
            "ports",
            "is_serverless",
            "is_public",
            "is_official",
            "readme",
            "created_at",
        ]


class TemplateCreateSerializer(serializers.Serializer):
    name = serializers.CharField()
    image = serializers.CharField()
    container_disk_gb = serializers.IntegerField(required=False, default=10)
    volume_gb = serializers.IntegerField(required=False, default=20)
    volume_mount_path = serializers.CharField(required=False, default="/workspace")
    start_command = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    env = EnvVarSerializer(many=True, required=False, max_length=50)
    http_ports = serializers.ListField(child=serializers.IntegerField(), required=False)
    tcp_ports = serializers.ListField(child=serializers.IntegerField(), required=False)
    is_serverless = serializers.BooleanField(required=False, default=False)
    is_public = serializers.BooleanField(required=False, default=False)
    readme = serializers.CharField(required=False, allow_blank=True)


class TemplateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TeamScopedViewSet):
    """Templates the team may use: its own, official ones and public ones."""

    queryset = PodTemplate.objects.all()
    serializer_class = TemplateSerializer
    capabilities = {"list": "use", "retrieve": "use", "create": "deploy"}

    def get_queryset(self) -> QuerySet:
        return PodTemplate.objects.visible_to(self.team).select_related("team").order_by("id")

    @extend_schema(request=TemplateCreateSerializer, responses={201: TemplateSerializer})
    def create(self, request: Request) -> Response:
        if isinstance(request.user, PodPrincipal):
            # A template records its creator, and a pod (attacker-controlled) is nobody: the
            # same refusal as GraphQL's saveTemplate.
            raise PermissionDenied("A pod's own API key cannot create templates.")
        shape = TemplateCreateSerializer(data=request.data)
        shape.is_valid(raise_exception=True)
        data = wizard_data(self.team, {**shape.validated_data, "template": None})
        data.setdefault("env_rows", "0")
        form = TemplateForm(data)
        if not form.is_valid():
            raise ValidationError(form_errors(form))
        template = services.create_template(actor=request.user, team=self.team, **form.values())
        return Response(self.get_serializer(template).data, status=status.HTTP_201_CREATED)


class NetworkVolumeSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    data_center = serializers.CharField(source="data_center_id")

    class Meta:
        model = NetworkVolume
        fields = ["id", "name", "size_gb", "data_center", "created_at"]


class NetworkVolumeCreateSerializer(serializers.Serializer):
    name = serializers.CharField()
    size_gb = serializers.IntegerField()
    data_center = serializers.CharField()


class NetworkVolumeViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, TeamScopedViewSet
):
    queryset = NetworkVolume.objects.order_by("-created_at", "-id")
    serializer_class = NetworkVolumeSerializer
    capabilities = {
        "list": "use",
        "retrieve": "use",
        "create": "deploy",
        "destroy": "deploy",
    }

    @extend_schema(request=NetworkVolumeCreateSerializer, responses={201: NetworkVolumeSerializer})
    def create(self, request: Request) -> Response:
        shape = NetworkVolumeCreateSerializer(data=request.data)
        shape.is_valid(raise_exception=True)
        form = NetworkVolumeForm(shape.validated_data)
        if not form.is_valid():
            raise ValidationError(form_errors(form))
        volume = services.create_network_volume(
            actor=request.user, team=self.team, **form.cleaned_data
        )
        return Response(self.get_serializer(volume).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: NetworkVolume) -> None:
        try:
            services.delete_network_volume(actor=self.request.user, volume=instance)
        except services.PodError as error:
            raise ValidationError({"non_field_errors": [str(error)]}) from error
