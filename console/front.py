"""What the public front page shows: the GPU catalogue with live prices and free GPUs.

Three queries (GPU types, machines with their free capacity, CPU instance types), then kept in
the cache for OFFERS_TTL seconds: anonymous visitors may arrive in bursts, and a price or a
free count half a minute old is still the truth a visitor needs to decide.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache

from pods import pricing
from pods.models import CloudType, CpuInstanceType, GpuType, Machine

OFFERS_TTL = 30
OFFERS_CACHE_KEY = "front:offers"


@dataclass(frozen=True)
class GpuOffer:
    name: str
    memory_gb: int
    secure_price: Decimal
    community_price: Decimal
    spot_from: Decimal
    free_secure: int
    free_community: int

    @property
    def free(self) -> int:
        return self.free_secure + self.free_community


@dataclass(frozen=True)
class CpuOffer:
    name: str
    vcpu: int
    memory_gb: int
    price: Decimal


def _free_gpus() -> dict[tuple[str, str], int]:
    """(GPU type id, cloud type) -> GPUs free on listed, online machines."""
    machines = Machine.objects.available().exclude(gpu_type=None).with_capacity()
    free: dict[tuple[str, str], int] = {}
    for type_id, cloud, count in machines.values_list("gpu_type_id", "cloud_type", "free_gpus"):
        free[type_id, cloud] = free.get((type_id, cloud), 0) + max(count, 0)
    return free


def _gpu_offers() -> list[GpuOffer]:
    free = _free_gpus()
    return [
        GpuOffer(
            name=gpu.display_name,
            memory_gb=gpu.memory_gb,
            secure_price=gpu.secure_price,
            community_price=gpu.community_price,
            spot_from=gpu.min_bid,
            free_secure=free.get((gpu.id, CloudType.SECURE), 0),
            free_community=free.get((gpu.id, CloudType.COMMUNITY), 0),
        )
        for gpu in GpuType.objects.filter(is_active=True)
    ]


def _cpu_offers() -> list[CpuOffer]:
    return [
        CpuOffer(name=cpu.name, vcpu=cpu.vcpu, memory_gb=cpu.memory_gb, price=cpu.price)
        for cpu in CpuInstanceType.objects.all()
    ]


def _storage() -> dict:
    return {
        "volume_running": pricing.VOLUME_RUNNING_PER_GB_MONTH,
        "volume_stopped": pricing.VOLUME_STOPPED_PER_GB_MONTH,
        "network_volume": pricing.NETWORK_VOLUME_PER_GB_MONTH,
        "network_volume_large": pricing.NETWORK_VOLUME_LARGE_PER_GB_MONTH,
        "network_volume_large_from_gb": pricing.NETWORK_VOLUME_LARGE_FROM_GB,
        "min_top_up": settings.MIN_TOP_UP,
    }


def _offers() -> dict:
    return {"gpus": _gpu_offers(), "cpus": _cpu_offers(), "storage": _storage()}


def offers() -> dict:
    """{"gpus": [GpuOffer], "cpus": [CpuOffer], "storage": {...}}, cached for OFFERS_TTL."""
    return cache.get_or_set(OFFERS_CACHE_KEY, _offers, OFFERS_TTL)
