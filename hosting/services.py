"""Hosting workflows: vetting, registration and review, agent tokens and heartbeats, downtime
and reliability (SPEC.md's formula, exact in Decimal), maintenance. Each write is one
transaction with its audit event; e-mails go out on commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from hosting.models import (
    Downtime,
    HostAccount,
    HostedMachine,
    MachineToken,
    Maintenance,
    hash_token,
)
from hosting.specs import Declared
from pods.models import Machine, Pod
from teams import audit
from teams.models import Membership, Team

# A machine is offline when no heartbeat came for this long (the agent sends one every 30 s).
HEARTBEAT_TIMEOUT = timedelta(seconds=90)
WINDOW = timedelta(days=30)
WINDOW_MINUTES = Decimal(WINDOW.total_seconds()) / 60
BUFFER_MINUTES = Decimal(10)
MAINTENANCE_NOTICE = timedelta(days=7)
UNLIST_BEFORE = timedelta(days=4)
REMIND_BEFORE = timedelta(days=1)
MAX_MAINTENANCE = timedelta(days=3)
# More bookings than this in the reliability window flags the machine to staff.
FREQUENT_MAINTENANCE = 2
ACTIVE = (HostedMachine.State.BURN_IN, HostedMachine.State.LISTED)


class HostingError(Exception):
    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _record(actor, hosted: HostedMachine, action: str, **details) -> None:
    audit.record(
        actor=actor,
        team=hosted.team,
        action=f"hosting.{action}",
        resource_type="machine",
        resource_id=hosted.machine.public_id,
        details=details,
    )


# Host accounts -----------------------------------------------------------------------------


def host_account(team: Team) -> HostAccount | None:
    return HostAccount.objects.filter(team=team).first()


def open_host_account(*, actor, account: HostAccount) -> None:
    """Staff record a team's application (notes); vetting and KYC are the actions below."""
    with transaction.atomic():
        created = account.pk is None
        account.save()
        action = "hosting.applied" if created else "hosting.notes_changed"
        team = account.team
        audit.record(
            actor=actor, team=team, action=action, resource_type="team", resource_id=team.slug
        )


def set_host(*, actor, team: Team, is_host: bool) -> HostAccount:
    """Staff grant (or withdraw) hosting after vetting a team by hand."""
    with transaction.atomic():
        account, _ = HostAccount.objects.select_for_update().get_or_create(team=team)
        account.is_host = is_host
        account.save(update_fields=["is_host"])
        action = "hosting.granted" if is_host else "hosting.withdrawn"
        audit.record(
            actor=actor, team=team, action=action, resource_type="team", resource_id=team.slug
        )
    return account


def set_kyc(*, actor, team: Team, status: str) -> HostAccount:
    with transaction.atomic():
        account, _ = HostAccount.objects.select_for_update().get_or_create(team=team)
        old = account.kyc_status
        account.kyc_status = HostAccount.Kyc(status)
        account.kyc_checked_by = actor
        account.kyc_checked_at = timezone.now()
        account.save()
        audit.record(
            actor=actor,
            team=team,
            action="hosting.kyc",
            resource_type="team",
            resource_id=team.slug,
            details={"old": old, "new": account.kyc_status},
        )
    return account


# Registration and review -------------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    name: str
    spec: Declared
    cloud_type: str
    data_center: object
    min_bid_per_gpu: Decimal


def register_machine(*, actor, team: Team, registration: Registration) -> HostedMachine:
    """A machine awaiting staff review: not listed, offline until its agent reports."""
    account = host_account(team)
    if account is None or not account.can_list:
        raise HostingError("This team is not a vetted host.")
    spec = registration.spec
    with transaction.atomic():
        machine = Machine.objects.create(
            name=registration.name,
            data_center=registration.data_center,
            cloud_type=registration.cloud_type,
            gpu_type=spec.gpu_type,
            gpu_count=spec.gpu_count,
            vcpu=spec.physical_cores * 2,
            memory_gb=spec.ram_gb,
            disk_gb=spec.nvme_gb,
            is_listed=False,
            is_online=False,
            host_team=team,
            min_bid_per_gpu=registration.min_bid_per_gpu,
        )
        hosted = HostedMachine.objects.create(
            machine=machine,
            team=team,
            physical_cores=spec.physical_cores,
            vram_gb_per_gpu=spec.vram_gb_per_gpu,
            nvme_gb=spec.nvme_gb,
            network_mbps=spec.network_mbps,
            os=spec.os,
            driver_version=spec.driver_version,
        )
        _record(actor, hosted, "registered", gpu=spec.gpu_type.id, gpu_count=spec.gpu_count)
    return hosted


def _move(*, actor, hosted: HostedMachine, to: str, frm: tuple[str, ...], **machine) -> None:
    """Claim the review step (conditional UPDATE on the old state), then set the Machine."""
    with transaction.atomic():
        claimed = HostedMachine.objects.filter(pk=hosted.pk, state__in=frm).update(
            state=to, reviewed_by=actor
        )
        if not claimed:
            raise HostingError(
                f"A machine that is {hosted.get_state_display().lower()} cannot move."
            )
        Machine.objects.filter(pk=hosted.machine_id).update(**machine)
        _record(actor, hosted, to, old=hosted.state)
    hosted.refresh_from_db()


def start_burn_in(*, actor, hosted: HostedMachine) -> None:
    """Staff approved the registration: offered to the host's own team for a self-rental test."""
    State = HostedMachine.State
    _move(
        actor=actor,
        hosted=hosted,
        to=State.BURN_IN,
        frm=(State.PENDING,),
        is_listed=True,
        burn_in=True,
    )


def list_publicly(*, actor, hosted: HostedMachine) -> None:
    """Burn-in passed: offered to every team."""
    State = HostedMachine.State
    _move(
        actor=actor,
        hosted=hosted,
        to=State.LISTED,
        frm=(State.BURN_IN,),
        is_listed=True,
        burn_in=False,
    )


def reject(*, actor, hosted: HostedMachine) -> None:
    State = HostedMachine.State
    _move(
        actor=actor,
        hosted=hosted,
        to=State.REJECTED,
        frm=(State.PENDING, State.BURN_IN, State.LISTED),
        is_listed=False,
    )


# Agent tokens and heartbeats -----------------------------------------------------------------


def rotate_token(*, actor, hosted: HostedMachine) -> str:
    """A new token for the machine's agent (shown once); every older one stops working."""
    secret = MachineToken.generate_secret()
    now = timezone.now()
    with transaction.atomic():
        revoked = hosted.tokens.filter(revoked_at=None).update(revoked_at=now)
        MachineToken.objects.create(
            machine=hosted, prefix=secret[:10], token_hash=hash_token(secret)
        )
        _record(actor, hosted, "token_rotated", revoked=revoked)
    return secret


def authenticate(secret: str) -> tuple[HostedMachine | None, str]:
    """(machine, "ok"), or (None, "wrong") for an unknown token, (None, "revoked") for a
    rotated one or a rejected machine's."""
    token = (
        MachineToken.objects.select_related("machine__machine")
        .filter(token_hash=hash_token(secret))
        .first()
    )
    if token is None:
        return None, "wrong"
    if token.revoked_at is not None or token.machine.state == HostedMachine.State.REJECTED:
        return None, "revoked"
    return token.machine, "ok"


def record_heartbeat(*, hosted: HostedMachine, report: dict, now: datetime | None = None) -> None:
    """The agent is alive: store its report; an offline machine comes back and its downtime
    interval closes."""
    now = now or timezone.now()
    with transaction.atomic():
        HostedMachine.objects.filter(pk=hosted.pk).update(last_heartbeat_at=now, last_report=report)
        back = Machine.objects.filter(pk=hosted.machine_id, is_online=False).update(is_online=True)
        if not back:
            return
        closed = hosted.downtimes.filter(ended_at=None).update(ended_at=now)
        _record(None, hosted, "online", downtime_closed=bool(closed))
        refresh_reliability(hosted=hosted, now=now)


def _go_offline(hosted: HostedMachine, now: datetime) -> bool:
    with transaction.atomic():
        gone = Machine.objects.filter(pk=hosted.machine_id, is_online=True).update(is_online=False)
        if not gone:
            return False
        since = hosted.last_heartbeat_at or now
        if not hosted.downtimes.filter(ended_at=None).exists():
            Downtime.objects.create(machine=hosted, started_at=since)
        _record(None, hosted, "offline", last_heartbeat=since.isoformat())
    return True


def check_heartbeats(*, now: datetime | None = None) -> int:
    """Approved machines whose agent went quiet go offline (metering charges nothing on an
    offline machine) with a downtime interval from their last heartbeat; then every approved
    machine's score is brought up to date (old downtime leaves the rolling window)."""
    now = now or timezone.now()
    # Machines still in review go offline too, so none is approved looking online.
    watched = (*ACTIVE, HostedMachine.State.PENDING)
    stale = HostedMachine.objects.filter(
        state__in=watched, machine__is_online=True, last_heartbeat_at__lt=now - HEARTBEAT_TIMEOUT
    )
    gone = sum(_go_offline(hosted, now) for hosted in stale.select_related("machine"))
    # Only machines with downtime in the window, or a score that is not 100 % yet, can
    # change: a fleet without outages costs one query here.
    down = Downtime.objects.overlapping(now - WINDOW, now).values("machine_id")
    changing = Q(pk__in=down) | ~Q(machine__reliability=Decimal(100))
    for hosted in HostedMachine.objects.filter(changing, state__in=ACTIVE):
        refresh_reliability(hosted=hosted, now=now)
    return gone


# Reliability ---------------------------------------------------------------------------------


Span = tuple[datetime, datetime]


def _minus(span: Span, holes: list[Span]) -> list[Span]:
    pieces = [span]
    for hole_start, hole_end in holes:
        cut = []
        for start, end in pieces:
            if hole_end <= start or hole_start >= end:
                cut.append((start, end))
                continue
            if start < hole_start:
                cut.append((start, hole_start))
            if hole_end < end:
                cut.append((hole_end, end))
        pieces = cut
    return pieces


def counted_downtime(hosted: HostedMachine, *, now: datetime) -> list[tuple[Downtime, Decimal]]:
    """Each downtime interval in the window with the minutes it costs (its part inside the
    window and outside booked maintenance)."""
    start = now - WINDOW
    holes = [
        (m.starts_at, m.ends_at)
        for m in hosted.maintenances.filter(cancelled_at=None, starts_at__lt=now, ends_at__gt=start)
    ]
    counted = []
    for downtime in hosted.downtimes.overlapping(start, now):
        span = (max(downtime.started_at, start), min(downtime.ended_at or now, now))
        seconds = sum((end - begin).total_seconds() for begin, end in _minus(span, holes))
        counted.append((downtime, Decimal(int(seconds)) / 60))
    return counted


def score(downtime_minutes: Decimal) -> Decimal:
    """SPEC.md: (window - downtime + 10-minute buffer) / window, capped at 100 %, in percent
    rounded down to 0.01 (rounding up could lift 97.995 % over the 98 % floor)."""
    ratio = min((WINDOW_MINUTES - downtime_minutes + BUFFER_MINUTES) / WINDOW_MINUTES, Decimal(1))
    return (ratio * 100).quantize(Decimal("0.01"), rounding=ROUND_DOWN)


def reliability(hosted: HostedMachine, *, now: datetime) -> Decimal:
    return score(sum((minutes for _, minutes in counted_downtime(hosted, now=now)), Decimal(0)))


def refresh_reliability(*, hosted: HostedMachine, now: datetime) -> Decimal:
    """Store the score on the Machine, where placement reads it; audited when it crosses the
    98 % floor (the machine leaves or rejoins the pool)."""
    from pods.models import MIN_RELIABILITY

    value = reliability(hosted, now=now)
    old = Machine.objects.filter(pk=hosted.machine_id).values_list("reliability", flat=True).get()
    if old == value:
        return value
    with transaction.atomic():
        Machine.objects.filter(pk=hosted.machine_id).update(reliability=value)
        if (old < MIN_RELIABILITY) != (value < MIN_RELIABILITY):
            action = "left_pool" if value < MIN_RELIABILITY else "rejoined_pool"
            _record(None, hosted, action, old=str(old), new=str(value))
    return value


# Maintenance ---------------------------------------------------------------------------------


def renters(hosted: HostedMachine) -> list[str]:
    """E-mail addresses of the admins of teams with pods on the machine (data included)."""
    teams = (
        Pod.objects.filter(machine_id=hosted.machine_id)
        .exclude(status=Pod.Status.TERMINATED)
        .values("team_id")
    )
    return sorted(
        set(
            Membership.objects.admins()
            .filter(team_id__in=teams)
            .values_list("user__email", flat=True)
        )
    )


def _mail_renters(hosted: HostedMachine, maintenance: Maintenance, *, when: str) -> None:
    emails = renters(hosted)
    if not emails:
        return
    subject = f"Maintenance on machine {hosted.machine.name} {when}"
    body = (
        f"The host of machine {hosted.machine.name}, where your team has pods, has booked "
        f"maintenance from {maintenance.starts_at:%Y-%m-%d %H:%M} UTC to "
        f"{maintenance.ends_at:%Y-%m-%d %H:%M} UTC. Pods on it cannot run during that time; "
        "back up what you need from their volumes before it starts."
    )
    send_mail(subject, body, None, emails)


def _validate_window(
    hosted: HostedMachine, starts_at: datetime, ends_at: datetime, now: datetime
) -> None:
    if starts_at < now + MAINTENANCE_NOTICE:
        earliest = (now + MAINTENANCE_NOTICE).astimezone(UTC)
        raise HostingError(
            "Maintenance must be booked at least 7 days ahead: the earliest start is "
            f"{earliest:%Y-%m-%d %H:%M} UTC. For maintenance now, empty the machine first "
            "(no pods on it) and book immediate maintenance.",
            field="starts_at",
        )
    if ends_at <= starts_at:
        raise HostingError("The end must be after the start.", field="ends_at")
    if ends_at - starts_at > MAX_MAINTENANCE:
        raise HostingError("A maintenance window lasts at most 3 days.", field="ends_at")


def is_frequent(hosted: HostedMachine) -> bool:
    return _frequent(hosted, timezone.now())


def _frequent(hosted: HostedMachine, now: datetime) -> bool:
    """More than FREQUENT_MAINTENANCE bookings in the window: shown to staff."""
    recent = hosted.maintenances.filter(cancelled_at=None, created_at__gte=now - WINDOW)
    return recent.count() > FREQUENT_MAINTENANCE


def book_maintenance(
    *, actor, hosted: HostedMachine, starts_at: datetime, ends_at: datetime, reason: str = ""
) -> Maintenance:
    """At least 7 days ahead; the machine is unlisted 4 days before (maintenance_sweep) and
    its renters are told now and a day before."""
    now = timezone.now()
    _validate_window(hosted, starts_at, ends_at, now)
    with transaction.atomic():
        maintenance = Maintenance.objects.create(
            machine=hosted,
            starts_at=starts_at,
            ends_at=ends_at,
            reason=reason[:200],
            booked_by=actor,
        )
        frequent = _frequent(hosted, now)
        _record(
            actor,
            hosted,
            "maintenance_booked",
            maintenance=maintenance.public_id,
            starts_at=starts_at.isoformat(),
            ends_at=ends_at.isoformat(),
            frequent=frequent,
        )
        transaction.on_commit(lambda: _mail_renters(hosted, maintenance, when="booked"))
    return maintenance


def book_immediate_maintenance(
    *, actor, hosted: HostedMachine, hours: int, reason: str = ""
) -> Maintenance:
    """Maintenance starting now, only on a machine no pod is on (not even a stopped one with
    data): nobody loses access without notice."""
    now = timezone.now()
    if not 1 <= hours <= 72:
        raise HostingError("Immediate maintenance lasts 1 to 72 hours.", field="hours")
    with transaction.atomic():
        Machine.objects.select_for_update().get(pk=hosted.machine_id)
        if (
            Pod.objects.filter(machine_id=hosted.machine_id)
            .exclude(status=Pod.Status.TERMINATED)
            .exists()
        ):
            raise HostingError(
                "Immediate maintenance needs an empty machine: pods are on it. Book maintenance "
                "at least 7 days ahead instead."
            )
        maintenance = Maintenance.objects.create(
            machine=hosted,
            starts_at=now,
            ends_at=now + timedelta(hours=hours),
            reason=reason[:200],
            immediate=True,
            booked_by=actor,
            unlisted_at=now,
        )
        Machine.objects.filter(pk=hosted.machine_id).update(is_listed=False)
        _record(
            actor,
            hosted,
            "maintenance_now",
            maintenance=maintenance.public_id,
            hours=hours,
            frequent=_frequent(hosted, now),
        )
    return maintenance


def maintenance_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Unlist machines 4 days before their maintenance, remind renters a day before, list
    them again when it ends."""
    now = now or timezone.now()
    booked = Maintenance.objects.filter(cancelled_at=None).select_related(
        "machine__machine", "machine__team"
    )
    counts = {"unlisted": 0, "reminded": 0, "relisted": 0}
    for maintenance in booked.filter(unlisted_at=None, starts_at__lte=now + UNLIST_BEFORE):
        counts["unlisted"] += _unlist(maintenance, now)
    for maintenance in booked.filter(
        reminded_at=None, immediate=False, starts_at__lte=now + REMIND_BEFORE
    ):
        if Maintenance.objects.filter(pk=maintenance.pk, reminded_at=None).update(reminded_at=now):
            _mail_renters(maintenance.machine, maintenance, when="starts within a day")
            counts["reminded"] += 1
    for maintenance in booked.filter(relisted_at=None, ends_at__lte=now):
        counts["relisted"] += _relist(maintenance, now)
    return counts


def _unlist(maintenance: Maintenance, now: datetime) -> int:
    with transaction.atomic():
        if not Maintenance.objects.filter(pk=maintenance.pk, unlisted_at=None).update(
            unlisted_at=now
        ):
            return 0
        Machine.objects.filter(pk=maintenance.machine.machine_id).update(is_listed=False)
        _record(
            None, maintenance.machine, "unlisted_for_maintenance", maintenance=maintenance.public_id
        )
    return 1


def _relist(maintenance: Maintenance, now: datetime) -> int:
    hosted = maintenance.machine
    with transaction.atomic():
        if not Maintenance.objects.filter(pk=maintenance.pk, relisted_at=None).update(
            relisted_at=now
        ):
            return 0
        still = hosted.maintenances.filter(
            cancelled_at=None, relisted_at=None, unlisted_at__isnull=False
        )
        if hosted.state in ACTIVE and not still.exclude(pk=maintenance.pk).exists():
            Machine.objects.filter(pk=hosted.machine_id).update(is_listed=True)
        _record(None, hosted, "relisted_after_maintenance", maintenance=maintenance.public_id)
    return 1


def record_payout(*, actor, payout) -> None:
    """Staff recorded a payout made outside the console (admin)."""
    with transaction.atomic():
        payout.recorded_by = actor
        payout.save()
        audit.record(
            actor=actor,
            team=payout.team,
            action="hosting.payout_recorded",
            resource_type="payout",
            resource_id=payout.public_id,
            details={"amount": str(payout.amount), "month": payout.month.isoformat()},
        )
