"""Our rows as RunPod's GraphQL objects (plain dicts the default resolvers read).

Money is Decimal in the console; RunPod's wire carries it as JSON floats, so the conversion to
float happens here and nowhere else."""

from decimal import Decimal

from django.db.models import Max, Q

from pods.models import CloudType, DataCenter, GpuType, Machine, NetworkVolume, Pod, PodTemplate

# Our statuses as RunPod's desiredStatus (RUNNING / EXITED / TERMINATED).
DESIRED_STATUS = {
    Pod.Status.CREATED: "RUNNING",
    Pod.Status.STARTING: "RUNNING",
    Pod.Status.RUNNING: "RUNNING",
    Pod.Status.STOPPING: "EXITED",
    Pod.Status.EXITED: "EXITED",
    Pod.Status.FAILED: "EXITED",
    Pod.Status.PREEMPTED: "EXITED",
    Pod.Status.TERMINATED: "TERMINATED",
}


def money(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def ports_text(ports: list[dict]) -> str:
    return ",".join(f"{entry['port']}/{entry['protocol']}" for entry in ports)


def runtime(pod: Pod) -> dict | None:
    """RunPod's `runtime`: null until the pod runs, then where its ports are reachable."""
    if pod.status != Pod.Status.RUNNING:
        return None
    ports = [
        {
            "ip": mapping.get("host"),
            "isIpPublic": False,
            "privatePort": mapping.get("private"),
            "publicPort": mapping.get("public"),
            "type": mapping.get("protocol"),
        }
        for mapping in pod.port_mappings
    ]
    return {"uptimeInSeconds": pod.uptime_seconds(), "ports": ports}


def pod(pod: Pod) -> dict:
    machine = pod.machine
    return {
        "id": pod.public_id,
        "name": pod.name,
        "imageName": pod.image,
        "env": [f"{row['key']}={row['value']}" for row in pod.env],
        "machineId": machine.public_id,
        "machine": {
            "podHostId": f"{pod.public_id}-{machine.pk:08d}",
            "gpuDisplayName": pod.gpu_type.display_name if pod.gpu_type else None,
            "location": machine.data_center_id,
        },
        "desiredStatus": DESIRED_STATUS[pod.status],
        "lastStatusChange": f"{pod.get_status_display()}: {pod.status_changed_at.isoformat()}",
        "costPerHr": money(pod.price().total),
        "containerDiskInGb": pod.container_disk_gb,
        "volumeInGb": pod.volume_gb,
        "volumeMountPath": pod.volume_mount_path,
        "dockerArgs": pod.start_command,
        "dockerId": None,
        "gpuCount": pod.gpu_count,
        "memoryInGb": pod.memory_gb,
        "vcpuCount": pod.vcpu,
        "podType": "INTERRUPTABLE" if pod.pricing == Pod.Pricing.SPOT else "RESERVED",
        "port": pod.ports[0]["port"] if pod.ports else None,
        "ports": ports_text(pod.ports),
        "uptimeSeconds": pod.uptime_seconds(),
        "runtime": runtime(pod),
    }


def template(template: PodTemplate) -> dict:
    return {
        "id": template.public_id,
        "name": template.name,
        "imageName": template.image,
        "dockerArgs": template.start_command,
        "containerDiskInGb": template.container_disk_gb,
        "volumeInGb": template.volume_gb,
        "volumeMountPath": template.volume_mount_path,
        "ports": ports_text(template.ports),
        "env": [{"key": row["key"], "value": row["value"]} for row in template.env],
        "isServerless": template.is_serverless,
        "isPublic": template.is_public,
        "isRunpod": template.is_official,
        "category": None,
        "portsConfig": [
            {"port": str(row["port"]), "name": row["label"]}
            for row in template.ports
            if row.get("label")
        ],
        "containerRegistryAuthId": None,
        "readme": template.readme,
        "advancedStart": False,
        "startJupyter": False,
        "startScript": None,
        "startSsh": True,
    }


def network_volume(volume: NetworkVolume) -> dict:
    return {
        "id": volume.public_id,
        "name": volume.name,
        "size": volume.size_gb,
        "dataCenterId": volume.data_center_id,
    }


def _clouds(gpu: GpuType) -> dict:
    machines = Machine.objects.available().filter(gpu_type=gpu)
    return machines.aggregate(
        max_count=Max("gpu_count"),
        secure=Max("gpu_count", filter=Q(cloud_type=CloudType.SECURE)),
        community=Max("gpu_count", filter=Q(cloud_type=CloudType.COMMUNITY)),
    )


def gpu_type(gpu: GpuType) -> dict:
    clouds = _clouds(gpu)
    return {
        "id": gpu.id,
        "displayName": gpu.display_name,
        "manufacturer": gpu.manufacturer,
        "memoryInGb": gpu.memory_gb,
        "cudaCores": None,
        "maxGpuCount": clouds["max_count"] or 0,
        "secureCloud": bool(clouds["secure"]),
        "communityCloud": bool(clouds["community"]),
        "securePrice": money(gpu.secure_price),
        "communityPrice": money(gpu.community_price),
        "oneWeekPrice": None,
        "oneMonthPrice": None,
        "threeMonthPrice": None,
        "secureSpotPrice": money(gpu.min_bid),
        "communitySpotPrice": money(gpu.min_bid),
        "_gpu": gpu,
    }


def stock_status(free: int) -> str | None:
    if free <= 0:
        return None
    return "High" if free >= 8 else "Medium" if free >= 3 else "Low"


def lowest_price(gpu: GpuType, *, gpu_count: int, secure_only: bool) -> dict:
    """The cheapest on-demand offer with `gpu_count` free GPUs on one machine right now."""
    machines = Machine.objects.available().filter(gpu_type=gpu).with_capacity()
    if secure_only:
        machines = machines.filter(cloud_type=CloudType.SECURE)
    fitting = [m for m in machines if m.free_gpus >= gpu_count]
    best = min(fitting, key=lambda m: gpu.price(m.cloud_type), default=None)
    free = max((m.free_gpus for m in fitting), default=0)
    return {
        "gpuName": gpu.display_name,
        "gpuTypeId": gpu.id,
        "minimumBidPrice": money(gpu.min_bid),
        "uninterruptablePrice": money(gpu.price(best.cloud_type)) if best else None,
        "minMemory": best.memory_gb_per_gpu * gpu_count if best else None,
        "minVcpu": best.vcpu_per_gpu * gpu_count if best else None,
        "stockStatus": stock_status(free),
    }


def data_centers() -> list[dict]:
    """Every data centre with the free GPUs of each type in it right now (runpodctl's
    `datacenter list` and `gpu list`): three queries, whatever the number of machines."""
    free: dict[str, dict[str, int]] = {}
    machines = Machine.objects.available().exclude(gpu_type=None).with_capacity()
    for machine in machines:
        per_gpu = free.setdefault(machine.data_center_id, {})
        per_gpu[machine.gpu_type_id] = per_gpu.get(machine.gpu_type_id, 0) + max(
            machine.free_gpus, 0
        )
    names = dict(GpuType.objects.values_list("id", "display_name"))
    return [
        {
            "id": center.id,
            "name": center.name,
            "location": center.country,
            "gpuAvailability": [
                {"gpuTypeId": gpu, "displayName": names.get(gpu), "stockStatus": stock_status(n)}
                for gpu, n in sorted(free.get(center.id, {}).items())
            ],
        }
        for center in DataCenter.objects.order_by("id")
    ]
