"""The set-based usage path: charges move balances and the open accrual, rows are posted
from it, each key once, and balance = sum(ledger) + open usage throughout."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from billing import services
from billing.models import BillingAccount, LedgerEntry
from billing.usage import UsageConflict, apply_usage
from tests.billing.test_concurrency import run_in_threads

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def values_sql(rows) -> tuple[str, list]:
    """A SELECT of literal usage rows: (team_id, amount, kind, key), over the hour from AT."""
    placeholders = ", ".join(
        ["(%s, CAST(%s AS NUMERIC), %s, %s, 'pod', 'p1', 'Compute', %s, %s, 60)"] * len(rows)
    )
    end = AT + timedelta(hours=1)
    params = [value for row in rows for value in (*row, AT, end)]
    sql = (
        f"SELECT * FROM (VALUES {placeholders}) AS v(team_id, amount, kind, idempotency_key, "
        "source_type, source_id, description, period_start, period_end, minutes)"
    )
    return sql, params


def charges_sql(charges) -> tuple[str, list]:
    """A SELECT of literal charges: (team_id, amount)."""
    placeholders = ", ".join(["(%s, CAST(%s AS NUMERIC))"] * len(charges))
    params = [value for charge in charges for value in charge]
    return f"SELECT * FROM (VALUES {placeholders}) AS c(team_id, amount)", params


def post(rows=(), charges=()):
    rows_sql, row_params = values_sql(rows) if rows else (None, [])
    charges_sql_, charge_params = charges_sql(charges) if charges else (None, [])
    if rows and charges:
        raise ValueError("one kind a call in these tests (parameters are positional)")
    with transaction.atomic():
        return apply_usage(
            rows_sql=rows_sql,
            charges_sql=charges_sql_,
            params=row_params or charge_params,
            created_at=AT,
        )


def account(team) -> BillingAccount:
    return BillingAccount.objects.get(team=team)


@pytest.fixture
def funded(team):
    services.adjust_balance(team=team, amount="10", reason="Test credit", actor=None)
    return team


def test_a_charge_moves_the_balance_and_the_open_accrual(funded):
    batch = post(charges=[(funded.pk, "-0.0131666667"), (funded.pk, "-0.0131666667")])
    assert (batch.entries, batch.total) == (0, Decimal("-0.0263333334"))
    assert account(funded).balance == Decimal("9.9736666666")
    assert account(funded).usage_accrued == Decimal("-0.0263333334")
    assert not LedgerEntry.objects.filter(kind="usage_compute").exists()


def test_posting_rows_moves_the_accrual_into_the_ledger_not_the_balance(funded):
    post(charges=[(funded.pk, "-0.79")])
    batch = post(rows=[(funded.pk, "-0.79", "usage_compute", "pod:p1:compute:hour")])
    assert (batch.entries, batch.total) == (1, Decimal(0))
    assert (account(funded).balance, account(funded).usage_accrued) == (Decimal("9.21"), 0)
    row = LedgerEntry.objects.get(idempotency_key="pod:p1:compute:hour")
    assert (row.balance_after, row.period_start, row.minutes) == (Decimal("9.21"), AT, 60)
    assert row.public_id.startswith("u") and len(row.public_id) == 14


def test_it_never_writes_a_zero_row_or_a_zero_charge(funded):
    post(rows=[(funded.pk, "0", "usage_storage", "pod:p1:storage:hour")])
    post(charges=[(funded.pk, "0")])
    assert not LedgerEntry.objects.filter(kind="usage_storage").exists()
    assert account(funded).usage_accrued == 0


def test_a_key_posted_twice_rolls_the_batch_back(funded):
    post(rows=[(funded.pk, "-1", "usage_compute", "pod:p1:compute:a")])
    with pytest.raises(UsageConflict):
        post(
            rows=[
                (funded.pk, "-1", "usage_compute", "pod:p1:compute:b"),
                (funded.pk, "-1", "usage_compute", "pod:p1:compute:a"),
            ]
        )
    assert not LedgerEntry.objects.filter(idempotency_key="pod:p1:compute:b").exists()
    assert account(funded).usage_accrued == Decimal("1")


def test_it_creates_a_missing_billing_account(team):
    post(charges=[(team.pk, "-0.5")])
    assert account(team).balance == Decimal("-0.5")


@pytest.mark.django_db(transaction=True)
def test_it_refuses_to_run_outside_a_transaction():
    from teams.models import Team

    team = Team.objects.create(name="Solo", slug="solo", is_personal=False)
    sql, params = charges_sql([(team.pk, "-1")])
    with pytest.raises(RuntimeError):
        apply_usage(charges_sql=sql, params=params, created_at=AT)


@pytest.mark.django_db(transaction=True)
def test_it_posts_once_when_two_batches_race():
    from teams.models import Team

    team = Team.objects.create(name="Race", slug="race", is_personal=False)
    rows = [(team.pk, "-0.25", "usage_compute", f"pod:race:compute:{m}") for m in range(40)]

    def attempt():
        try:
            return post(rows=rows).entries
        except (UsageConflict, IntegrityError):
            return "conflict"

    results = run_in_threads(attempt, [(), ()])
    assert sorted(map(str, results)) == ["40", "conflict"]
    assert LedgerEntry.objects.filter(team=team).count() == 40
    assert account(team).usage_accrued == Decimal("10")  # rows without charges: an imbalance
