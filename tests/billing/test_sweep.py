"""The billing sweep (every 5 minutes) returns how many teams it acted on, so an idle run's
"succeeded" line is DEBUG (console.logs) and one that queued an alert stays INFO."""

from decimal import Decimal

from billing.services import adjust_balance, get_account
from billing.tasks import billing_sweep_task, low_balance_alert_task


def test_an_idle_sweep_returns_nothing_done_and_an_alert_counts_once(team, mailoutbox):
    adjust_balance(team=team, amount=Decimal("50"), reason="voucher", actor=None)
    account = get_account(team)
    account.low_balance_alert_threshold = Decimal("10")
    account.save()
    assert billing_sweep_task() == 0
    adjust_balance(team=team, amount=Decimal("-45"), reason="correction", actor=None)
    assert billing_sweep_task() == 1  # queued the alert
    low_balance_alert_task(team.pk)  # the worker sends it (if an eager Celery has not)
    account.refresh_from_db()
    assert account.low_balance_alerted_at is not None
    assert billing_sweep_task() == 0
