"""Every billing page: Billing and Admin members only (Basic and Dev get 403)."""

from decimal import Decimal

from billing.models import Invoice, Payment, PaymentMethod
from tests.role_matrix import Route


def payment(team) -> dict:
    made = Payment.objects.create(
        team=team,
        amount=Decimal("25"),
        status=Payment.Status.SUCCEEDED,
        card_label="Visa •••• 4242",
    )
    return {"payment": made.public_id}


def card(team) -> dict:
    made = PaymentMethod.objects.create(team=team, stripe_id=f"pm_matrix_{team.pk}", last4="4242")
    return {"card": made.public_id}


def invoice(team) -> dict:
    made = Invoice.objects.create(
        team=team,
        amount=Decimal("5000"),
        billing_name="Matrix Inc",
        status=Invoice.Status.ISSUED,
        number=f"INV-MATRIX-{team.pk}",
    )
    return {"invoice": made.public_id}


ROUTES = [
    Route("billing", "billing"),
    Route("billing_ledger", "billing"),
    Route("billing_ledger_csv", "billing"),
    Route("billing_top_up", "billing", methods=("GET", "POST")),
    Route("billing_payment", "billing", make_kwargs=payment),
    Route("billing_receipt_pdf", "billing", make_kwargs=payment),
    Route("billing_cards", "billing"),
    Route("billing_card_setup", "billing", methods=("POST",)),
    Route("billing_card_add", "billing", methods=("POST",)),
    Route("billing_card_default", "billing", methods=("POST",), make_kwargs=card),
    Route("billing_card_remove", "billing", methods=("POST",), make_kwargs=card),
    Route("billing_auto_recharge", "billing", methods=("POST",)),
    Route("billing_alerts", "billing", methods=("POST",)),
    Route("billing_invoice_request", "billing", methods=("GET", "POST")),
    Route("billing_invoice", "billing", make_kwargs=invoice),
    Route("billing_invoice_pdf", "billing", make_kwargs=invoice),
]
