"""Business invoices: a team asks for an invoice top-up (>= MIN_INVOICE_AMOUNT); staff issue
it, then mark it paid (credit through the ledger) or void it."""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing import emails
from billing.models import Invoice, LedgerEntry
from billing.money import CENT, format_usd, to_money
from billing.services import post_entry
from teams import audit
from teams.models import Team


class InvoiceError(Exception):
    """The invoice cannot move that way; the message is for the user."""


def _audit(invoice: Invoice, actor, action: str, **details) -> None:
    audit.record(
        actor=actor,
        team=invoice.team,
        action=f"billing.invoice.{action}",
        resource_type="invoice",
        resource_id=invoice.public_id,
        details={"amount": str(invoice.amount), "number": invoice.number or "", **details},
    )


@transaction.atomic
def request_invoice(
    *,
    team: Team,
    actor,
    amount: Decimal,
    billing_name: str,
    billing_address: str = "",
    tax_id: str = "",
    note: str = "",
) -> Invoice:
    amount = to_money(amount)
    if amount < settings.MIN_INVOICE_AMOUNT:
        minimum = format_usd(settings.MIN_INVOICE_AMOUNT)
        raise InvoiceError(f"Invoices start at {minimum}; top up by card for less.")
    if amount != amount.quantize(CENT):
        raise InvoiceError("Enter an amount in whole cents.")
    invoice = Invoice.objects.create(
        team=team,
        amount=amount,
        billing_name=billing_name,
        billing_address=billing_address,
        tax_id=tax_id,
        note=note,
        requested_by=actor,
    )
    _audit(invoice, actor, "requested")
    return invoice


def _locked(invoice: Invoice, allowed: set[str], verb: str) -> Invoice:
    invoice = Invoice.objects.select_for_update().select_related("team").get(pk=invoice.pk)
    if invoice.status not in allowed:
        raise InvoiceError(f"A {invoice.get_status_display().lower()} invoice cannot be {verb}.")
    return invoice


@transaction.atomic
def issue_invoice(*, invoice: Invoice, actor, due_date=None) -> Invoice:
    invoice = _locked(invoice, {Invoice.Status.REQUESTED}, "issued")
    now = timezone.now()
    invoice.status = Invoice.Status.ISSUED
    invoice.issued_at = now
    invoice.number = f"INV-{now:%Y}-{invoice.pk:06d}"
    invoice.due_date = due_date or (now + timedelta(days=settings.INVOICE_DUE_DAYS)).date()
    invoice.save()
    _audit(invoice, actor, "issued", due_date=str(invoice.due_date))
    context = {
        "invoice": invoice,
        "url": emails.absolute("billing_invoice", invoice.team.slug, invoice.public_id),
    }
    transaction.on_commit(
        lambda: emails.send_to_billing("invoice_issued", team=invoice.team, context=context)
    )
    return invoice


@transaction.atomic
def mark_invoice_paid(*, invoice: Invoice, actor, reference: str = "") -> LedgerEntry:
    invoice = _locked(invoice, {Invoice.Status.ISSUED}, "marked paid")
    entry = post_entry(
        team=invoice.team,
        amount=invoice.amount,
        kind=LedgerEntry.Kind.INVOICE_PAYMENT,
        idempotency_key=f"invoice:{invoice.public_id}",
        description=f"Invoice {invoice.number} paid",
        source_type="invoice",
        source_id=invoice.public_id,
        actor=actor,
    )
    invoice.status = Invoice.Status.PAID
    invoice.paid_at = timezone.now()
    invoice.payment_reference = reference or invoice.payment_reference
    invoice.ledger_entry = entry or LedgerEntry.objects.get(
        idempotency_key=f"invoice:{invoice.public_id}"
    )
    invoice.save()
    _audit(invoice, actor, "paid", reference=invoice.payment_reference)
    return invoice.ledger_entry


@transaction.atomic
def void_invoice(*, invoice: Invoice, actor, reason: str = "") -> Invoice:
    invoice = _locked(invoice, {Invoice.Status.REQUESTED, Invoice.Status.ISSUED}, "voided")
    invoice.status = Invoice.Status.VOID
    invoice.voided_at = timezone.now()
    invoice.save()
    _audit(invoice, actor, "voided", reason=reason)
    return invoice
