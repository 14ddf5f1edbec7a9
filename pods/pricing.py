"""What a pod costs per hour, split into compute and storage, in exact Decimal.

Used by the deploy review, the pods list, the burn rate billing asks for, and (later) metering.
Storage prices are per GB per month (SPEC.md, Money); a month is 30 days of 24 hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from billing.money import ZERO, to_money

HOURS_PER_MONTH = Decimal(30 * 24)
VOLUME_RUNNING_PER_GB_MONTH = Decimal("0.10")
VOLUME_STOPPED_PER_GB_MONTH = Decimal("0.20")
NETWORK_VOLUME_PER_GB_MONTH = Decimal("0.07")
NETWORK_VOLUME_LARGE_PER_GB_MONTH = Decimal("0.05")
NETWORK_VOLUME_LARGE_FROM_GB = 1000
# The seeded serverless price of a GPU (or CPU instance): its secure on-demand price x this,
# billed per second of a worker's ready time (RunPod's flex workers cost about 1.5-1.7x).
SERVERLESS_MARKUP = Decimal("1.5")


def container_disk_per_gb_month() -> Decimal:
    return Decimal(str(getattr(settings, "CONTAINER_DISK_PRICE_PER_GB_MONTH", "0.10")))


@dataclass(frozen=True)
class PodPrice:
    compute: Decimal
    storage: Decimal

    @property
    def total(self) -> Decimal:
        return self.compute + self.storage


def per_hour(gb: int, per_gb_month: Decimal) -> Decimal:
    return to_money(Decimal(gb) * per_gb_month / HOURS_PER_MONTH)


def compute_per_hour(
    *, gpu_type, gpu_count: int, cloud_type: str, pricing: str, bid_per_gpu, cpu_instance
) -> Decimal:
    if gpu_type is not None:
        unit = bid_per_gpu if pricing == "spot" else gpu_type.price(cloud_type)
        return to_money(unit * gpu_count)
    if cpu_instance is not None:
        return to_money(cpu_instance.price)
    return ZERO


def storage_per_hour(*, running: bool, container_disk_gb: int, volume_gb: int) -> Decimal:
    """Pod volume and (while running) container disk. Network volumes are billed on their own."""
    volume_rate = VOLUME_RUNNING_PER_GB_MONTH if running else VOLUME_STOPPED_PER_GB_MONTH
    total = per_hour(volume_gb, volume_rate)
    if running:
        total += per_hour(container_disk_gb, container_disk_per_gb_month())
    return to_money(total)


def network_volume_per_hour(size_gb: int) -> Decimal:
    large = size_gb >= NETWORK_VOLUME_LARGE_FROM_GB
    rate = NETWORK_VOLUME_LARGE_PER_GB_MONTH if large else NETWORK_VOLUME_PER_GB_MONTH
    return per_hour(size_gb, rate)


def pod_price(pod, *, status: str) -> PodPrice:
    """The pod's price per hour at `status`: holding statuses pay compute; terminated pays 0."""
    from pods.models import Pod

    if status == Pod.Status.TERMINATED:
        return PodPrice(ZERO, ZERO)
    running = status in Pod.HOLDING
    compute = ZERO
    if running:
        compute = compute_per_hour(
            gpu_type=pod.gpu_type if pod.gpu_count else None,
            gpu_count=pod.gpu_count,
            cloud_type=pod.cloud_type,
            pricing=pod.pricing,
            bid_per_gpu=pod.bid_per_gpu,
            cpu_instance=pod.cpu_instance,
        )
    volume_gb = pod.volume_gb if not pod.network_volume_id else 0
    storage = storage_per_hour(
        running=running, container_disk_gb=pod.container_disk_gb, volume_gb=volume_gb
    )
    return PodPrice(compute, storage)


@dataclass(frozen=True)
class Spent:
    compute: Decimal
    storage: Decimal

    @property
    def total(self) -> Decimal:
        return self.compute + self.storage


def spent(pod) -> Spent:
    """What the pod has been charged so far: its usage rows in the ledger (per minute before
    the roll-up, per hour since) and what its open hour has been charged (pods.metering)."""
    from django.db.models import Q, Sum

    from billing.models import LedgerEntry
    from pods.metering import pod_accrued

    kinds = LedgerEntry.Kind
    totals = LedgerEntry.objects.filter(source_type="pod", source_id=pod.public_id).aggregate(
        compute=Sum("amount", filter=Q(kind=kinds.USAGE_COMPUTE)),
        storage=Sum("amount", filter=Q(kind=kinds.USAGE_STORAGE)),
    )
    accrued = pod_accrued(pod)
    compute = (totals["compute"] or ZERO) + accrued.get(kinds.USAGE_COMPUTE, ZERO)
    storage = (totals["storage"] or ZERO) + accrued.get(kinds.USAGE_STORAGE, ZERO)
    return Spent(-compute, -storage)
