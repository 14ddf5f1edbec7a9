"""What the deploy wizard shows for each GPU type before Deploy: how many GPUs are free where
the pod may go and, when it cannot be placed there, why. The filters are place()'s (runtime,
cloud type, data centre, the network volume's data centre), read without locks: a preview,
which the deploy itself checks again under its locks."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Q, Sum
from django.db.models.functions import Coalesce

from pods.models import CloudType, Machine, NetworkVolume, Pod
from teams.models import Team


@dataclass(frozen=True)
class Where:
    """The wizard's answers that decide where a pod may go."""

    cloud_type: str | None = None
    data_center: str | None = None
    volume: NetworkVolume | None = None
    runtimes: tuple[str, ...] = ()
    on_demand: bool = True
    team: Team | None = None  # a host team also sees its own machines in burn-in

    def center(self) -> str | None:
        """A network volume fixes the data centre: the pod must run next to it."""
        return self.volume.data_center_id if self.volume else self.data_center

    def cloud_label(self) -> str:
        return CloudType(self.cloud_type).label if self.cloud_type else "any cloud"


@dataclass(frozen=True)
class Offer:
    free: int = 0  # free GPUs on the machines the pod may use
    best: int = 0  # most GPUs one of them can give (an on-demand pod preempts spot pods)
    largest: int = 0  # GPUs of the largest of them
    reason: str = ""  # why no pod of this type can be placed; "" when one can

    @property
    def available(self) -> bool:
        return not self.reason


NO_MACHINES = Offer(reason="No machine with this GPU is listed right now.")


@dataclass(frozen=True)
class _Machine:
    gpu_type: str
    cloud_type: str
    data_center: str
    runtime: str
    gpu_count: int
    free: int
    spot: int  # GPUs held by spot pods

    def obtainable(self, on_demand: bool) -> int:
        return max(self.free, 0) + (self.spot if on_demand else 0)


def _machines(team: Team | None) -> list[_Machine]:
    spot = Q(pods__status__in=Pod.HOLDING, pods__pricing=Pod.Pricing.SPOT)
    rows = (
        Machine.objects.available(team)
        .exclude(gpu_type=None)
        .with_capacity()
        .annotate(spot_gpus=Coalesce(Sum("pods__gpu_count", filter=spot), 0))
        .values_list(
            "gpu_type_id",
            "cloud_type",
            "data_center_id",
            "runtime",
            "gpu_count",
            "free_gpus",
            "spot_gpus",
        )
    )
    return [_Machine(*row) for row in rows]


def gpu_offers(where: Where) -> dict[str, Offer]:
    """GPU type id -> its Offer under `where` (types no listed machine has are absent: use
    NO_MACHINES). One query."""
    by_type: dict[str, list[_Machine]] = defaultdict(list)
    for machine in _machines(where.team):
        by_type[machine.gpu_type].append(machine)
    return {gpu: _offer(machines, where) for gpu, machines in by_type.items()}


def _offer(machines: list[_Machine], where: Where) -> Offer:
    conflict = volume_conflict(where)
    if conflict:
        return Offer(reason=conflict)
    machines, reason = _narrowed(machines, where)
    if reason:
        return Offer(reason=reason)
    best = max(m.obtainable(where.on_demand) for m in machines)
    offer = Offer(
        free=sum(max(m.free, 0) for m in machines),
        best=best,
        largest=max(m.gpu_count for m in machines),
    )
    if best == 0:
        center = where.center()
        place = f" in {center}" if center else ""
        return Offer(largest=offer.largest, reason=f"No {where.cloud_label()} machine free{place}.")
    return offer


def volume_conflict(where: Where) -> str:
    """The message when the chosen data centre is not the network volume's."""
    volume, center = where.volume, where.data_center
    if volume is None or not center or center == volume.data_center_id:
        return ""
    return f"Volume {volume.name} is in {volume.data_center_id}, not {center}."


def _narrowed(machines: list[_Machine], where: Where) -> tuple[list[_Machine], str]:
    """The machines a pod may use under `where`, or the reason none is left, checked in
    place()'s order so the wizard names the constraint the deploy would name."""
    if where.runtimes:
        machines = [m for m in machines if m.runtime in where.runtimes]
        if not machines:
            kinds = " or ".join(where.runtimes)
            return [], f"The template runs on {kinds} machines; none has this GPU."
    if where.cloud_type:
        machines = [m for m in machines if m.cloud_type == where.cloud_type]
        if not machines:
            return [], f"None in {where.cloud_label()}."
    center = where.center()
    if center:
        machines = [m for m in machines if m.data_center == center]
        if not machines and where.volume:
            return [], f"Not in {center}, where volume {where.volume.name} is."
        if not machines:
            return [], f"None in {where.cloud_label()} in {center}."
    return machines, ""
