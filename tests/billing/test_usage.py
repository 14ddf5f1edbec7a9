"""The set-based usage path: many charges in a few statements, each key once."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import transaction

from billing import services
from billing.models import BillingAccount, LedgerEntry
from billing.usage import UsageConflict, post_usage
from tests.billing.test_concurrency import run_in_threads

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def values_sql(rows) -> tuple[str, list]:
    """A SELECT of literal usage rows: (team_id, amount, kind, key)."""
    placeholders = ", ".join(
        ["(%s, CAST(%s AS NUMERIC), %s, %s, 'pod', 'p1', 'Compute')"] * len(rows)
    )
    params = [value for row in rows for value in row]
    sql = (
        f"SELECT * FROM (VALUES {placeholders}) AS v(team_id, amount, kind, idempotency_key, "
        "source_type, source_id, description)"
    )
    return sql, params


def post(rows):
    sql, params = values_sql(rows)
    with transaction.atomic():
        return post_usage(select_sql=sql, params=params, created_at=AT)


@pytest.fixture
def funded(team):
    services.adjust_balance(team=team, amount="10", reason="Test credit", actor=None)
    return team


def test_it_posts_every_row_and_moves_the_balance(funded):
    rows = [(funded.pk, "-0.0131666667", "usage_compute", f"pod:p1:compute:{m}") for m in range(3)]
    batch = post(rows)
    assert batch.entries == 3
    assert batch.total == Decimal("-0.0395000001")
    account = BillingAccount.objects.get(team=funded)
    assert account.balance == Decimal("9.9604999999")
    last = LedgerEntry.objects.get(idempotency_key="pod:p1:compute:2")
    assert last.balance_after == account.balance
    assert last.public_id.startswith("u") and len(last.public_id) == 14
    call_command("check_ledger")


def test_it_skips_keys_already_in_the_ledger(funded):
    rows = [(funded.pk, "-1", "usage_compute", f"pod:p1:compute:{m}") for m in range(2)]
    post(rows[:1])
    batch = post(rows)
    assert batch.entries == 1
    assert BillingAccount.objects.get(team=funded).balance == Decimal("8")
    call_command("check_ledger")


def test_it_creates_a_missing_billing_account(team):
    post([(team.pk, "-0.5", "usage_storage", "volume:v1:storage:0")])
    assert BillingAccount.objects.get(team=team).balance == Decimal("-0.5")


@pytest.mark.django_db(transaction=True)
def test_it_refuses_to_run_outside_a_transaction():
    from teams.models import Team

    team = Team.objects.create(name="Solo", slug="solo", is_personal=False)
    sql, params = values_sql([(team.pk, "-1", "usage_compute", "k")])
    with pytest.raises(RuntimeError):
        post_usage(select_sql=sql, params=params, created_at=AT)


@pytest.mark.django_db(transaction=True)
def test_it_charges_once_when_two_batches_race():
    from teams.models import Team

    team = Team.objects.create(name="Race", slug="race", is_personal=False)
    rows = [(team.pk, "-0.25", "usage_compute", f"pod:race:compute:{m}") for m in range(40)]

    def attempt():
        try:
            return post(rows).entries
        except UsageConflict:
            return "conflict"

    results = run_in_threads(attempt, [(), ()])
    assert sorted(map(str, results)) in (["0", "40"], ["40", "conflict"])
    assert LedgerEntry.objects.filter(team=team).count() == 40
    assert BillingAccount.objects.get(team=team).balance == Decimal("-10")
    call_command("check_ledger")
