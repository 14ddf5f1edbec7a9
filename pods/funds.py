"""Low funds: stop a team's pods before its balance goes meaningfully negative, after
auto-recharge had its chance; remove what a team leaves unpaid for too long (SPEC.md, Money).

Runs after every metering tick (pods.tasks.meter_task, `manage.py meter`).
"""

from __future__ import annotations

import logging
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
from billing.services import get_account, track_depletion
from pods import metering
from pods.models import NetworkVolume, Pod
from teams import audit
from teams.models import Team

log = logging.getLogger(__name__)

RUNWAY_MINUTES = 10
# An auto-recharge charged this recently whose credit (the webhook) has not arrived yet still
# counts as money the team has.
PENDING_RECHARGE_WINDOW = timedelta(minutes=15)
WARN_BEFORE_REMOVAL = timedelta(days=2)
LOW_FUNDS_REASON = "Stopped: the balance no longer covered 10 minutes of this team's pods."


@dataclass(frozen=True)
class Shortfall:
    team: Team
    balance: Decimal
    burn: Decimal

    @property
    def needed(self) -> Decimal:
        return to_money(self.burn * RUNWAY_MINUTES / 60)


def enforce(*, team_ids=None, now: datetime | None = None) -> list[int]:
    """Act on every team short of funds (or only those in `team_ids`); then follow up on
    teams at or below zero. Returns the ids of the teams whose pods were stopped."""
    now = now or timezone.now()
    stopped = []
    for shortfall in short_teams(team_ids):
        if _rescued_by_auto_recharge(shortfall, now):
            continue
        stop_team_pods(shortfall)
        stopped.append(shortfall.team.pk)
    track_depletion(now=now)
    warn_before_removal(now)
    remove_after_grace(now)
    return stopped


def short_teams(team_ids=None) -> list[Shortfall]:
    """Teams with pods holding resources whose balance covers less than 10 minutes of their
    burn rate (pods and network volumes), found in one query."""
    holding = "', '".join(Pod.HOLDING)
    running = f"p.status IN ('{holding}')"
    pod_burn = (
        f"SELECT p.team_id, {metering.COMPUTE_RATE_SQL} "
        f"+ {metering.storage_month_sql(running)} / 720 AS per_hour "
        f"FROM {metering.pod_tables_sql()} WHERE p.status <> 'terminated'"
    )
    volume_burn = (
        f"SELECT v.team_id, {metering.NETWORK_VOLUME_MONTH_SQL} / 720 "
        f"FROM {NetworkVolume._meta.db_table} v"
    )
    params = metering.price_params()
    scope = ""
    if team_ids is not None:
        condition, params["ids"] = metering.ids_condition("b.team_id", sorted(team_ids))
        scope = f"AND {condition}"
    sql = (
        "SELECT b.team_id, COALESCE(a.balance, 0), SUM(b.per_hour) "
        f"FROM ({pod_burn} UNION ALL {volume_burn}) AS b "
        f"LEFT JOIN {BillingAccount._meta.db_table} a ON a.team_id = b.team_id "
        f"WHERE b.team_id IN (SELECT team_id FROM {Pod._meta.db_table} p WHERE {running}) "
        f"{scope} GROUP BY b.team_id, a.balance "
        f"HAVING COALESCE(a.balance, 0) * 60 < SUM(b.per_hour) * {RUNWAY_MINUTES}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    teams = Team.objects.in_bulk([row[0] for row in rows])
    return [
        Shortfall(teams[team_id], Decimal(str(balance)), Decimal(str(burn)))
        for team_id, balance, burn in rows
    ]


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


def stop_team_pods(shortfall: Shortfall) -> list[Pod]:
    """Stop every pod of the team (volumes kept, container disks lost), audit it, and e-mail
    its admin and billing members."""
    from pods.services import stop_pod

    team = shortfall.team
    pods = [pod for pod in Pod.objects.for_team(team).live() if pod.can_stop()]
    for pod in pods:
        stop_pod(actor=None, pod=pod, reason=LOW_FUNDS_REASON)
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
        },
    )
    emails.send_to_billing(
        "funds_pods_stopped",
        team=team,
        context={
            "balance": shortfall.balance,
            "burn": shortfall.burn,
            "pods": pods,
            "grace_days": settings.FUNDS_GRACE_DAYS,
            "top_up_url": emails.absolute("billing_top_up", team.slug),
        },
    )
    return pods


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
