"""/v1/endpoints: serverless endpoints as runpodctl's `serverless list/get/update/delete` call
them (`internal/api/endpoints.go`), and RunPod's EndpointCreateInput for POST.

A REST input is turned into the GraphQL EndpointInput shape and validated by
api.graphql.endpoints.validated_values (the console's endpoint form), then written through
serverless.services: one mapping of RunPod's fields to ours (GPU pools, refusals by name) for
both APIs. REST names GPU types (`gpuTypeIds`); runpodctl's struct names pools (`gpuIds`):
both are accepted, as gpuIds is (api.graphql.pools)."""

from django.db.models import Prefetch
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from api.graphql import pools
from api.graphql.endpoints import _endpoints, _team_endpoint, validated_values
from api.runpod_rest import shapes
from api.runpod_rest.base import CRUD, RestViewSet, checked
from serverless import services
from serverless.models import Worker

FIELDS = {
    "name": str,
    "templateId": str,
    "computeType": str,
    "gpuTypeIds": list,
    "gpuIds": str,
    "gpuCount": int,
    "instanceIds": list,
    "cpuFlavorIds": list,
    "vcpuCount": int,
    "dataCenterIds": list,
    "networkVolumeId": str,
    "networkVolumeIds": list,
    "idleTimeout": int,
    "scalerType": str,
    "scalerValue": int,
    "workersMin": int,
    "workersMax": int,
    "executionTimeoutMs": int,
    "flashboot": bool,
    "allowedCudaVersions": list,
    "minCudaVersion": str,
    "env": dict,
}
# Passed to validated_values as they are (the same names in both APIs).
SAME = (
    "name",
    "templateId",
    "gpuCount",
    "instanceIds",
    "networkVolumeId",
    "idleTimeout",
    "scalerType",
    "scalerValue",
    "workersMin",
    "workersMax",
    "executionTimeoutMs",
    "allowedCudaVersions",
    "minCudaVersion",
)

# REST fields with no counterpart here, refused by name (what to do instead).
NOT_OFFERED = {
    "dataCenterIds": "endpoints are not pinned to data centres; leave it out",
    "cpuFlavorIds": "name a CPU instance type in instanceIds",
    "env": "set an endpoint's variables on its console page",
}


def graphql_input(data: dict) -> dict:
    """A REST endpoint input as the GraphQL EndpointInput validated_values reads."""
    data = checked(data, FIELDS)
    result = {name: data[name] for name in SAME if data.get(name) is not None}
    gpus = [*(data.get("gpuTypeIds") or []), *(data.get("gpuIds") or "").split(",")]
    if any(gpu.strip() for gpu in gpus):
        result["gpuIds"] = ",".join(gpu.strip() for gpu in gpus if gpu.strip())
    if data.get("computeType") not in (None, "GPU", "CPU"):
        raise ValidationError("computeType: GPU or CPU.")
    if data.get("computeType") == "CPU" and result.get("gpuIds"):
        raise ValidationError("computeType CPU takes instanceIds, not GPU types.")
    if data.get("networkVolumeIds") is not None:
        result["networkVolumeIds"] = [{"networkVolumeId": i} for i in data["networkVolumeIds"]]
    for name, instead in NOT_OFFERED.items():
        if data.get(name):
            raise ValidationError(f"{name}: not offered here: {instead}.")
    return result


class EndpointViewSet(RestViewSet):
    capabilities = CRUD

    def _workers_prefetch(self) -> Prefetch:
        live = Worker.objects.exclude(state=Worker.State.STOPPED).exclude(pod=None)
        pods = live.select_related(
            "pod__machine", "pod__gpu_type", "pod__template", "pod__network_volume"
        )
        return Prefetch("workers", queryset=pods.order_by("created_at", "pk"), to_attr="live")

    def _shapes(self, endpoints, active: list | None = None) -> list[dict]:
        with_workers = self.flag("includeWorkers")
        if with_workers:
            endpoints = endpoints.prefetch_related(self._workers_prefetch())
        active = pools.active_gpus() if active is None else active
        return [
            shapes.endpoint(
                found,
                active,
                with_template=self.flag("includeTemplate"),
                workers=[w.pod for w in found.live] if with_workers else None,
            )
            for found in endpoints
        ]

    def _one(self, found) -> dict:
        return self._shapes(_endpoints(self.team).filter(pk=found.pk))[0]

    def list(self, request):
        return Response(self._shapes(_endpoints(self.team).order_by("created_at", "pk")))

    def retrieve(self, request, endpoint_id: str):
        return Response(self._one(_team_endpoint(self.team, endpoint_id)))

    def create(self, request):
        data = graphql_input(self.body())
        if not data.get("templateId"):
            raise ValidationError("templateId: name the serverless template to run.")
        values = validated_values(self.team, data, None)
        saved = services.create_endpoint(actor=request.user, team=self.team, **values)
        return Response(self._one(saved), status=status.HTTP_201_CREATED)

    def partial_update(self, request, endpoint_id: str):
        found = _team_endpoint(self.team, endpoint_id)
        values = validated_values(self.team, graphql_input(self.body()), found)
        saved = services.update_endpoint(actor=request.user, endpoint=found, **values)
        return Response(self._one(saved))

    update = partial_update  # POST /endpoints/{id}/update, RunPod's alias of PATCH

    def destroy(self, request, endpoint_id: str):
        found = _team_endpoint(self.team, endpoint_id)
        services.delete_endpoint(actor=request.user, endpoint=found)
        return Response(status=status.HTTP_204_NO_CONTENT)
