from datetime import date
from decimal import Decimal

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from billing import invoices, payments, services
from billing.models import Invoice, LedgerEntry
from teams.models import AuditEvent, User


@pytest.fixture
def staff(db) -> Client:
    user = User.objects.create_superuser(email="staff@example.com", password="x")
    client = Client()
    client.force_login(user)
    return client


def test_it_grants_credit_from_the_command_line(team, capsys):
    call_command("grant_credit", team="acme", amount="25", reason="Conference voucher")
    entry = LedgerEntry.objects.get()
    assert entry.kind == "adjustment"
    assert entry.description == "Conference voucher"
    assert services.get_account(team).balance == Decimal("25")
    assert "Posted $25.00 to acme; balance $25.00." in capsys.readouterr().out
    assert AuditEvent.objects.filter(action="billing.ledger.adjustment").exists()


def test_it_refuses_bad_grants(team):
    with pytest.raises(CommandError, match="No team"):
        call_command("grant_credit", team="nope", amount="25", reason="x")
    with pytest.raises(CommandError, match="Not an amount"):
        call_command("grant_credit", team="acme", amount="lots", reason="x")
    with pytest.raises(CommandError, match="needs a reason"):
        call_command("grant_credit", team="acme", amount="5", reason=" ")


def test_it_makes_grants_with_a_key_idempotent(team):
    call_command("grant_credit", team="acme", amount="25", reason="x", key="voucher-1")
    with pytest.raises(CommandError, match="already posted"):
        call_command("grant_credit", team="acme", amount="25", reason="x", key="voucher-1")
    assert services.get_account(team).balance == Decimal("25")


def test_it_posts_staff_adjustments_from_the_admin(team, staff):
    account = services.get_account(team)
    url = reverse("admin:billing_billingaccount_adjust", args=[account.pk])
    assert staff.get(url).status_code == 200
    response = staff.post(url, {"amount": "-2.5", "reason": "Duplicate charge correction"})
    assert response.status_code == 302
    entry = LedgerEntry.objects.get()
    assert entry.amount == Decimal("-2.5")
    assert entry.actor.email == "staff@example.com"
    call_command("check_ledger")


def test_it_keeps_the_ledger_read_only_in_the_admin(team, staff):
    services.adjust_balance(team=team, amount=Decimal("5"), reason="x", actor=None)
    entry = LedgerEntry.objects.get()
    change = reverse("admin:billing_ledgerentry_change", args=[entry.pk])
    assert staff.post(change, {"amount": "500"}).status_code == 403
    assert staff.get(reverse("admin:billing_ledgerentry_add")).status_code == 403
    assert staff.get(reverse("admin:billing_ledgerentry_changelist")).status_code == 200


def test_it_overrides_the_spend_limit_from_the_admin(team, staff):
    account = services.get_account(team)
    url = reverse("admin:billing_billingaccount_change", args=[account.pk])
    response = staff.post(url, {"spend_limit_override": "250"})
    assert response.status_code == 302
    assert services.get_account(team).spend_limit_per_hour == Decimal("250")
    assert AuditEvent.objects.filter(action="billing.spend_limit.override").exists()


def test_it_issues_pays_and_voids_invoices(team, alice, staff, django_capture_on_commit_callbacks):
    invoice = invoices.request_invoice(
        team=team, actor=alice, amount=Decimal("5000"), billing_name="Acme Inc"
    )
    changelist = reverse("admin:billing_invoice_changelist")
    with django_capture_on_commit_callbacks(execute=True):
        staff.post(changelist, {"action": "issue", "_selected_action": [invoice.pk]})
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.ISSUED
    assert invoice.number.startswith("INV-")
    assert invoice.due_date > date.today()
    assert mail.outbox[0].subject == f"[GPU Console] Invoice {invoice.number} for Acme"
    pdf = Client()
    pdf.force_login(alice)
    response = pdf.get(reverse("billing_invoice_pdf", args=[team.slug, invoice.public_id]))
    assert response.content.startswith(b"%PDF")
    staff.post(changelist, {"action": "mark_paid", "_selected_action": [invoice.pk]})
    staff.post(changelist, {"action": "mark_paid", "_selected_action": [invoice.pk]})
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert services.get_account(team).balance == Decimal("5000")
    assert services.get_account(team).paid_total == Decimal("5000")
    staff.post(changelist, {"action": "void", "_selected_action": [invoice.pk]})
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID  # a paid invoice cannot be voided
    call_command("check_ledger")


def test_it_voids_an_invoice_request(team, alice):
    invoice = invoices.request_invoice(
        team=team, actor=alice, amount=Decimal("6000"), billing_name="Acme Inc"
    )
    invoices.void_invoice(invoice=invoice, actor=None, reason="duplicate")
    with pytest.raises(invoices.InvoiceError):
        invoices.issue_invoice(invoice=invoice, actor=None)
    assert not LedgerEntry.objects.exists()


def test_it_refuses_small_invoices(team, alice):
    with pytest.raises(invoices.InvoiceError, match="Invoices start at \\$5,000.00"):
        invoices.request_invoice(team=team, actor=alice, amount=Decimal("4999"), billing_name="A")


def test_it_e_mails_billing_members_once_when_the_balance_runs_low(
    team, alice, eager_tasks, django_capture_on_commit_callbacks
):
    services.adjust_balance(team=team, amount=Decimal("30"), reason="start", actor=None)
    payments.set_low_balance_alert(team=team, actor=alice, threshold=Decimal("20"))
    for minute in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            services.post_entry(
                team=team,
                amount=Decimal("-6"),
                kind="usage_compute",
                idempotency_key=f"m{minute}",
                description="pod",
            )
    assert [m.subject for m in mail.outbox] == ["[GPU Console] Acme: balance below $20.00"]
    assert "balance of Acme is $18.00" in mail.outbox[0].body
    with django_capture_on_commit_callbacks(execute=True):
        services.adjust_balance(team=team, amount=Decimal("50"), reason="top", actor=None)
    assert services.get_account(team).low_balance_alerted_at is None  # re-armed
    with django_capture_on_commit_callbacks(execute=True):
        services.post_entry(
            team=team,
            amount=Decimal("-50"),
            kind="usage_compute",
            idempotency_key="big",
            description="pod",
        )
    assert len(mail.outbox) == 2


def test_it_runs_the_sweep_by_hand(team, alice, eager_tasks, django_capture_on_commit_callbacks):
    payments.set_low_balance_alert(team=team, actor=alice, threshold=Decimal("20"))
    with django_capture_on_commit_callbacks(execute=True):
        call_command("billing_sweep")
    assert len(mail.outbox) == 1
