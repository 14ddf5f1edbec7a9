"""Every change a person asks of pods, templates and volumes: one transaction, one audit row,
side effects (runtime work in Celery, browser pushes) on commit.

The runtime work itself (starting and stopping processes) lives in pods/lifecycle.py and runs in
Celery tasks, so a web request never waits for a pod (except in eager mode, in tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing import usage
from billing.money import ZERO, format_usd, to_money
from billing.services import Affordability, can_afford
from pods import live
from pods.metering import ceil_minute, change_status, settle_network_volume, team_burn_rates
from pods.models import (
    CpuInstanceType,
    DataCenter,
    GpuType,
    Machine,
    NetworkVolume,
    Pod,
    PodTemplate,
)
from pods.pricing import PodPrice, compute_per_hour, storage_per_hour
from pods.scheduling import PREEMPTIBLE, Need, PlacementError, place, room_on
from teams import audit
from teams.models import Team, User


class PodError(Exception):
    """A refused request; `field` names the form field it belongs to, `code` what went wrong."""

    def __init__(self, message: str, *, field: str | None = None, code: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.code = code


@dataclass
class DeployRequest:
    """A validated deploy, as the wizard (or the API) produces it."""

    name: str
    cloud_type: str
    image: str
    container_disk_gb: int
    volume_gb: int = 0
    volume_mount_path: str = "/workspace"
    gpu_type: GpuType | None = None
    gpu_count: int = 0
    cpu_instance: CpuInstanceType | None = None
    data_center: DataCenter | None = None
    template: PodTemplate | None = None
    network_volume: NetworkVolume | None = None
    start_command: str = ""
    env: list[dict] = field(default_factory=list)
    ports: list[dict] = field(default_factory=list)
    pricing: str = Pod.Pricing.ON_DEMAND
    bid_per_gpu: Decimal | None = None
    # A serverless worker's pod (serverless.launch) is placed and run like any other.
    kind: str = Pod.Kind.POD

    def need(self, *, team: Team | None = None) -> Need:
        data_center = self.data_center
        if self.network_volume is not None:
            data_center = self.network_volume.data_center
        return Need(
            cloud_type=self.cloud_type,
            data_center=data_center,
            gpu_type=self.gpu_type,
            gpu_count=self.gpu_count,
            cpu_instance=self.cpu_instance,
            bid_per_gpu=self.bid_per_gpu if self.pricing == Pod.Pricing.SPOT else None,
            runtimes=tuple(self.template.runtimes) if self.template else (),
            team=team,
        )

    def price(self) -> PodPrice:
        """What the pod will cost per hour while running. A serverless worker's pod is billed
        by serverless.metering at the serverless price (storage included), never by pods."""
        if self.kind == Pod.Kind.WORKER:
            if self.gpu_type is None:
                return PodPrice(self.cpu_instance.serverless_price, ZERO)
            return PodPrice(to_money(self.gpu_type.serverless_price * self.gpu_count), ZERO)
        compute = compute_per_hour(
            gpu_type=self.gpu_type,
            gpu_count=self.gpu_count,
            cloud_type=self.cloud_type,
            pricing=self.pricing,
            bid_per_gpu=self.bid_per_gpu,
            cpu_instance=self.cpu_instance,
        )
        volume_gb = 0 if self.network_volume else self.volume_gb
        storage = storage_per_hour(
            running=True, container_disk_gb=self.container_disk_gb, volume_gb=volume_gb
        )
        return PodPrice(compute, storage)


def team_burn_rate(team: Team) -> Decimal:
    """What the team's pods and network volumes cost per hour right now, in one query: the
    same SQL low funds judges teams by (registered with billing.burn, so can_afford, the
    billing page and the deploy review use it too)."""
    return to_money(team_burn_rates([team.pk]).get(team.pk, ZERO))


def affordability(*, team: Team, extra: Decimal, lock: bool) -> Affordability:
    return can_afford(team=team, extra_cost_per_hour=extra, lock=lock)


def _audit(actor, pod: Pod, action: str, **details) -> None:
    audit.record(
        actor=actor,
        team=pod.team,
        action=f"pod.{action}",
        resource_type="pod",
        resource_id=pod.public_id,
        details={"name": pod.name, "status": pod.status, **details},
    )


def _enqueue(task_name: str, *args) -> None:
    """Run a lifecycle task after commit (eagerly in tests, in a worker otherwise)."""
    from pods import tasks

    task = getattr(tasks, task_name)
    transaction.on_commit(lambda: task.delay(*args))


# Deploy --------------------------------------------------------------------------------------


def _new_pod(*, team: Team, actor, request: DeployRequest, machine: Machine) -> Pod:
    gpu_count = request.gpu_count if request.gpu_type else 0
    if request.gpu_type:
        vcpu, memory = machine.vcpu_per_gpu * gpu_count, machine.memory_gb_per_gpu * gpu_count
    else:
        vcpu, memory = request.cpu_instance.vcpu, request.cpu_instance.memory_gb
    return Pod.objects.create(
        team=team,
        name=request.name,
        template=request.template,
        machine=machine,
        cloud_type=request.cloud_type,
        gpu_type=request.gpu_type,
        gpu_count=gpu_count,
        requested_gpu_count=gpu_count,
        cpu_instance=request.cpu_instance,
        vcpu=vcpu,
        memory_gb=memory,
        image=request.image,
        container_disk_gb=request.container_disk_gb,
        volume_gb=0 if request.network_volume else request.volume_gb,
        volume_mount_path=request.volume_mount_path,
        network_volume=request.network_volume,
        start_command=request.start_command,
        env=request.env,
        ports=request.ports,
        pricing=request.pricing,
        bid_per_gpu=request.bid_per_gpu if request.pricing == Pod.Pricing.SPOT else None,
        kind=request.kind,
        # A person, or nobody: a pod deploying with its own key is no user (PodPrincipal).
        created_by=actor if isinstance(actor, User) else None,
        metered_until=ceil_minute(timezone.now()),
    )


def deploy_pod(*, actor, team: Team, request: DeployRequest) -> Pod:
    """Place the pod, hold credit for it, create it; the runtime starts it after commit.

    The team's billing account row is locked (can_afford(lock=True)) after placement, so
    parallel deploys for one team are checked one at a time against each other's pods."""
    network_volume = request.network_volume
    if network_volume is not None and network_volume.team_id != team.pk:
        raise PodError("That network volume is not yours.", field="network_volume")
    with transaction.atomic():
        try:
            placement = place(request.need(team=team))
        except PlacementError as error:
            raise PodError(str(error), field=error.field, code="placement") from error
        machine = placement.machine
        # A refused deploy (funds, below) rolls the preemption back.
        _preempt_all(placement.preempt, by=request, team=team)
        price = request.price()
        verdict = affordability(team=team, extra=price.total, lock=True)
        if not verdict:
            raise PodError(verdict.reason, code="funds")
        pod = _new_pod(team=team, actor=actor, request=request, machine=machine)
        live.record(pod, f"Deployed on {machine.name} ({machine.data_center_id}).", actor=actor)
        _audit(
            actor,
            pod,
            "deployed",
            machine=machine.public_id,
            gpu=pod.gpu_type_id or "",
            gpu_count=pod.gpu_count,
            price_per_hour=str(price.total),
        )
        _enqueue("boot_pod_task", pod.pk)
    return pod


def _preempt_all(victims: tuple[Pod, ...], *, by: DeployRequest | Pod, team: Team) -> None:
    """Every victim's row is locked (in primary-key order) before any account row, the order
    lifecycle tasks and metering ticks use (pods, then accounts): preempting settles a victim's
    meter, which locks its team's account, and a boot or halt task holding the next victim
    waits for that same account. Then the accounts of every team involved are locked in one
    ordered statement, so two preemptions across teams cannot take them in opposite orders."""
    if not victims:
        return
    pks = [victim.pk for victim in victims]
    locked = list(Pod.objects.select_for_update(of=("self",)).filter(pk__in=pks).order_by("pk"))
    teams = sorted({victim.team_id for victim in locked} | {team.pk})
    usage.ensure_accounts(teams)
    usage.lock_accounts(teams)
    for victim in locked:
        # Stopped meanwhile by its owner (it did not hold the machine's lock): it frees the
        # GPUs anyway, as a stop rather than a preemption.
        if victim.status in PREEMPTIBLE:
            preempt_pod(pod=victim, by=by)


def preempt_pod(*, pod: Pod, by: DeployRequest | Pod) -> Pod:
    """Take a spot pod's GPUs for an on-demand pod or a higher bid (`by`: a deploy, or a
    stopped pod starting again): SIGTERM, SIGKILL 5 s later (in the worker), status preempted,
    volume kept, its owner told."""
    pod = _locked(pod)
    winner = "an on-demand pod" if by.pricing == Pod.Pricing.ON_DEMAND else "a higher spot bid"
    reason = f"Preempted by {winner}: spot pods yield their GPUs. Your volume is kept."
    change_status(pod, Pod.Status.STOPPING, reason)
    pod.next_status = Pod.Status.PREEMPTED
    pod.save()
    live.record(pod, reason)
    _audit(None, pod, "preempted", bid_per_gpu=str(pod.bid_per_gpu), by=winner)
    _enqueue("halt_pod_task", pod.pk)
    transaction.on_commit(lambda: notify_preempted(pod))
    return pod


def notify_preempted(pod: Pod) -> None:
    from billing.emails import send

    owner = pod.created_by
    send(
        "pod_preempted",
        to=[owner.email] if owner else [],
        context={
            "pod": pod,
            "team": pod.team,
            "pod_url": settings.SITE_URL + pod.get_absolute_url(),
        },
    )


# Lifecycle verbs -----------------------------------------------------------------------------


def _locked(pod: Pod) -> Pod:
    return (
        Pod.objects.select_related("team", "machine", "gpu_type")
        .select_for_update(of=("self",))
        .get(pk=pod.pk)
    )


def stop_pod(*, actor, pod: Pod, reason: str = "Stopped by a user.") -> Pod:
    """SIGTERM, then SIGKILL after 5 s (in the worker); the container disk is wiped, the volume
    kept, the GPUs freed."""
    with transaction.atomic():
        pod = _locked(pod)
        if not pod.can_stop():
            raise PodError(f"A {pod.get_status_display().lower()} pod cannot be stopped.")
        change_status(pod, Pod.Status.STOPPING, reason)
        pod.stop_at = None
        live.record(pod, reason, actor=actor)
        _audit(actor, pod, "stopped")
        pod.next_status = Pod.Status.EXITED
        pod.save()
        _enqueue("halt_pod_task", pod.pk)
    return pod


def _start_need(pod: Pod) -> Need:
    spot = pod.pricing == Pod.Pricing.SPOT
    return Need(
        cloud_type=pod.cloud_type,
        data_center=None,
        gpu_type=pod.gpu_type,
        gpu_count=pod.requested_gpu_count,
        bid_per_gpu=pod.bid_per_gpu if spot else None,
    )


def _gpus_for_start(pod: Pod, *, zero_gpus: bool) -> int:
    """The pod's GPUs on its machine, preempting lower spot bids as a deploy would when they
    are not free. Locks as in deploy_pod: (the pod,) the machine, the victims, the accounts;
    a start refused after this (funds) rolls the preemption back."""
    if zero_gpus or not pod.requested_gpu_count:
        return 0
    machine = Machine.objects.select_for_update(no_key=True).get(pk=pod.machine_id)
    if not machine.is_online:
        raise PodError(f"Machine {machine.name} is offline.", code="machine_offline")
    victims = room_on(machine, _start_need(pod))
    if victims is None:
        free = Machine.objects.with_capacity().get(pk=machine.pk).free_gpus
        raise PodError(
            f"Only {free} of the {pod.requested_gpu_count} GPUs this pod needs are free on its "
            "machine. Start it with 0 GPUs to reach your data, or try again later.",
            code="gpus_taken",
        )
    _preempt_all(victims, by=pod, team=pod.team)
    return pod.requested_gpu_count


def start_pod(*, actor, pod: Pod, zero_gpus: bool = False) -> Pod:
    """Resume a stopped pod on its machine (pods are tied to the machine their volume is on)."""
    with transaction.atomic():
        pod = _locked(pod)
        if not pod.can_start():
            raise PodError(f"A {pod.get_status_display().lower()} pod cannot be started.")
        stopped_price = pod.price().total
        pod.gpu_count = _gpus_for_start(pod, zero_gpus=zero_gpus)
        extra = pod.price(status=Pod.Status.STARTING).total - stopped_price
        verdict = affordability(team=pod.team, extra=extra, lock=True)
        if not verdict:
            raise PodError(verdict.reason, code="funds")
        change_status(pod, Pod.Status.STARTING)
        pod.exit_code = None
        pod.save()
        gpus = f" with {pod.gpu_count} GPU{'s' if pod.gpu_count != 1 else ''}" if pod.is_gpu else ""
        live.record(pod, f"Start requested{gpus}.", actor=actor)
        _audit(actor, pod, "started", gpu_count=pod.gpu_count)
        _enqueue("boot_pod_task", pod.pk)
    return pod


def resume_spot_pod(*, actor, pod: Pod, bid_per_gpu: Decimal, zero_gpus: bool = False) -> Pod:
    """Resume a stopped GPU pod as a spot pod at this bid per GPU (runpodctl's `start pod
    --bid`): at least the GPU type's minimum bid; then the same start as start_pod."""
    with transaction.atomic():
        pod = _locked(pod)
        if pod.gpu_type is None:
            raise PodError("Only GPU pods bid for their GPUs.", field="bid_per_gpu")
        bid = to_money(bid_per_gpu)
        # The GPU type's floor, or the host's own minimum on its machine if that is higher.
        floor = max(pod.gpu_type.min_bid, pod.machine.min_bid_per_gpu or pod.gpu_type.min_bid)
        if bid < floor:
            raise PodError(
                f"The minimum bid for {pod.gpu_type} on this machine is {format_usd(floor)}/h.",
                field="bid_per_gpu",
            )
        old = str(pod.bid_per_gpu) if pod.pricing == Pod.Pricing.SPOT else "on demand"
        pod.pricing, pod.bid_per_gpu = Pod.Pricing.SPOT, bid
        pod.save(update_fields=["pricing", "bid_per_gpu"])
        _audit(actor, pod, "bid_changed", old=old, bid_per_gpu=str(bid))
        return start_pod(actor=actor, pod=pod, zero_gpus=zero_gpus)


def restart_pod(*, actor, pod: Pod) -> Pod:
    """Stop (container disk lost) and start again on the same machine with the same GPUs."""
    with transaction.atomic():
        pod = _locked(pod)
        if not pod.can_restart():
            raise PodError("Only a running pod can be restarted.")
        change_status(pod, Pod.Status.STOPPING, "Restarting.")
        pod.next_status = Pod.Status.STARTING
        pod.save()
        live.record(pod, "Restart requested.", actor=actor)
        _audit(actor, pod, "restarted")
        _enqueue("halt_pod_task", pod.pk)
    return pod


def terminate_pod(*, actor, pod: Pod) -> Pod:
    """Stop the pod and delete it with its volume. Network volumes are kept."""
    with transaction.atomic():
        pod = _locked(pod)
        if not pod.can_terminate():
            raise PodError("This pod is already terminated.")
        if pod.status != Pod.Status.STOPPING:
            change_status(pod, Pod.Status.STOPPING, "Terminating.")
        pod.stop_at = pod.terminate_at = None
        pod.next_status = Pod.Status.TERMINATED
        pod.save()
        live.record(pod, "Terminate requested.", actor=actor)
        _audit(actor, pod, "terminated")
        _enqueue("halt_pod_task", pod.pk)
    return pod


def rename_pod(*, actor, pod: Pod, name: str) -> Pod:
    name = name.strip()
    if not name or len(name) > 100:
        raise PodError("A pod name is 1 to 100 characters.", field="name")
    with transaction.atomic():
        pod = _locked(pod)
        old, pod.name = pod.name, name
        pod.save(update_fields=["name"])
        live.record(pod, f"Renamed from “{old}”.", actor=actor)
        _audit(actor, pod, "renamed", old_name=old)
    return pod


TIMER_ACTIONS = {"stop": "stop_at", "terminate": "terminate_at"}


def schedule_pod(*, actor, pod: Pod, action: str, hours: Decimal | None) -> Pod:
    """Stop or terminate the pod after `hours` ("stop in 2 h"); hours=None cancels the timer."""
    if action not in TIMER_ACTIONS:
        raise PodError(f"Unknown timer action {action!r}.", field="action")
    if hours is not None and not Decimal("0") < hours <= Decimal(24 * 30):
        raise PodError("Choose between a minute and 30 days.", field="hours")
    with transaction.atomic():
        pod = _locked(pod)
        if not pod.is_live:
            raise PodError("This pod is terminated.")
        when = None
        if hours is not None:
            when = timezone.now() + timedelta(seconds=int(hours * 3600))
        setattr(pod, TIMER_ACTIONS[action], when)
        pod.save(update_fields=[TIMER_ACTIONS[action]])
        text = (
            f"{action.title()} scheduled for {when:%Y-%m-%d %H:%M} UTC."
            if when
            else (f"{action.title()} timer cancelled.")
        )
        live.record(pod, text, actor=actor)
        _audit(actor, pod, f"{action}_scheduled", at=when.isoformat() if when else None)
    return pod


# Templates -----------------------------------------------------------------------------------

TEMPLATE_FIELDS = (
    "name",
    "image",
    "container_disk_gb",
    "volume_gb",
    "volume_mount_path",
    "ports",
    "env",
    "start_command",
    "is_serverless",
    "is_public",
    "readme",
)


def _template_audit(actor, template: PodTemplate, action: str) -> None:
    audit.record(
        actor=actor,
        team=template.team,
        action=f"template.{action}",
        resource_type="template",
        resource_id=template.public_id,
        details={"name": template.name, "image": template.image},
    )


@transaction.atomic
def create_template(*, actor, team: Team, **values) -> PodTemplate:
    template = PodTemplate.objects.create(team=team, created_by=actor, **values)
    _template_audit(actor, template, "created")
    return template


@transaction.atomic
def update_template(*, actor, template: PodTemplate, **values) -> PodTemplate:
    if template.is_official:
        raise PodError("Official templates cannot be edited.")
    for name in TEMPLATE_FIELDS:
        if name in values:
            setattr(template, name, values[name])
    template.save()
    _template_audit(actor, template, "updated")
    return template


@transaction.atomic
def delete_template(*, actor, template: PodTemplate) -> None:
    if template.is_official:
        raise PodError("Official templates cannot be deleted.")
    _template_audit(actor, template, "deleted")
    template.delete()


# Network volumes -----------------------------------------------------------------------------


def _volume_audit(actor, volume: NetworkVolume, action: str, **details) -> None:
    audit.record(
        actor=actor,
        team=volume.team,
        action=f"network_volume.{action}",
        resource_type="network_volume",
        resource_id=volume.public_id,
        details={"name": volume.name, "size_gb": volume.size_gb, **details},
    )


@transaction.atomic
def create_network_volume(
    *, actor, team: Team, name: str, size_gb: int, data_center: DataCenter
) -> NetworkVolume:
    volume = NetworkVolume.objects.create(
        team=team,
        name=name,
        size_gb=size_gb,
        data_center=data_center,
        metered_until=ceil_minute(timezone.now()),
    )
    _volume_audit(actor, volume, "created", data_center=data_center.id)
    return volume


def grow_network_volume(*, actor, volume: NetworkVolume, size_gb: int) -> NetworkVolume:
    """Volumes only grow: shrinking could cut off data a pod wrote."""
    with transaction.atomic():
        volume = NetworkVolume.objects.select_for_update().get(pk=volume.pk)
        if size_gb <= volume.size_gb:
            raise PodError(
                f"The new size must be larger than {volume.size_gb} GB.", field="size_gb"
            )
        settle_network_volume(volume, at=timezone.now())  # the old size until now
        old = volume.size_gb
        volume.size_gb = size_gb
        volume.save(update_fields=["size_gb"])
        _volume_audit(actor, volume, "grown", old_size_gb=old)
    return volume


def _delete_volume_data(volume: NetworkVolume) -> None:
    """Every runtime in the volume's data centre may hold a copy of its data."""
    from pods.runtime import get_backend

    done = set()
    for machine in Machine.objects.filter(data_center=volume.data_center_id):
        if machine.runtime == "process" and "process" in done:
            continue  # one host directory serves every process-runtime machine
        done.add(machine.runtime)
        get_backend(machine.runtime, machine.runtime_settings).delete_volume(volume.public_id)


def delete_network_volume(*, actor, volume: NetworkVolume) -> None:
    with transaction.atomic():
        volume = NetworkVolume.objects.select_for_update().get(pk=volume.pk)
        if volume.in_use:
            names = ", ".join(p.name for p in volume.attached_pods())
            raise PodError(f"This volume is attached to {names}. Terminate those pods first.")
        settle_network_volume(volume, at=timezone.now())
        _volume_audit(actor, volume, "deleted")
        snapshot = NetworkVolume(public_id=volume.public_id, data_center_id=volume.data_center_id)
        # Terminated pods keep their history; they just no longer point at the volume.
        Pod.objects.filter(network_volume=volume).update(network_volume=None)
        volume.delete()
        transaction.on_commit(lambda: _delete_volume_data(snapshot))
