"""Placement: which machine runs a new pod. Atomic: the candidate machines are locked
(SELECT ... FOR UPDATE, in primary-key order) before their free capacity is read, so concurrent
deploys queue on the same rows and never place more GPUs than a machine has.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q

from pods.models import CloudType, CpuInstanceType, DataCenter, GpuType, Machine, Pod
from teams.models import Team

# Spot pods that may still be preempted. A stopping one is already giving its GPUs back (to
# whoever preempted it, or to its owner's stop): counted as held until it has stopped, and never
# freed a second time for another newcomer, which would place more GPUs than the machine has.
PREEMPTIBLE = (Pod.Status.CREATED, Pod.Status.STARTING, Pod.Status.RUNNING)


class PlacementError(Exception):
    """No machine fits; the message names the constraint that failed."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Need:
    cloud_type: str
    data_center: DataCenter | None
    gpu_type: GpuType | None = None
    gpu_count: int = 0
    cpu_instance: CpuInstanceType | None = None
    # A spot bid per GPU; None for on-demand, which outbids every spot pod.
    bid_per_gpu: Decimal | None = None
    # The runtimes the pod's template runs on (PodTemplate.runtimes); empty: any.
    runtimes: tuple[str, ...] = ()
    # The deploying team: a host team may place on its own machines in burn-in.
    team: Team | None = None

    def outbids(self, pod: Pod) -> bool:
        return self.bid_per_gpu is None or pod.bid_per_gpu < self.bid_per_gpu

    def where(self) -> str:
        text = CloudType(self.cloud_type).label
        return f"{text} in {self.data_center.id}" if self.data_center else text


def candidates(need: Need):
    """Machines in the pool for this team (Machine.objects.available: reliability, burn-in)
    of the wanted kind; a spot bid only reaches machines whose host's minimum bid it meets."""
    machines = Machine.objects.available(need.team)
    if need.bid_per_gpu is not None:
        machines = machines.filter(
            Q(min_bid_per_gpu=None) | Q(min_bid_per_gpu__lte=need.bid_per_gpu)
        )
    if need.gpu_type is not None:
        return machines.filter(gpu_type=need.gpu_type)
    return machines.filter(gpu_count=0)


def narrow(need: Need):
    """Candidates in the requested cloud and data centre, or the error saying which filter
    emptied the list."""
    kind = need.gpu_type.display_name if need.gpu_type else "CPU"
    machines = candidates(need)
    if not machines.exists():
        raise PlacementError(f"No {kind} machines are available right now.", field="gpu_type")
    if need.runtimes:
        machines = machines.filter(runtime__in=need.runtimes)
        if not machines.exists():
            runtimes = " or ".join(need.runtimes)
            raise PlacementError(
                f"This template runs on {runtimes} machines only, and no {kind} machine of that "
                "kind is available.",
                field="template",
            )
    machines = machines.filter(cloud_type=need.cloud_type)
    if not machines.exists():
        label = CloudType(need.cloud_type).label
        raise PlacementError(f"No {kind} machines in {label}.", field="cloud_type")
    if need.data_center is not None:
        machines = machines.filter(data_center=need.data_center)
        if not machines.exists():
            raise PlacementError(f"No {kind} machines in {need.where()}.", field="data_center")
    return machines


@dataclass(frozen=True)
class Placement:
    machine: Machine
    # Spot pods whose GPUs the new pod takes: the lowest bids, just enough of them.
    preempt: tuple[Pod, ...] = ()


def place(need: Need) -> Placement:
    """Lock the candidates and pick one that fits, preempting lower spot bids only when no
    machine has enough free GPUs. Call inside transaction.atomic()."""
    machines = narrow(need)
    # NO KEY UPDATE: deploys exclude each other, but a transaction that references a machine
    # (a pod row saved by a status change, checked by PostgreSQL's deferred foreign key at
    # commit while it holds the team's account lock) is not blocked, which deadlocked.
    ids = list(machines.select_for_update(no_key=True).order_by("pk").values_list("pk", flat=True))
    # Read capacity after the locks: any deploy that got here first has committed its pod.
    ranked = Machine.objects.filter(pk__in=ids).with_capacity()
    if need.gpu_type is None:
        return Placement(_fit_cpu(need, ranked))
    try:
        return Placement(_fit_gpus(need, ranked))
    except PlacementError:
        placement = _fit_by_preempting(need, ranked)
        if placement is None:
            raise
        return placement


def room_on(machine: Machine, need: Need) -> tuple[Pod, ...] | None:
    """What a stopped pod starting again on its own machine (its volume is there) must preempt
    for need.gpu_count GPUs: nothing when they are free, else the lowest spot bids it outbids
    (the deploy rule below), or None when even those are not enough. The caller holds the
    machine's lock."""
    ranked = Machine.objects.filter(pk=machine.pk).with_capacity()
    if ranked[0].free_gpus >= need.gpu_count:
        return ()
    placement = _fit_by_preempting(need, ranked)
    return placement.preempt if placement else None


def _fit_by_preempting(need: Need, ranked) -> Placement | None:
    """The machine where the fewest, cheapest spot pods make room (SPEC.md: an on-demand
    start or a higher bid preempts the lowest bids)."""
    best: tuple | None = None
    for machine in ranked:
        victims, freed = [], max(machine.free_gpus, 0)
        spot = machine.pods.filter(
            status__in=PREEMPTIBLE, pricing=Pod.Pricing.SPOT, gpu_count__gt=0
        )
        for pod in spot.order_by("bid_per_gpu", "created_at"):
            if freed >= need.gpu_count or not need.outbids(pod):
                break
            victims.append(pod)
            freed += pod.gpu_count
        if freed < need.gpu_count:
            continue
        cost = (sum(p.bid_per_gpu * p.gpu_count for p in victims), len(victims), machine.pk)
        if best is None or cost < best[0]:
            best = (cost, Placement(machine, tuple(victims)))
    return best[1] if best else None


def _fit_gpus(need: Need, ranked) -> Machine:
    largest = max(m.gpu_count for m in ranked)
    name = need.gpu_type.display_name
    if need.gpu_count > largest:
        raise PlacementError(
            f"No machine has {need.gpu_count} × {name} in {need.where()}; the largest has "
            f"{largest}.",
            field="gpu_count",
        )
    fitting = [m for m in ranked if m.free_gpus >= need.gpu_count]
    if not fitting:
        most = max(m.free_gpus for m in ranked)
        raise PlacementError(
            f"Not enough free {name} in {need.where()}: {need.gpu_count} requested, at most "
            f"{most} free on one machine.",
            field="gpu_count",
        )
    # Best fit: the fullest machine that fits keeps large machines free for large pods.
    return min(fitting, key=lambda m: (m.free_gpus, m.pk))


def _fit_cpu(need: Need, ranked) -> Machine:
    instance = need.cpu_instance
    fitting = [
        m for m in ranked if m.free_vcpu >= instance.vcpu and m.free_memory_gb >= instance.memory_gb
    ]
    if not fitting:
        raise PlacementError(
            f"No CPU machine in {need.where()} has {instance.vcpu} vCPU and "
            f"{instance.memory_gb} GB RAM free.",
            field="cpu_instance",
        )
    return min(fitting, key=lambda m: (m.free_vcpu, m.pk))


def free_gpu_counts(
    *, cloud_type: str | None, data_center: DataCenter | None, runtimes: tuple[str, ...] = ()
) -> dict:
    """GPU type id -> (free GPUs in total, most free on one machine, largest machine), on
    machines of `runtimes` (any when empty)."""
    machines = Machine.objects.available().exclude(gpu_type=None).with_capacity()
    if runtimes:
        machines = machines.filter(runtime__in=runtimes)
    if cloud_type:
        machines = machines.filter(cloud_type=cloud_type)
    if data_center is not None:
        machines = machines.filter(data_center=data_center)
    counts: dict[str, tuple[int, int, int]] = {}
    for machine in machines:
        total, best, largest = counts.get(machine.gpu_type_id, (0, 0, 0))
        free = max(machine.free_gpus, 0)
        counts[machine.gpu_type_id] = (
            total + free,
            max(best, free),
            max(largest, machine.gpu_count),
        )
    return counts
