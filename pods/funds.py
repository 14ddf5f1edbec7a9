"""Low funds: stop a team's pods before its balance goes meaningfully negative, after
auto-recharge had its chance; remove what a team leaves unpaid for too long (SPEC.md, Money).

Runs after every metering tick (pods.tasks.meter_task, `manage.py meter`). A team found short
starts a funds episode (BillingAccount.low_funds_since): its admins get one e-mail and the team
one audit row per episode, however many ticks find it short (a pod stuck in stopping keeps it
short). The episode ends once the team has been funded again and covers what it holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from billing import emails, payments
from billing.models import BillingAccount, Payment
from billing.money import ZERO, to_money
from billing.services import (
    begin_low_funds_episode,
    end_low_funds_episodes,
    funded_low_funds_episodes,
    get_account,
    track_depletion,
)
from pods import metering
from pods.metering import RUNWAY_MINUTES
from pods.models import Pod
from teams import audit
from teams.models import Team

log = logging.getLogger(__name__)

# An auto-recharge charged this recently whose credit (the webhook) has not arrived yet still
# counts as money the team has.
PENDING_RECHARGE_WINDOW = timedelta(minutes=15)
WARN_BEFORE_REMOVAL = timedelta(days=2)
LOW_FUNDS_REASON = (
    f"Stopped: the balance no longer covered {RUNWAY_MINUTES} minutes of this team's pods."
)
# What higher apps run on a team's pods and stop their own way when funds run low (serverless:
# its workers, so its autoscaler sees them stopped): hook(team, reason) -> ids stopped,
# registered from their AppConfig.ready(). Their pods are left to them.
STOP_HOOKS: list[Callable[[Team, str], list[str]]] = []


@dataclass(frozen=True)
class Shortfall:
    team: Team
    balance: Decimal
    burn: Decimal
    # The low-funds line: RUNWAY_MINUTES of the burn rate.
    needed: Decimal


def enforce(*, team_ids=None, now: datetime | None = None) -> list[int]:
    """Act on every team short of funds (or only those in `team_ids`); then follow up on
    teams at or below zero. Returns the ids of the teams whose pods were stopped."""
    now = now or timezone.now()
    stopped = []
    for shortfall in short_teams(team_ids):
        if _rescued_by_auto_recharge(shortfall, now):
            continue
        if stop_team_pods(shortfall, now=now):
            stopped.append(shortfall.team.pk)
    end_episodes_of_funded_teams()
    track_depletion(now=now)
    warn_before_removal(now)
    remove_after_grace(now)
    return stopped


def short_teams(team_ids=None) -> list[Shortfall]:
    """Teams with pods holding resources whose balance is below the low-funds line (their
    burn rate for RUNWAY_MINUTES, pods.metering.team_burn_sql), found in one query."""
    holding = "', '".join(Pod.HOLDING)
    params = {**metering.price_params(), "burn_teams": sorted(team_ids or ())}
    scope = "true" if team_ids is None else "{team_id} = ANY(%(burn_teams)s)"
    floor = metering.funds_floor_sql("b.per_hour")
    sql = (
        f"SELECT b.team_id, COALESCE(a.balance, 0), b.per_hour, {floor} "
        f"FROM ({metering.team_burn_sql(scope)}) AS b "
        f"LEFT JOIN {BillingAccount._meta.db_table} a ON a.team_id = b.team_id "
        f"WHERE b.team_id IN (SELECT team_id FROM {Pod._meta.db_table} "
        f"WHERE status IN ('{holding}')) AND COALESCE(a.balance, 0) < {floor}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    teams = Team.objects.in_bulk([row[0] for row in rows])
    return [
        Shortfall(teams[team_id], to_money(balance), to_money(burn), to_money(needed))
        for team_id, balance, burn, needed in rows
    ]


def end_episodes_of_funded_teams() -> None:
    """A team funded since its episode began, and no longer short, is out of it: the next
    shortage is a new episode with its own e-mail."""
    funded = funded_low_funds_episodes()
    if not funded:
        return
    still_short = {shortfall.team.pk for shortfall in short_teams(funded)}
    end_low_funds_episodes(team_ids=[pk for pk in funded if pk not in still_short])


def _rescued_by_auto_recharge(shortfall: Shortfall, now: datetime) -> bool:
    """Give auto-recharge its chance: charge the card now if due, and count a charge whose
    credit is on its way."""
    team = shortfall.team
    if not get_account(team).auto_recharge_enabled:
        return False
    try:
        payments.trigger_auto_recharge(team=team)
    except Exception:
        # A payment service outage must not keep pods running on credit the team lacks.
        log.exception("auto-recharge for team %s failed", team.pk)
    pending = Payment.objects.filter(
        team=team,
        kind=Payment.Kind.AUTO_RECHARGE,
        status=Payment.Status.PROCESSING,
        created_at__gte=now - PENDING_RECHARGE_WINDOW,
    ).aggregate(total=Sum("amount"))["total"]
    balance = get_account(team).balance
    return balance + (pending or ZERO) >= shortfall.needed


def stop_team_pods(shortfall: Shortfall, *, now: datetime) -> list[str]:
    """Stop every pod of the team (volumes kept, container disks lost) and what STOP_HOOKS
    stop; at the start of an episode, audit it and e-mail the team's admin and billing
    members. Returns the ids of what was stopped."""
    from pods.services import stop_pod

    team = shortfall.team
    live = Pod.objects.for_team(team).live().filter(kind=Pod.Kind.POD)
    pods = [pod for pod in live if pod.can_stop()]
    for pod in pods:
        stop_pod(actor=None, pod=pod, reason=LOW_FUNDS_REASON)
    others = [stopped for hook in STOP_HOOKS for stopped in hook(team, LOW_FUNDS_REASON)]
    stopped = [pod.public_id for pod in pods] + others
    if not begin_low_funds_episode(team=team, now=now):
        return stopped  # told already: each stop has its own pod audit row
    audit.record(
        actor=None,
        team=team,
        action="team.low_funds_stop",
        resource_type="team",
        resource_id=team.slug,
        details={
            "balance": str(shortfall.balance),
            "burn_per_hour": str(shortfall.burn),
            "pods": [pod.public_id for pod in pods],
            "workers": others,
        },
    )
    emails.send_to_billing(
        "funds_pods_stopped",
        team=team,
        context={
            "balance": shortfall.balance,
            "burn": shortfall.burn,
            "pods": pods,
            "workers": others,
            "grace_days": settings.FUNDS_GRACE_DAYS,
            "top_up_url": emails.absolute("billing_top_up", team.slug),
        },
    )
    return stopped


def _depleted_for(days: int, now: datetime, extra: timedelta = timedelta()):
    return BillingAccount.objects.filter(
        depleted_since__lte=now - timedelta(days=days) - extra
    ).select_related("team")


def warn_before_removal(now: datetime) -> None:
    """E-mail once, 2 days before a depleted team's pods are removed."""
    grace = settings.FUNDS_GRACE_DAYS
    due = _depleted_for(grace, now, -WARN_BEFORE_REMOVAL).filter(depletion_warned_at=None)
    for account in due:
        team = account.team
        if not Pod.objects.for_team(team).live().exists() and not team.network_volumes.exists():
            continue
        emails.send_to_billing(
            "funds_removal_warning",
            team=team,
            context={
                "balance": account.balance,
                "depleted_since": account.depleted_since,
                "removal_at": account.depleted_since + timedelta(days=grace),
                "volume_grace_days": settings.FUNDS_NETWORK_VOLUME_GRACE_DAYS,
                "top_up_url": emails.absolute("billing_top_up", team.slug),
            },
        )
        BillingAccount.objects.filter(pk=account.pk).update(depletion_warned_at=now)
        audit.record(
            actor=None,
            team=team,
            action="team.removal_warned",
            resource_type="team",
            resource_id=team.slug,
        )


def remove_after_grace(now: datetime) -> None:
    """Remove the pods (and their volumes) of teams depleted for FUNDS_GRACE_DAYS, and their
    network volumes after FUNDS_NETWORK_VOLUME_GRACE_DAYS more."""
    from pods.services import PodError, delete_network_volume, terminate_pod

    grace = settings.FUNDS_GRACE_DAYS
    for account in _depleted_for(grace, now):
        for pod in Pod.objects.for_team(account.team).live():
            terminate_pod(actor=None, pod=pod)
    volume_grace = timedelta(days=settings.FUNDS_NETWORK_VOLUME_GRACE_DAYS)
    for account in _depleted_for(grace, now, volume_grace):
        for volume in account.team.network_volumes.all():
            try:
                delete_network_volume(actor=None, volume=volume)
            except PodError:
                continue  # still attached to a pod being terminated: next tick
