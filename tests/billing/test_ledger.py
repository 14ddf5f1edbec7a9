from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import IntegrityError

from billing import services
from billing.models import BillingAccount, LedgerEntry
from teams.models import AuditEvent


def credit(team, amount, key, kind="top_up", **extra):
    return services.post_entry(
        team=team,
        amount=Decimal(amount),
        kind=kind,
        idempotency_key=key,
        description="test",
        **extra,
    )


def test_it_creates_the_account_on_demand(team):
    account = services.get_account(team)
    assert account.balance == 0
    assert services.get_account(team).pk == account.pk


def test_it_posts_an_entry_and_moves_the_balance(team, alice):
    entry = credit(team, "25", "k1", actor=alice, source_type="payment", source_id="p1")
    assert entry.amount == Decimal("25")
    assert entry.balance_after == Decimal("25")
    assert BillingAccount.objects.get(team=team).balance == Decimal("25")
    assert BillingAccount.objects.get(team=team).paid_total == Decimal("25")
    event = AuditEvent.objects.get(action="billing.ledger.top_up")
    assert event.resource_id == entry.public_id
    assert event.details["amount"] == "25.0000000000"


def test_it_posts_each_idempotency_key_once(team):
    assert credit(team, "25", "same") is not None
    assert credit(team, "25", "same") is None
    assert LedgerEntry.objects.count() == 1
    assert services.get_account(team).balance == Decimal("25")


def test_it_keeps_exact_per_minute_charges(team):
    from billing.money import minute_charge

    credit(team, "10", "topup")
    for minute in range(60):
        services.post_entry(
            team=team,
            amount=-minute_charge("0.79", minute),
            kind="usage_compute",
            idempotency_key=f"pod:x:minute:{minute}",
            description="A40 × 1",
        )
    assert services.get_account(team).balance == Decimal("9.21")
    assert LedgerEntry.objects.for_team(team).total() == Decimal("9.21")


def test_it_does_not_audit_each_usage_minute(team):
    credit(team, "1", "topup")
    credit(team, "-0.01", "usage", kind="usage_compute")
    assert not AuditEvent.objects.filter(action__startswith="billing.ledger.usage").exists()


@pytest.mark.parametrize(
    ("kind", "amount"),
    [("top_up", "-5"), ("usage_compute", "5"), ("adjustment", "0"), ("nonsense", "1")],
)
def test_it_refuses_entries_with_the_wrong_sign(team, kind, amount):
    with pytest.raises(ValueError):
        credit(team, amount, "bad", kind=kind)
    assert not LedgerEntry.objects.exists()


def test_it_refuses_to_edit_or_delete_entries(team):
    entry = credit(team, "25", "k")
    entry.amount = Decimal("1000")
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()
    with pytest.raises(PermissionError):
        LedgerEntry.objects.filter(pk=entry.pk).update(amount=1)
    with pytest.raises(PermissionError):
        LedgerEntry.objects.all().delete()


def test_it_enforces_signs_in_the_database_too(team):
    with pytest.raises(IntegrityError):
        LedgerEntry.objects.create(
            team=team, amount=-1, balance_after=-1, kind="top_up", idempotency_key="x"
        )


def test_it_passes_check_ledger_after_posting(team):
    credit(team, "25", "a")
    credit(team, "-3.5", "b", kind="usage_storage")
    call_command("check_ledger")


def test_it_fails_check_ledger_when_a_balance_drifts(team):
    from django.core.management.base import CommandError

    credit(team, "25", "a")
    BillingAccount.objects.filter(team=team).update(balance=Decimal("26"))
    with pytest.raises(CommandError, match="1 ledger mismatch"):
        call_command("check_ledger")
