"""/v1/networkvolumes and /v1/containerregistryauth as runpodctl 2.7.2 calls them
(`internal/api/volumes.go`, `internal/api/registry.go`), through pods.services and
pods.connect.services (audited), validated by the console's forms."""

from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from api.authentication import person
from api.graphql import inputs
from api.graphql.resolvers import _id
from api.runpod_rest import shapes
from api.runpod_rest.base import CRUD, RestViewSet, checked
from pods import services
from pods.connect import services as connect
from pods.connect.services import ConnectError
from pods.forms import NetworkVolumeForm
from pods.models import NetworkVolume, RegistryCredential

VOLUME_FIELDS = {"name": str, "size": int, "dataCenterId": str}
FORM_NAMES = {"name": "name", "size_gb": "size", "data_center": "dataCenterId"}


def _form_errors(form) -> str:
    return " ".join(
        f"{FORM_NAMES.get(field, field)}: {message}"
        for field, messages in form.errors.items()
        for message in messages
    )


class NetworkVolumeViewSet(RestViewSet):
    capabilities = CRUD

    def _volume(self, volume_id: str) -> NetworkVolume:
        found = NetworkVolume.objects.for_team(self.team).filter(public_id=_id(volume_id)).first()
        if found is None:
            raise NotFound(f"Network volume {str(volume_id)[:40]!r} not found.")
        return found

    def list(self, request):
        volumes = NetworkVolume.objects.for_team(self.team).order_by("created_at", "pk")
        return Response([shapes.network_volume(volume) for volume in volumes])

    def retrieve(self, request, volume_id: str):
        return Response(shapes.network_volume(self._volume(volume_id)))

    def create(self, request):
        data = checked(self.body(), VOLUME_FIELDS)
        values = {"name": data.get("name"), "size_gb": data.get("size")}
        form = NetworkVolumeForm({**values, "data_center": _id(data.get("dataCenterId"))})
        if not form.is_valid():
            raise ValidationError(_form_errors(form))
        volume = services.create_network_volume(
            actor=request.user, team=self.team, **form.cleaned_data
        )
        return Response(shapes.network_volume(volume), status=status.HTTP_201_CREATED)

    def partial_update(self, request, volume_id: str):
        """A volume grows (never shrinks: a pod's data could be cut off); its name stays."""
        found = self._volume(volume_id)
        data = checked(self.body(), {"name": str, "size": int})
        if data.get("name") not in (None, found.name):
            raise ValidationError("name: a network volume cannot be renamed here.")
        if data.get("size") not in (None, found.size_gb):
            found = services.grow_network_volume(
                actor=request.user, volume=found, size_gb=data["size"]
            )
        return Response(shapes.network_volume(found))

    update = partial_update  # POST /networkvolumes/{id}/update, RunPod's alias of PATCH

    def destroy(self, request, volume_id: str):
        services.delete_network_volume(actor=request.user, volume=self._volume(volume_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class RegistryAuthViewSet(RestViewSet):
    """Registry logins (Docker Hub, as RunPod's name no registry). Reading them needs deploy,
    as on /api/v1/registry-credentials: they serve deploys."""

    capabilities = {"list": "deploy", "retrieve": "deploy", "create": "deploy", "destroy": "deploy"}

    def _credential(self, credential_id: str) -> RegistryCredential:
        credentials = RegistryCredential.objects.filter(team=self.team)
        found = credentials.filter(public_id=_id(credential_id)).first()
        if found is None:
            raise NotFound(f"Registry auth {str(credential_id)[:40]!r} not found.")
        return found

    def list(self, request):
        credentials = RegistryCredential.objects.filter(team=self.team).order_by("name", "pk")
        return Response([shapes.registry_auth(found) for found in credentials])

    def retrieve(self, request, credential_id: str):
        return Response(shapes.registry_auth(self._credential(credential_id)))

    def create(self, request):
        data = checked(self.body(), {"name": str, "username": str, "password": str})
        form = inputs.registry_form(data)
        try:
            credential = connect.save_registry_credential(
                actor=person(self.request), team=self.team, **form.cleaned_data
            )
        except ConnectError as error:
            raise ValidationError(str(error)) from error
        return Response(shapes.registry_auth(credential), status=status.HTTP_201_CREATED)

    def destroy(self, request, credential_id: str):
        credential = self._credential(credential_id)
        connect.delete_registry_credential(actor=person(self.request), credential=credential)
        return Response(status=status.HTTP_204_NO_CONTENT)
