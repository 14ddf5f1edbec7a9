"""/v1/pods as runpodctl 2.7.2 calls it (`internal/api/pods.go`: ListPods, GetPod, CreatePod
for CPU pods, UpdatePod, Start/Stop/Restart/ResetPod, DeletePod) and RunPod's PodCreateInput.

A create is turned into the GraphQL deploy input and validated by api.graphql.inputs
(the wizard's own form), then deployed by pods.services.deploy_pod: one mapping for both APIs.
Every action goes through pods.services (audited, metered). What this console cannot honour is
refused by name. Here a restart, like a reset, gives the pod a fresh container disk on the same
machine with the same GPUs (pods.services.restart_pod); only the name of an existing pod can
be changed."""

import shlex

from django.db.models import QuerySet
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from api.graphql import inputs, wire
from api.graphql.resolvers import _id
from api.runpod_rest import shapes
from api.runpod_rest.base import CRUD, RestViewSet, checked
from pods import services
from pods.models import CloudType, CpuInstanceType, Pod
from pods.services import PodError

CREATE_FIELDS = {
    "name": str,
    "imageName": str,
    "templateId": str,
    "computeType": str,
    "gpuTypeIds": list,
    "gpuTypePriority": str,
    "gpuCount": int,
    "cloudType": str,
    "dataCenterIds": list,
    "dataCenterPriority": str,
    "countryCodes": list,
    "cpuFlavorIds": list,
    "cpuFlavorPriority": str,
    "vcpuCount": int,
    "minRAMPerGPU": int,
    "minVCPUPerGPU": int,
    "containerDiskInGb": int,
    "volumeInGb": int,
    "volumeMountPath": str,
    "ports": list,
    "env": dict,
    "dockerEntrypoint": list,
    "dockerStartCmd": list,
    "dockerArgs": str,  # runpodctl's, not in the spec
    "networkVolumeId": str,
    "supportPublicIp": bool,
    "globalNetworking": bool,
    "interruptible": bool,
    "locked": bool,
    "allowedCudaVersions": list,
    "minCudaVersion": str,  # runpodctl's, not in the spec
    "minDownloadMbps": (int, float),
    "minUploadMbps": (int, float),
    "minDiskBandwidthMBps": (int, float),
    "containerRegistryAuthId": str,
}
# Fields with no counterpart here, refused when set (false, empty and 0 are "not set").
NOT_OFFERED = {
    "countryCodes": "choose data centres with dataCenterIds",
    "minRAMPerGPU": "pick a GPU type; its machines' memory is fixed",
    "minVCPUPerGPU": "pick a GPU type; its machines' vCPUs are fixed",
    "dockerEntrypoint": "put the command in dockerStartCmd",
    "globalNetworking": "pods reach each other through their public ports",
    "interruptible": "deploy on demand, then resume as spot (runpodctl start pod --bid)",
    "locked": "pods are not locked here",
    "allowedCudaVersions": "CUDA version constraints are not offered here",
    "minCudaVersion": "CUDA version constraints are not offered here",
    "minDownloadMbps": "bandwidth constraints are not offered here",
    "minUploadMbps": "bandwidth constraints are not offered here",
    "minDiskBandwidthMBps": "bandwidth constraints are not offered here",
    "containerRegistryAuthId": "set registry credentials on the console's deploy page",
}
UPDATE_FIELDS = {
    "name": str,
    "imageName": str,
    "containerDiskInGb": int,
    "volumeInGb": int,
    "volumeMountPath": str,
    "ports": list,
    "env": dict,
    "dockerEntrypoint": list,
    "dockerStartCmd": list,
    "containerRegistryAuthId": str,
    "locked": bool,
    "globalNetworking": bool,
}
RELATED = ("machine", "gpu_type", "cpu_instance", "template", "network_volume", "team")


def _refuse_not_offered(data: dict) -> None:
    for name, instead in NOT_OFFERED.items():
        if data.get(name):
            raise ValidationError(f"{name}: not offered here: {instead}.")


def _cpu_instance(data: dict) -> str | None:
    """The cheapest CPU instance of the flavours asked (cpu3c, cpu5g...) with at least
    vcpuCount vCPUs; None lets the deploy pick the cheapest offer."""
    flavours, vcpus = data.get("cpuFlavorIds") or [], data.get("vcpuCount") or 0
    if not flavours and not vcpus:
        return None
    offers = CpuInstanceType.objects.filter(vcpu__gte=vcpus).order_by("price", "vcpu", "id")
    found = next((o for o in offers if not flavours or o.id.split("-")[0] in flavours), None)
    if found is None:
        raise ValidationError("cpuFlavorIds: no CPU instance of these flavours and vcpuCount.")
    return found.id


def deploy_inputs(data: dict) -> list[dict]:
    """A PodCreateInput as GraphQL deploy inputs, one per GPU type, data centre and cloud to
    try in RunPod's order (the first with room is deployed)."""
    data = checked(data, CREATE_FIELDS)
    _refuse_not_offered(data)
    if data.get("computeType") not in (None, "GPU", "CPU"):
        raise ValidationError("computeType: GPU or CPU.")
    cpu = data.get("computeType") == "CPU"
    if data.get("cloudType") not in (None, CloudType.SECURE, CloudType.COMMUNITY):
        raise ValidationError("cloudType: SECURE or COMMUNITY.")
    base = {
        name: data.get(name)
        for name in ("name", "imageName", "templateId", "gpuCount", "containerDiskInGb")
    }
    base |= {name: data.get(name) for name in ("volumeInGb", "volumeMountPath", "networkVolumeId")}
    base["cloudType"] = data.get("cloudType") or CloudType.SECURE
    if data.get("ports") is not None:
        base["ports"] = ",".join(data["ports"])
    if data.get("env") is not None:
        base["env"] = [{"key": k, "value": v} for k, v in data["env"].items()]
    if data.get("dockerStartCmd"):
        base["dockerArgs"] = shlex.join(data["dockerStartCmd"])
    elif data.get("dockerArgs"):
        base["dockerArgs"] = data["dockerArgs"]
    if cpu:
        if data.get("gpuTypeIds"):
            raise ValidationError("gpuTypeIds: a CPU pod has no GPUs.")
        base["instanceId"] = _cpu_instance(data)
    gpus = [None] if cpu else data.get("gpuTypeIds") or [""]
    centers = data.get("dataCenterIds") or [None]
    return [{**base, "gpuTypeId": g, "dataCenterId": c} for g in gpus for c in centers]


def pods_of(team) -> QuerySet:
    return Pod.objects.for_team(team).user_pods().select_related(*RELATED)


# RunPod's desiredStatus -> our statuses.
STATUSES = {
    theirs: [ours for ours, named in wire.DESIRED_STATUS.items() if named == theirs]
    for theirs in ("RUNNING", "EXITED", "TERMINATED")
}


def filtered(pods: QuerySet, params) -> QuerySet:
    """RunPod's list filters (query parameters); terminated pods only when asked by status."""
    if params.get("endpointId") or params.get("cpuFlavorId"):
        raise ValidationError("endpointId, cpuFlavorId: these filters are not offered here.")
    wanted = params.get("desiredStatus")
    pods = pods.filter(status__in=STATUSES.get(wanted, [])) if wanted else pods.live()
    compute = params.get("computeType")
    if compute in ("GPU", "CPU"):
        pods = pods.filter(gpu_type__isnull=compute == "CPU")
    lookups = {
        "id": "public_id",
        "name": "name",
        "imageName": "image",
        "templateId": "template__public_id",
        "networkVolumeId": "network_volume__public_id",
    }
    for param, field in lookups.items():
        if params.get(param):
            pods = pods.filter(**{field: _id(params[param])})
    for param, field in (("gpuTypeId", "gpu_type_id"), ("dataCenterId", "machine__data_center")):
        values = [_id(v) for v in params.getlist(param) if v]
        if values:
            pods = pods.filter(**{f"{field}__in": values})
    return pods


def _changes(data: dict, current: dict) -> list[str]:
    """The fields of a PodUpdateInput, other than name, that differ from the pod's."""
    unset = (None, "", False)
    return sorted(
        name
        for name, value in data.items()
        if name != "name" and value not in unset and value != current.get(name)
    )


class PodViewSet(RestViewSet):
    capabilities = {
        **CRUD,
        "start": "deploy",
        "stop": "deploy",
        "restart": "deploy",
        "reset": "deploy",
    }

    def _shape(self, found: Pod) -> dict:
        return shapes.pod(
            found,
            machine=self.flag("includeMachine"),
            volume=self.flag("includeNetworkVolume"),
        )

    def _pod(self, pod_id: str) -> Pod:
        found = pods_of(self.team).live().filter(public_id=_id(pod_id)).first()
        if found is None:
            raise NotFound(f"Pod {str(pod_id)[:40]!r} not found.")
        return found

    def _fresh(self, found: Pod) -> Response:
        return Response(self._shape(pods_of(self.team).get(pk=found.pk)))

    def list(self, request):
        pods = filtered(pods_of(self.team), request.query_params).order_by("created_at", "pk")
        return Response([self._shape(found) for found in pods])

    def retrieve(self, request, pod_id: str):
        return Response(self._shape(self._pod(pod_id)))

    def create(self, request):
        attempts = deploy_inputs(self.body())
        cpu = self.body().get("computeType") == "CPU"
        for number, attempt in enumerate(attempts, start=1):
            form = inputs.deploy_form(self.team, attempt, cpu=cpu)
            try:
                pod = services.deploy_pod(
                    actor=request.user, team=self.team, request=form.to_request()
                )
            except PodError as error:
                if error.code == "placement" and number < len(attempts):
                    continue
                raise
            fresh = self._fresh(pod)
            fresh.status_code = status.HTTP_201_CREATED
            return fresh
        raise ValidationError("No machine fits this pod.")

    def partial_update(self, request, pod_id: str):
        found = self._pod(pod_id)
        data = checked(self.body(), UPDATE_FIELDS)
        changed = _changes(data, shapes.pod(found))
        if changed:
            raise ValidationError(
                f"{changed[0]}: only a pod's name can be changed here; deploy a new pod instead."
            )
        if data.get("name") is not None and data["name"] != found.name:
            found = services.rename_pod(actor=request.user, pod=found, name=data["name"])
        return self._fresh(found)

    update = partial_update  # POST /pods/{id}/update, RunPod's alias of PATCH

    def destroy(self, request, pod_id: str):
        services.terminate_pod(actor=request.user, pod=self._pod(pod_id))
        return Response(status=status.HTTP_204_NO_CONTENT)

    def start(self, request, pod_id: str):
        return self._fresh(services.start_pod(actor=request.user, pod=self._pod(pod_id)))

    def stop(self, request, pod_id: str):
        return self._fresh(services.stop_pod(actor=request.user, pod=self._pod(pod_id)))

    def restart(self, request, pod_id: str):
        return self._fresh(services.restart_pod(actor=request.user, pod=self._pod(pod_id)))

    reset = restart
