"""Build and sign Stripe events the way Stripe does, for webhook tests, and make the real
PaymentIntents (at the emulator, through the real `stripe` library) that those events name."""

import contextlib
import json
import time
from decimal import Decimal

import stripe
from django.test import Client
from django.urls import reverse

from billing import payments
from billing import stripe_gateway as gateway
from billing.models import Payment
from tests.billing.conftest import browser_confirms_card

VISA = "4242424242424242"
DECLINED_ON_CHARGE = "4000000000000341"
_counter = iter(range(1, 10**9))


def intent(
    payment: Payment | None = None,
    *,
    intent_id: str | None = None,
    status: str = "succeeded",
    amount_cents: int = 2500,
    currency: str = "usd",
    metadata: dict | None = None,
    error: str | None = None,
) -> dict:
    """An event's copy of a PaymentIntent: by default the one `payment` recorded."""
    if metadata is None and payment is not None:
        metadata = {"payment": payment.public_id, "team": payment.team.slug}
    obj = {
        "id": intent_id or payment.stripe_payment_intent_id,
        "object": "payment_intent",
        "amount": amount_cents,
        "amount_received": amount_cents if status == "succeeded" else 0,
        "currency": currency,
        "status": status,
        "metadata": metadata or {},
    }
    if error:
        obj["last_payment_error"] = {"code": "card_declined", "message": error}
    return obj


def event(event_type: str, obj: dict, event_id: str | None = None) -> dict:
    return {
        "id": event_id or f"evt_test_{next(_counter)}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": obj},
    }


def deliver(
    payload: dict | str | bytes,
    *,
    secret: str | None = None,
    timestamp=None,
    signature=None,
    client: Client | None = None,
):
    """POST an event to our webhook, signed (by default) with the secret we verify with."""
    body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
    text = body.decode() if isinstance(body, bytes) else body
    if signature is None:
        signature = gateway.sign_payload(
            text,
            secret=secret or gateway.webhook_secret(),
            timestamp=timestamp or int(time.time()),
        )
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature else {}
    return (client or Client()).post(
        reverse("stripe_webhook"), data=body, content_type="application/json", **headers
    )


def top_up(team, actor, amount: str = "25", number: str = VISA) -> Payment:
    """A top-up the way the console makes one (card confirmed by Stripe.js, then charged):
    Stripe's intent is settled, our payment waits for the webhook."""
    setup = payments.start_card_setup(team=team, actor=actor)
    browser_confirms_card(gateway.config().api_base, setup.client_secret, number)
    started = payments.start_top_up(
        team=team, actor=actor, amount=Decimal(amount), setup_intent_id=setup.id
    )
    return started.payment


def stripe_client() -> stripe.StripeClient:
    cfg = gateway.config()
    return stripe.StripeClient(cfg.secret_key, base_addresses={"api": cfg.api_base})


def intent_at_stripe(
    *,
    amount_cents: int,
    metadata: dict,
    currency: str = "usd",
    customer: str | None = None,
    number: str = VISA,
) -> str:
    """A PaymentIntent made and confirmed directly at the emulator with the given details
    (succeeded, or declined for a declining card number)."""
    client = stripe_client()
    if customer is None:
        customer = client.v1.customers.create(params={"email": "x@example.com"}).id
    card = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        }
    )
    client.v1.payment_methods.attach(card.id, params={"customer": customer})
    params = {
        "amount": amount_cents,
        "currency": currency,
        "customer": customer,
        "payment_method": card.id,
        "metadata": metadata,
    }
    created = client.v1.payment_intents.create(params=params)
    with contextlib.suppress(stripe.CardError):  # declined: left in requires_payment_method
        client.v1.payment_intents.confirm(created.id)
    return created.id


def recorded_payment(
    team, amount: str = "25", number: str = VISA, metadata: dict | None = None, **at_stripe
) -> Payment:
    """A payment of ours whose recorded intent was made at Stripe for our customer with our
    details, except what `metadata` changes (None deletes a key) and what `at_stripe`
    overrides (amount_cents, currency, customer=None for a stranger): the shape of every
    payment the console creates, with one detail changed."""
    customer = payments.ensure_customer(team=team, actor=None)
    payment = Payment.objects.create(
        team=team, amount=Decimal(amount), status=Payment.Status.PROCESSING
    )
    ours = {"payment": payment.public_id, "team": team.slug, **(metadata or {})}
    details = {
        "amount_cents": int(Decimal(amount) * 100),
        "metadata": {key: value for key, value in ours.items() if value is not None},
        "customer": customer,
        **at_stripe,
    }
    payment.stripe_payment_intent_id = intent_at_stripe(number=number, **details)
    payment.save(update_fields=["stripe_payment_intent_id"])
    return payment
