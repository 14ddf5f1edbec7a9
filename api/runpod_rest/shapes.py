"""Our rows as RunPod's REST v1 objects, with the JSON types runpodctl's Go structs decode
(`internal/api/*.go`): a Go `int` field takes no fraction and a `float64` no string, so
counts are integers and money is a JSON number here. REST differs from GraphQL: `ports` is an
array, `env` an object, a pod has `image` (the spec) and `imageName` (runpodctl).

Money: our house rule sends decimal strings, but runpodctl decodes `costPerHr` and billing
`amount` into float64, which refuses a string; RunPod's spec makes them numbers too. So they are
converted from Decimal to float here (api.graphql.wire.money) and nowhere else."""

import shlex

from api.graphql import endpoints as graphql_endpoints
from api.graphql import wire
from pods.models import CloudType, NetworkVolume, Pod, PodTemplate, RegistryCredential
from serverless.models import Endpoint


def ports(rows: list[dict]) -> list[str]:
    return [f"{row['port']}/{row['protocol']}" for row in rows]


def env(rows: list[dict]) -> dict[str, str]:
    return {row["key"]: row["value"] for row in rows}


def command(text: str) -> list[str]:
    """A stored start command as RunPod's dockerStartCmd array."""
    try:
        return shlex.split(text)
    except ValueError:  # unbalanced quotes typed in the console: the text as one argument
        return [text] if text else []


def template(found: PodTemplate) -> dict:
    return {
        "id": found.public_id,
        "name": found.name,
        "imageName": found.image,
        "isServerless": found.is_serverless,
        "isPublic": found.is_public,
        "isRunpod": found.is_official,
        "category": "NVIDIA",
        "ports": ports(found.ports),
        "env": env(found.env),
        "containerDiskInGb": found.container_disk_gb,
        "volumeInGb": found.volume_gb,
        "volumeMountPath": found.volume_mount_path,
        "dockerEntrypoint": [],
        "dockerStartCmd": command(found.start_command),
        "containerRegistryAuthId": None,
        "readme": found.readme,
        "earned": 0,
        "runtimeInMin": 0,
    }


def network_volume(found: NetworkVolume) -> dict:
    return wire.network_volume(found)


def registry_auth(found: RegistryCredential) -> dict:
    return {"id": found.public_id, "name": found.name, "username": found.username}


def _gpu(found: Pod) -> dict | None:
    gpu = found.gpu_type
    if gpu is None:
        return None
    return {
        "id": gpu.id,
        "count": found.gpu_count,
        "displayName": gpu.display_name,
        "securePrice": wire.money(gpu.secure_price),
        "communityPrice": wire.money(gpu.community_price),
        "oneMonthPrice": None,
        "threeMonthPrice": None,
        "sixMonthPrice": None,
        "oneWeekPrice": None,
        "communitySpotPrice": wire.money(gpu.min_bid),
        "secureSpotPrice": wire.money(gpu.min_bid),
    }


def _machine(found: Pod) -> dict:
    machine = found.machine
    return {
        "id": machine.public_id,
        "podHostId": f"{found.public_id}-{machine.pk:08d}",
        "gpuTypeId": found.gpu_type_id,
        "gpuDisplayName": found.gpu_type.display_name if found.gpu_type else None,
        "location": machine.data_center_id,
        "dataCenterId": machine.data_center_id,
        "secureCloud": found.cloud_type == CloudType.SECURE,
    }


def _public_address(found: Pod) -> tuple[str | None, dict[str, int]]:
    mappings = [m for m in found.port_mappings if m.get("public")]
    host = next((m.get("host") for m in mappings if m.get("host")), None)
    return host, {str(m["private"]): m["public"] for m in mappings if m.get("private")}


def pod(
    found: Pod, *, machine: bool = False, volume: bool = False, endpoint_id: str | None = None
) -> dict:
    """A pod; `machine` / `volume`: ?includeMachine / ?includeNetworkVolume (their rows are
    select_related by the caller)."""
    price = found.price().total
    ip, mappings = _public_address(found)
    shape = {
        "id": found.public_id,
        "name": found.name,
        "desiredStatus": wire.DESIRED_STATUS[found.status],
        "image": found.image,
        "imageName": found.image,
        "computeType": "GPU" if found.is_gpu else "CPU",
        "gpuTypeId": found.gpu_type_id,
        "gpu": _gpu(found),
        "gpuCount": found.gpu_count,
        "vcpuCount": found.vcpu,
        "memoryInGb": found.memory_gb,
        "containerDiskInGb": found.container_disk_gb,
        "volumeInGb": found.volume_gb,
        "volumeMountPath": found.volume_mount_path,
        "ports": ports(found.ports),
        "env": env(found.env),
        "publicIp": ip,
        "portMappings": mappings,
        "costPerHr": wire.money(price),
        "adjustedCostPerHr": wire.money(price),
        "machineId": found.machine.public_id,
        "networkVolumeId": found.network_volume.public_id if found.network_volume else None,
        "templateId": found.template.public_id if found.template else None,
        "endpointId": endpoint_id,
        "interruptible": found.pricing == Pod.Pricing.SPOT,
        "locked": False,
        "createdAt": found.created_at.isoformat(),
        "lastStartedAt": found.started_at.isoformat() if found.started_at else None,
        "lastStatusChange": f"{found.get_status_display()}: {found.status_changed_at.isoformat()}",
        "uptimeSeconds": found.uptime_seconds(),
        "dockerEntrypoint": [],
        "dockerStartCmd": command(found.start_command),
        "containerRegistryAuthId": None,
        "consumerUserId": str(found.created_by_id) if found.created_by_id else None,
        "savingsPlans": [],
    }
    if machine:
        shape["machine"] = _machine(found)
    if volume:
        shape["networkVolume"] = (
            network_volume(found.network_volume) if found.network_volume else None
        )
    return shape


def endpoint(
    found: Endpoint,
    active_gpus: list,
    *,
    with_template: bool = False,
    workers: list[Pod] | None = None,
) -> dict:
    """An endpoint, built on the GraphQL one (api.graphql.endpoints.endpoint) with REST's
    types: networkVolumeIds bare strings, env an object, flashboot a bool. `locations` is left
    out: runpodctl's struct has it as a string, the spec as dataCenterIds (none: not pinned)."""
    graphql = graphql_endpoints.endpoint(found, active_gpus)
    shape = {
        name: graphql[name]
        for name in (
            "id", "name", "templateId", "computeType", "gpuIds", "gpuCount", "instanceIds",
            "networkVolumeId", "idleTimeout", "executionTimeoutMs", "scalerType",
            "scalerValue", "workersMin", "workersMax", "userId", "version", "createdAt",
            "minCudaVersion",
        )
    }  # fmt: skip
    volume = found.network_volume
    shape |= {
        "gpuTypeIds": list(found.gpu_type_ids) if found.is_gpu else [],
        "dataCenterIds": [],
        "networkVolumeIds": [volume.public_id] if volume else [],
        "allowedCudaVersions": [],
        "flashboot": False,
        "env": env(found.env),
    }
    if with_template:
        shape["template"] = template(found.template) if found.template else None
    if workers is not None:
        shape["workers"] = [pod(worker, endpoint_id=found.public_id) for worker in workers]
    return shape
