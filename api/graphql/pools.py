"""RunPod's serverless GPU pools <-> our GPU types: the one table.

`saveEndpoint(gpuIds: "AMPERE_48,ADA_24")` names pools, not GPU types; runpodctl asks
`serverlessGpuPools { id gpuTypeIds }` to translate a GPU type into its pool. The pools and
their members are RunPod's (docs: flash/configuration/gpu-types, "GPU pools"), by architecture
and memory; GPU types of our catalogue that RunPod lists in no pool are placed by the same rule
(marked "by memory") or left out (cards under 16 GB, AMD): a pool promises at least its memory.

An endpoint stores GPU type ids in priority order (Endpoint.gpu_type_ids): each pool named
becomes its active catalogue members, cheapest serverless price first. Reading back, a pool is
named again when all of its active members are on the endpoint (in any place), else the GPU
type ids themselves are given, so what was saved reads back and saves back unchanged. A GPU
type id is accepted in gpuIds too, for endpoints whose GPU list is no whole pool."""

from __future__ import annotations

from pods.models import GpuType

POOLS: dict[str, tuple[str, ...]] = {
    "AMPERE_16": (
        "NVIDIA RTX A4000",
        "NVIDIA RTX 4000 Ada Generation",
        "NVIDIA RTX 2000 Ada Generation",
        "NVIDIA GeForce RTX 4080",  # by memory: 16 GB
    ),
    "AMPERE_24": (
        "NVIDIA RTX A4500",
        "NVIDIA RTX A5000",
        "NVIDIA GeForce RTX 3090",
        "NVIDIA GeForce RTX 3090 Ti",  # by memory: Ampere, 24 GB
        "NVIDIA A30",  # by memory: Ampere, 24 GB
    ),
    "ADA_24": ("NVIDIA L4", "NVIDIA GeForce RTX 4090"),
    "ADA_32_PRO": (
        "NVIDIA GeForce RTX 5090",
        "NVIDIA RTX 5000 Ada Generation",  # by memory: Ada, 32 GB
    ),
    "AMPERE_48": ("NVIDIA A40", "NVIDIA RTX A6000"),
    "ADA_48_PRO": ("NVIDIA L40S", "NVIDIA L40", "NVIDIA RTX 6000 Ada Generation"),
    "AMPERE_80": ("NVIDIA A100 80GB PCIe", "NVIDIA A100-SXM4-80GB"),
    "ADA_80_PRO": ("NVIDIA H100 PCIe", "NVIDIA H100 80GB HBM3", "NVIDIA H100 NVL"),
    "BLACKWELL_96": ("NVIDIA RTX PRO 6000 Blackwell Server Edition",),
    "HOPPER_141": ("NVIDIA H200",),
    "BLACKWELL_180": ("NVIDIA B200",),
}
POOL_OF = {gpu: pool for pool, gpus in POOLS.items() for gpu in gpus}


class UnknownGpu(ValueError):
    """A gpuIds item that is neither a pool nor an offered GPU type."""


def active_gpus() -> list[GpuType]:
    return list(GpuType.objects.filter(is_active=True).order_by("serverless_price", "id"))


def members(pool: str, active: list[GpuType] | None = None) -> list[str]:
    """The pool's GPU types offered here, cheapest serverless price first."""
    wanted = set(POOLS[pool])
    return [gpu.id for gpu in (active if active is not None else active_gpus()) if gpu.id in wanted]


def pools() -> list[dict]:
    """`serverlessGpuPools`: the pools with at least one GPU type offered here."""
    active = active_gpus()
    listed = [{"id": pool, "gpuTypeIds": members(pool, active)} for pool in POOLS]
    return [pool for pool in listed if pool["gpuTypeIds"]]


def gpu_type_ids(text: str) -> list[str]:
    """ "AMPERE_48,ADA_24" -> GPU type ids in priority order (pools expanded, no repeats)."""
    active = active_gpus()
    offered = {gpu.id for gpu in active}
    result: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item.upper() in POOLS:
            found = members(item.upper(), active)
            if not found:
                raise UnknownGpu(f"no GPU type of pool {item.upper()} is offered here")
        elif item in offered:
            found = [item]
        else:
            raise UnknownGpu(f"{item[:60]!r} is not a serverless GPU pool ({', '.join(POOLS)})")
        result.extend(gpu for gpu in found if gpu not in result)
    if not result:
        raise UnknownGpu("name at least one serverless GPU pool")
    return result


def gpu_ids_text(gpu_ids: list[str], active: list[GpuType] | None = None) -> str:
    """An endpoint's GPU type ids as gpuIds: whole pools by name, other GPU types by id
    (`active`: the offered GPU types, read once for a whole list of endpoints)."""
    active = active if active is not None else active_gpus()
    stored = set(gpu_ids)
    names: list[str] = []
    for gpu in gpu_ids:
        pool = POOL_OF.get(gpu)
        found = set(members(pool, active)) if pool else set()
        whole = gpu in found and found <= stored
        name = pool if whole else gpu
        if name not in names:
            names.append(name)
    return ",".join(names)
