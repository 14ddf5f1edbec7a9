"""Serverless endpoints over /graphql, as runpod-python 1.12.0 (`create_endpoint`,
`get_endpoints`, `update_endpoint_template`) and runpodctl 2.7.2 (`serverless create`, its
model-reference round-trip, `serverless update --template-id`) call them.

`saveEndpoint` creates, or updates the team's endpoint `id` (fields left out keep their value);
its input becomes the console's endpoint form's data, so the SDK is validated by the code that
validates the console's page, and every write goes through serverless.services (audited; an
edit raises the version, so running workers go stale). gpuIds are serverless GPU pools
(api.graphql.pools). What this console cannot honour is refused by name rather than ignored:
locations (data-centre pinning), CUDA version constraints, inline templates from the hub, model
references, more than one CPU instance type or network volume. FlashBoot is not offered: any
flashBootType is accepted and answered OFF. executionTimeoutMs 0 (runpodctl's "no limit") is
the longest timeout the console allows, 7 days.

There is no deleteEndpoint in RunPod's GraphQL (runpodctl deletes over REST)."""

from __future__ import annotations

from ariadne import MutationType, ObjectType, QueryType
from rest_framework.exceptions import NotFound

from api.graphql import pools
from api.graphql.inputs import InputError
from api.graphql.resolvers import CAPABILITY, _access, _actor, _id
from pods.models import CpuInstanceType, NetworkVolume, PodTemplate
from serverless import services
from serverless.forms import EndpointForm
from serverless.models import Endpoint

query = QueryType()
mutation = MutationType()
user_type = ObjectType("User")

MAX_EXECUTION_MS = 7 * 24 * 3600 * 1000
# The console form's field -> the EndpointInput field a refusal names.
INPUT_NAMES = {
    "name": "name",
    "template": "templateId",
    "cpu_instance": "instanceIds",
    "gpu_0": "gpuIds",
    "gpu_count": "gpuCount",
    "workers_min": "workersMin",
    "workers_max": "workersMax",
    "idle_timeout": "idleTimeout",
    "execution_timeout": "executionTimeoutMs",
    "scaler_type": "scalerType",
    "scaler_value": "scalerValue",
    "network_volume": "networkVolumeId",
}
UNSUPPORTED = {
    "locations": "pinning an endpoint to data centres is not offered here; leave it empty",
    "allowedCudaVersions": "CUDA version constraints are not offered here",
    "minCudaVersion": "CUDA version constraints are not offered here",
    "template": "inline templates are not offered: create one (saveTemplate) and give templateId",
    "hubReleaseId": "hub releases are not offered here",
    "modelReferences": "model references are not offered here",
}


# Reading ------------------------------------------------------------------------------------


def endpoint(found: Endpoint, active_gpus: list | None = None) -> dict:
    """An endpoint as RunPod's Endpoint object (`active_gpus`: pools.active_gpus(), read once
    for a list)."""
    volume = found.network_volume
    volume_ref = {"id": volume.public_id, "dataCenterId": volume.data_center_id} if volume else None
    return {
        "id": found.public_id,
        "name": found.name,
        "aiKey": None,
        "type": "QB",  # queue-based: RunPod's load-balancing (LB) kind is not offered
        "userId": str(found.created_by_id) if found.created_by_id else None,
        "templateId": found.template.public_id if found.template else None,
        "computeType": "GPU" if found.is_gpu else "CPU",
        "gpuIds": pools.gpu_ids_text(found.gpu_type_ids, active_gpus) if found.is_gpu else None,
        "gpuCount": found.gpu_count,
        "instanceIds": [found.cpu_instance_id] if found.cpu_instance_id else [],
        "networkVolumeId": volume.public_id if volume else None,
        "networkVolume": volume_ref,
        "networkVolumeIds": (
            [{"networkVolumeId": volume.public_id, "dataCenterId": volume.data_center_id}]
            if volume
            else []
        ),
        "locations": "",
        "idleTimeout": found.idle_timeout,
        "executionTimeoutMs": found.execution_timeout * 1000,
        "scalerType": found.scaler_type,
        "scalerValue": found.scaler_value,
        "workersMin": found.workers_min,
        "workersMax": found.workers_max,
        "workersStandby": None,
        "version": found.version,
        "env": [{"key": row["key"], "value": row["value"]} for row in found.env],
        "createdAt": found.created_at.isoformat(),
        "allowedCudaVersions": None,
        "minCudaVersion": None,
        "flashBootType": "OFF",
        "modelReferences": [],
    }


def _endpoints(team):
    return Endpoint.objects.for_team(team).select_related(
        "template", "network_volume", "cpu_instance"
    )


@user_type.field("endpoints")
def resolve_endpoints(obj, info) -> list[dict]:
    team = _access(info, "use").team
    active = pools.active_gpus()
    return [endpoint(found, active) for found in _endpoints(team).order_by("created_at", "pk")]


@query.field("serverlessGpuPools")
def resolve_serverless_gpu_pools(_, info) -> list[dict]:
    _access(info, CAPABILITY["serverlessGpuPools"])
    return pools.pools()


# The input as the console form's data --------------------------------------------------------


def _refuse_unsupported(data: dict) -> None:
    for name, why in UNSUPPORTED.items():
        if data.get(name) not in (None, "", []):
            raise InputError(f"{name}: {why}.")


def _template_pk(team, template_id) -> int:
    found = PodTemplate.objects.visible_to(team).filter(public_id=_id(template_id)).first()
    if found is None:
        raise InputError(f"templateId: no template {str(template_id)[:40]!r}.")
    if not found.is_serverless:
        raise InputError("templateId: the template is not a serverless template.")
    return found.pk


def _volume_id(data: dict) -> str | None:
    """The one network volume named (networkVolumeId or networkVolumeIds), "" for none."""
    entries = data.get("networkVolumeIds") or []
    ids = {(entry or {}).get("networkVolumeId") or "" for entry in entries}
    if data.get("networkVolumeId") is not None:
        ids.add(data["networkVolumeId"])
    ids.discard("")
    if len(ids) > 1:
        raise InputError("networkVolumeIds: one network volume per endpoint here.")
    if ids:
        return ids.pop()
    named = data.get("networkVolumeId") is not None or data.get("networkVolumeIds") is not None
    return "" if named else None


def _volume_pk(team, volume_id: str) -> int | str:
    if not volume_id:
        return ""
    found = NetworkVolume.objects.for_team(team).filter(public_id=_id(volume_id)).first()
    if found is None:
        raise InputError(f"networkVolumeId: no network volume {volume_id[:40]!r}.")
    return found.pk


def _execution_seconds(value: int) -> int:
    if value == 0:
        return MAX_EXECUTION_MS // 1000
    if not 5_000 <= value <= MAX_EXECUTION_MS:
        raise InputError(
            f"executionTimeoutMs: milliseconds from 5000 to {MAX_EXECUTION_MS} (0: the longest)."
        )
    return -(-value // 1000)  # whole seconds, rounded up


def _compute(data: dict) -> tuple[dict, list[str] | None]:
    """Form data for GPU or CPU, and the GPU type ids (None: keep the endpoint's)."""
    gpu_text = (data.get("gpuIds") or "").strip()
    instances = [item for item in data.get("instanceIds") or [] if item]
    if gpu_text and instances:
        raise InputError("Give gpuIds (GPU pools) or instanceIds (a CPU instance), not both.")
    if len(instances) > 1:
        raise InputError("instanceIds: one CPU instance type per endpoint here.")
    if instances:
        if not CpuInstanceType.objects.filter(id=_id(instances[0])).exists():
            raise InputError(f"instanceIds: no CPU instance type {instances[0][:40]!r}.")
        return {"compute": "cpu", "cpu_instance": instances[0]}, []
    if not gpu_text:
        return {}, None
    try:
        gpus = pools.gpu_type_ids(gpu_text)
    except pools.UnknownGpu as error:
        raise InputError(f"gpuIds: {error}.") from None
    return {"compute": "gpu", "gpu_0": gpus[0], "cpu_instance": ""}, gpus


def _current(found: Endpoint | None) -> dict:
    """The form data an update starts from (a create starts from the model's defaults)."""
    found = found or Endpoint()
    return {
        "name": found.name,
        "template": found.template_id or "",
        "compute": "gpu" if found.is_gpu else "cpu",
        "gpu_0": found.gpu_type_ids[0] if found.gpu_type_ids else "",
        "cpu_instance": found.cpu_instance_id or "",
        "gpu_count": found.gpu_count,
        "workers_min": found.workers_min,
        "workers_max": found.workers_max,
        "idle_timeout": found.idle_timeout,
        "execution_timeout": found.execution_timeout,
        "scaler_type": found.scaler_type,
        "scaler_value": found.scaler_value,
        "network_volume": found.network_volume_id or "",
        "env_text": "\n".join(f"{row['key']}={row['value']}" for row in found.env),
    }


NUMBERS = {
    "gpuCount": "gpu_count",
    "workersMin": "workers_min",
    "workersMax": "workers_max",
    "idleTimeout": "idle_timeout",
    "scalerValue": "scaler_value",
}


def form_data(team, data: dict, found: Endpoint | None) -> tuple[dict, list[str] | None]:
    _refuse_unsupported(data)
    form = _current(found)
    for name, field in NUMBERS.items():
        if data.get(name) is not None:
            form[field] = data[name]
    if data.get("name") is not None:
        form["name"] = data["name"]
    if data.get("scalerType") is not None:
        form["scaler_type"] = data["scalerType"]
    if data.get("executionTimeoutMs") is not None:
        form["execution_timeout"] = _execution_seconds(data["executionTimeoutMs"])
    if data.get("templateId"):
        form["template"] = _template_pk(team, data["templateId"])
    volume = _volume_id(data)
    if volume is not None:
        form["network_volume"] = _volume_pk(team, volume)
    compute, gpus = _compute(data)
    form.update(compute)
    return form, gpus


def _errors(form: EndpointForm) -> str:
    parts = []
    for field, errors in form.errors.items():
        label = "" if field == "__all__" else f"{INPUT_NAMES.get(field, field)}: "
        parts.extend(f"{label}{error}" for error in errors)
    return " ".join(parts)


def validated_values(team, data: dict, found: Endpoint | None) -> dict:
    """The services' keyword values for this input, validated by the console's form."""
    values, gpus = form_data(team, data, found)
    if found is None and gpus is None:
        raise InputError(
            "gpuIds: name serverless GPU pools (serverlessGpuPools), or give instanceIds for "
            "a CPU endpoint."
        )
    form = EndpointForm(values, team=team, instance=found)
    if not form.is_valid():
        raise InputError(_errors(form))
    result = form.values()
    if result["gpu_type_ids"]:
        result["gpu_type_ids"] = gpus if gpus is not None else found.gpu_type_ids
    return result


# Writing ------------------------------------------------------------------------------------


def _team_endpoint(team, endpoint_id) -> Endpoint:
    """The team's endpoint, or the same 'not found' whether it is another team's or none."""
    found = _endpoints(team).filter(public_id=_id(endpoint_id)).first()
    if found is None:
        raise NotFound(f"Endpoint {str(endpoint_id)[:40]!r} not found.")
    return found


def _fresh(found: Endpoint) -> dict:
    return endpoint(_endpoints(found.team).get(pk=found.pk))


@mutation.field("saveEndpoint")
def resolve_save_endpoint(_, info, input: dict | None = None) -> dict:
    team = _access(info, CAPABILITY["saveEndpoint"], write=True).team
    data = input or {}
    actor = _actor(info)
    if data.get("id"):
        found = _team_endpoint(team, data["id"])
        values = validated_values(team, data, found)
        saved = services.update_endpoint(actor=actor, endpoint=found, **values)
    else:
        values = validated_values(team, data, None)
        saved = services.create_endpoint(actor=actor, team=team, **values)
    return _fresh(saved)


@mutation.field("updateEndpointTemplate")
def resolve_update_endpoint_template(_, info, input: dict | None = None) -> dict:
    team = _access(info, CAPABILITY["updateEndpointTemplate"], write=True).team
    data = input or {}
    found = _team_endpoint(team, data.get("endpointId"))
    if not data.get("templateId"):
        raise InputError("templateId: name the serverless template the workers should run.")
    values = validated_values(team, {"templateId": data["templateId"]}, found)
    saved = services.update_endpoint(
        actor=_actor(info), endpoint=found, template=values["template"]
    )
    return _fresh(saved)


OBJECTS = [query, mutation, user_type]
