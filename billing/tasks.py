"""Thin Celery tasks: take ids, call one service, safe to run twice."""

from celery import shared_task

from billing import payments
from billing.models import BillingAccount
from teams.models import Team


@shared_task
def auto_recharge_task(team_id: int) -> str | None:
    payment = payments.trigger_auto_recharge(team=Team.objects.get(pk=team_id))
    return payment.public_id if payment else None


@shared_task
def low_balance_alert_task(team_id: int) -> bool:
    return payments.send_low_balance_alert(team=Team.objects.get(pk=team_id))


@shared_task
def billing_sweep_task() -> int:
    """Safety net for a lost hook: look at every account that may need a recharge or alert.
    Returns how many teams it acted on (0 is an idle run, logged at DEBUG)."""
    accounts = BillingAccount.objects.filter(
        auto_recharge_enabled=True
    ) | BillingAccount.objects.filter(
        low_balance_alert_threshold__isnull=False, low_balance_alerted_at=None
    )
    team_ids = list(accounts.values_list("team_id", flat=True).distinct())
    return sum(1 for team_id in team_ids if payments.balance_changed(team_id))
