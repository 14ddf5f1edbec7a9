"""The GPU catalogue, machines, templates, volumes and pods.

Free capacity is never stored: a machine's free GPUs are its GPU count minus the GPUs of the pods
placed on it that hold resources (Pod.HOLDING), computed by `MachineQuerySet.with_capacity()`.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from billing.money import money_field
from pods.runtime import BACKENDS, runtime_choices
from teams.models import Team, new_public_id


class CloudType(models.TextChoices):
    SECURE = "SECURE", "Secure Cloud"
    COMMUNITY = "COMMUNITY", "Community Cloud"


class GpuType(models.Model):
    """A GPU model as RunPod names it, e.g. id "NVIDIA A100 80GB PCIe", display "A100 PCIe"."""

    id = models.CharField(max_length=64, primary_key=True)
    display_name = models.CharField(max_length=64)
    manufacturer = models.CharField(max_length=16, default="NVIDIA")
    memory_gb = models.PositiveIntegerField()
    secure_price = money_field(help_text="On-demand $/h per GPU in Secure Cloud")
    community_price = money_field(help_text="On-demand $/h per GPU in Community Cloud")
    min_bid = money_field(help_text="Minimum spot bid, $/h per GPU")
    serverless_price = money_field(
        default=0, help_text="Serverless worker $/h per GPU, billed per second of ready time"
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["-memory_gb", "display_name"]
        verbose_name = "GPU type"

    def __str__(self) -> str:
        return self.display_name

    def price(self, cloud_type: str) -> Decimal:
        return self.secure_price if cloud_type == CloudType.SECURE else self.community_price


class CpuInstanceType(models.Model):
    id = models.CharField(max_length=32, primary_key=True)
    name = models.CharField(max_length=64)
    vcpu = models.PositiveIntegerField()
    memory_gb = models.PositiveIntegerField()
    price = money_field(help_text="On-demand $/h")
    serverless_price = money_field(
        default=0, help_text="Serverless worker $/h, billed per second of ready time"
    )

    class Meta:
        ordering = ["vcpu", "memory_gb"]
        verbose_name = "CPU instance type"

    def __str__(self) -> str:
        return f"{self.name} ({self.vcpu} vCPU, {self.memory_gb} GB)"


class DataCenter(models.Model):
    id = models.CharField(max_length=16, primary_key=True)  # e.g. "EU-RO-1"
    name = models.CharField(max_length=100)
    country = models.CharField(max_length=2)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.id


# SPEC.md (Hosting): machines under 98 % reliability leave the GPU pool.
MIN_RELIABILITY = Decimal("98")


class MachineQuerySet(models.QuerySet):
    def available(self, team: Team | None = None) -> MachineQuerySet:
        """Machines offered to new deploys: listed, online, at or above the reliability floor
        (SPEC.md: under 98 % a machine leaves the GPU pool), and out of burn-in, except a
        machine in burn-in for its own host team's self-rental test."""
        pool = Q(burn_in=False) | Q(burn_in=True, host_team=team) if team else Q(burn_in=False)
        return self.filter(pool, is_listed=True, is_online=True, reliability__gte=MIN_RELIABILITY)

    def with_capacity(self) -> MachineQuerySet:
        """Annotate used_/free_ GPUs, vCPU and RAM from the pods holding resources."""
        holding = Q(pods__status__in=Pod.HOLDING)
        return self.annotate(
            used_gpus=Coalesce(Sum("pods__gpu_count", filter=holding), 0),
            used_vcpu=Coalesce(Sum("pods__vcpu", filter=holding), 0),
            used_memory_gb=Coalesce(Sum("pods__memory_gb", filter=holding), 0),
        ).annotate(
            free_gpus=models.F("gpu_count") - models.F("used_gpus"),
            free_vcpu=models.F("vcpu") - models.F("used_vcpu"),
            free_memory_gb=models.F("memory_gb") - models.F("used_memory_gb"),
        )


class Machine(models.Model):
    """A host that runs pods: GPUs of one type (or none, for CPU pods), in one data centre."""

    public_id = models.CharField(max_length=14, unique=True, default=new_public_id)
    name = models.CharField(max_length=100)
    data_center = models.ForeignKey(DataCenter, models.PROTECT, related_name="machines")
    cloud_type = models.CharField(max_length=10, choices=CloudType.choices)
    gpu_type = models.ForeignKey(
        GpuType, models.PROTECT, null=True, blank=True, related_name="machines"
    )
    gpu_count = models.PositiveIntegerField(default=0)
    vcpu = models.PositiveIntegerField()
    memory_gb = models.PositiveIntegerField()
    disk_gb = models.PositiveIntegerField()
    runtime = models.CharField(max_length=20, choices=runtime_choices, default="process")
    runtime_settings = models.JSONField(default=dict, blank=True)
    is_listed = models.BooleanField(default=True, help_text="Offered to new deploys")
    is_online = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Hosting (hosting app): the host team that lists the machine (None: the platform's own),
    # burn-in (offered only to that team), the reliability score in percent that hosting
    # keeps current, and the host's minimum spot bid per GPU (None: the GPU type's).
    host_team = models.ForeignKey(
        Team, models.PROTECT, null=True, blank=True, related_name="hosted_machines"
    )
    burn_in = models.BooleanField(default=False)
    reliability = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("100"))
    min_bid_per_gpu = money_field(null=True, blank=True)

    objects = MachineQuerySet.as_manager()

    class Meta:
        ordering = ["data_center", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def vcpu_per_gpu(self) -> int:
        return self.vcpu // self.gpu_count if self.gpu_count else self.vcpu

    @property
    def memory_gb_per_gpu(self) -> int:
        return self.memory_gb // self.gpu_count if self.gpu_count else self.memory_gb

    def free_gpus(self) -> int:
        return Machine.objects.with_capacity().get(pk=self.pk).free_gpus

    @property
    def gpus_simulated(self) -> bool:
        """GPUs this machine lists but cannot hand to pods (its runtime passes no devices)."""
        backend = BACKENDS.get(self.runtime)
        return bool(self.gpu_count) and not (backend and backend.gpu_devices)


class TemplateQuerySet(models.QuerySet):
    def visible_to(self, team: Team) -> TemplateQuerySet:
        """Official templates, the team's own, and other teams' public ones."""
        return self.filter(Q(team=None) | Q(team=team) | Q(is_public=True))

    def for_pods(self) -> TemplateQuerySet:
        return self.filter(is_serverless=False)

    def runs_on_any(self, runtimes) -> TemplateQuerySet:
        """Templates that run on at least one of `runtimes` (those that declare none run
        anywhere)."""
        fits = Q(runtimes=[])
        for runtime in runtimes:
            fits |= Q(runtimes__contains=[runtime])
        return self.filter(fits)

    def offered(self) -> TemplateQuerySet:
        """Templates some listed, online machine can run: the ones the wizard offers."""
        runtimes = Machine.objects.available().order_by().values_list("runtime", flat=True)
        return self.runs_on_any(sorted(set(runtimes)))


class PodTemplate(models.Model):
    """A container image plus its configuration. team=None marks an official template."""

    public_id = models.CharField(max_length=14, unique=True, default=new_public_id)
    team = models.ForeignKey(
        Team, models.CASCADE, null=True, blank=True, related_name="pod_templates"
    )
    name = models.CharField(max_length=100)
    image = models.CharField(max_length=255)
    container_disk_gb = models.PositiveIntegerField(default=10)
    volume_gb = models.PositiveIntegerField(default=20)
    volume_mount_path = models.CharField(max_length=255, default="/workspace")
    # [{"port": 8888, "protocol": "http", "label": "Jupyter Lab"}]; the label is optional.
    ports = models.JSONField(default=list, blank=True)
    env = models.JSONField(default=list, blank=True)  # [{"key": "A", "value": "1"}]
    start_command = models.TextField(blank=True)
    runtimes = models.JSONField(
        default=list,
        blank=True,
        help_text='Runtimes this template runs on, e.g. ["process", "docker"]; empty: any. '
        "The process runtime ignores the image, so it needs a start command that serves the "
        "template's ports.",
    )
    is_serverless = models.BooleanField(default=False)
    is_public = models.BooleanField(default=False)
    readme = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = TemplateQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "pod template"

    def __str__(self) -> str:
        return self.name

    @property
    def is_official(self) -> bool:
        return self.team_id is None

    def ports_text(self, protocol: str) -> str:
        return ", ".join(str(p["port"]) for p in self.ports if p["protocol"] == protocol)

    def runs_on(self, runtime: str) -> bool:
        return not self.runtimes or runtime in self.runtimes

    def port_label(self, port: int) -> str:
        """The label the template declared for `port`, or "" (never a guess from the number)."""
        return next((p.get("label", "") for p in self.ports if p.get("port") == port), "")


class NetworkVolumeQuerySet(models.QuerySet):
    def for_team(self, team: Team) -> NetworkVolumeQuerySet:
        return self.filter(team=team)


class NetworkVolume(models.Model):
    """Persistent storage in one data centre that outlives pods and moves between them."""

    public_id = models.CharField(max_length=14, unique=True, default=new_public_id)
    team = models.ForeignKey(Team, models.CASCADE, related_name="network_volumes")
    name = models.CharField(max_length=100)
    size_gb = models.PositiveIntegerField()
    data_center = models.ForeignKey(DataCenter, models.PROTECT, related_name="network_volumes")
    created_at = models.DateTimeField(default=timezone.now)
    # The open usage segment (pods.metering): it starts here and is charged per minute at the
    # rate it was opened with, up to the team's watermark; rows cover every minute before it.
    metered_until = models.DateTimeField(null=True, blank=True, db_index=True)
    meter_storage = money_field(null=True, blank=True)

    objects = NetworkVolumeQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.size_gb} GB, {self.data_center_id})"

    def attached_pods(self) -> models.QuerySet:
        return self.pods.exclude(status=Pod.Status.TERMINATED)

    @property
    def in_use(self) -> bool:
        return self.attached_pods().exists()


class PodQuerySet(models.QuerySet):
    def for_team(self, team: Team) -> PodQuerySet:
        return self.filter(team=team)

    def user_pods(self) -> PodQuerySet:
        """The pods people deployed: serverless workers' pods are shown on their endpoint."""
        return self.filter(kind=Pod.Kind.POD)

    def live(self) -> PodQuerySet:
        """Every pod that still exists for its owner (terminated ones are history)."""
        return self.exclude(status=Pod.Status.TERMINATED)

    def holding(self) -> PodQuerySet:
        return self.filter(status__in=Pod.HOLDING)


class ProxyAccess(models.TextChoices):
    TEAM = "team", "Team only"
    PUBLIC = "public", "Public"


class Pod(models.Model):
    class Status(models.TextChoices):
        CREATED = "created", "Created"
        STARTING = "starting", "Starting"
        RUNNING = "running", "Running"
        STOPPING = "stopping", "Stopping"
        EXITED = "exited", "Stopped"
        FAILED = "failed", "Failed"
        PREEMPTED = "preempted", "Preempted"
        TERMINATED = "terminated", "Terminated"

    class Pricing(models.TextChoices):
        ON_DEMAND = "on_demand", "On-demand"
        SPOT = "spot", "Spot"

    class Kind(models.TextChoices):
        POD = "pod", "Pod"
        # A serverless endpoint's worker (serverless.Worker.pod): placed, run and isolated
        # like any pod, but billed per second by serverless, not by pods.metering.
        WORKER = "worker", "Serverless worker"

    # Statuses whose pods hold their machine's GPUs, vCPU and RAM (and are billed as running).
    HOLDING = (Status.CREATED, Status.STARTING, Status.RUNNING, Status.STOPPING)

    public_id = models.CharField(max_length=14, unique=True, default=new_public_id)
    team = models.ForeignKey(Team, models.PROTECT, related_name="pods")
    name = models.CharField(max_length=100)
    template = models.ForeignKey(
        PodTemplate, models.SET_NULL, null=True, blank=True, related_name="pods"
    )
    machine = models.ForeignKey(Machine, models.PROTECT, related_name="pods")
    cloud_type = models.CharField(max_length=10, choices=CloudType.choices)
    gpu_type = models.ForeignKey(GpuType, models.PROTECT, null=True, blank=True, related_name="+")
    gpu_count = models.PositiveIntegerField(default=0)
    # The GPU count chosen at deploy; gpu_count drops to 0 when resumed "with 0 GPUs".
    requested_gpu_count = models.PositiveIntegerField(default=0)
    cpu_instance = models.ForeignKey(
        CpuInstanceType, models.PROTECT, null=True, blank=True, related_name="+"
    )
    vcpu = models.PositiveIntegerField()
    memory_gb = models.PositiveIntegerField()
    image = models.CharField(max_length=255)
    container_disk_gb = models.PositiveIntegerField()
    volume_gb = models.PositiveIntegerField(default=0)
    volume_mount_path = models.CharField(max_length=255, default="/workspace")
    network_volume = models.ForeignKey(
        NetworkVolume, models.PROTECT, null=True, blank=True, related_name="pods"
    )
    start_command = models.TextField(blank=True)
    env = models.JSONField(default=list, blank=True)
    ports = models.JSONField(default=list, blank=True)
    pricing = models.CharField(max_length=10, choices=Pricing.choices, default=Pricing.ON_DEMAND)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.POD)
    bid_per_gpu = money_field(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.CREATED)
    status_reason = models.TextField(blank=True)
    status_changed_at = models.DateTimeField(default=timezone.now)
    # While stopping: where the pod goes next (exited, starting for a restart, terminated).
    next_status = models.CharField(max_length=12, choices=Status.choices, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    runtime_handle = models.JSONField(default=dict, blank=True)
    port_mappings = models.JSONField(default=list, blank=True)
    api_key = models.ForeignKey(
        "teams.ApiKey", models.SET_NULL, null=True, blank=True, related_name="+"
    )
    stop_at = models.DateTimeField(null=True, blank=True)
    terminate_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    terminated_at = models.DateTimeField(null=True, blank=True)
    # The open usage segment (pods.metering): it starts here, every minute before it is in a
    # posted ledger row, and it is charged per minute at the rates it was opened with (None:
    # not opened yet) up to the team's watermark; a status change settles and reopens it.
    metered_until = models.DateTimeField(null=True, blank=True)
    meter_compute = money_field(null=True, blank=True)
    meter_storage_running = money_field(null=True, blank=True)
    meter_storage_stopped = money_field(null=True, blank=True)
    meter_running_until = models.DateTimeField(null=True, blank=True)
    proxy_access = models.CharField(
        max_length=8,
        choices=ProxyAccess.choices,
        default=ProxyAccess.TEAM,
        help_text="Who may open the pod's HTTP ports through the console's proxy",
    )

    objects = PodQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status"]),
            models.Index(fields=["team", "status"]),
            models.Index(fields=["metered_until", "id"], name="pod_metering_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"

    def get_absolute_url(self) -> str:
        return reverse("pod_detail", args=[self.team.slug, self.public_id])

    @property
    def is_gpu(self) -> bool:
        return self.gpu_type_id is not None

    @property
    def is_live(self) -> bool:
        return self.status != self.Status.TERMINATED

    def can_stop(self) -> bool:
        return self.status in (self.Status.CREATED, self.Status.STARTING, self.Status.RUNNING)

    def can_start(self) -> bool:
        return self.status in (self.Status.EXITED, self.Status.FAILED, self.Status.PREEMPTED)

    def can_restart(self) -> bool:
        return self.status == self.Status.RUNNING

    def can_terminate(self) -> bool:
        return self.status != self.Status.TERMINATED

    @property
    def is_busy(self) -> bool:
        return self.status in (self.Status.STARTING, self.Status.STOPPING)

    @property
    def volume_name(self) -> str | None:
        return self.public_id if self.volume_gb and not self.network_volume_id else None

    def uptime_seconds(self) -> int:
        if self.status != self.Status.RUNNING or not self.started_at:
            return 0
        return int((timezone.now() - self.started_at).total_seconds())

    def price(self, status: str | None = None):
        """Cost per hour split into compute and storage (pods.pricing), at `status`."""
        from pods.pricing import pod_price

        return pod_price(self, status=status or self.status)


class PodEvent(models.Model):
    """The pod's timeline: what happened, including what the system did on its own."""

    pod = models.ForeignKey(Pod, models.CASCADE, related_name="events")
    status = models.CharField(max_length=12, choices=Pod.Status.choices)
    message = models.TextField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.pod_id} {self.status}: {self.message}"


class SshKey(models.Model):
    """A person's SSH public key. Keys belong to the person, not a team: every pod of every
    team they may connect to gets them (as PUBLIC_KEY, see pods.connect.spec)."""

    public_id = models.CharField(max_length=14, unique=True, default=new_public_id)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="ssh_keys")
    name = models.CharField(max_length=100)
    key_type = models.CharField(max_length=40)
    public_key = models.TextField(help_text="One OpenSSH line: type, base64 key, comment")
    fingerprint = models.CharField(max_length=64, help_text="SHA256, as ssh-keygen -l shows it")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "SSH key"
        constraints = [
            models.UniqueConstraint(fields=["user", "fingerprint"], name="ssh_key_once_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_type} SHA256:{self.fingerprint})"


class RegistryCredential(models.Model):
    """A login for a private image registry, used when a pod's image is pulled. The password
    is stored encrypted (pods.connect.crypto) and never shown again."""

    public_id = models.CharField(max_length=14, unique=True, default=new_public_id)
    team = models.ForeignKey(Team, models.CASCADE, related_name="registry_credentials")
    name = models.CharField(max_length=100)
    registry = models.CharField(
        max_length=255, help_text="Host (and optional path prefix), e.g. ghcr.io or docker.io"
    )
    username = models.CharField(max_length=255)
    password_encrypted = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["registry", "name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="registry_credential_name")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.username}@{self.registry})"
