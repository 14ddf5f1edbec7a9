"""Build and sign Stripe events the way Stripe does, for webhook tests."""

import json
import time

from django.test import Client
from django.urls import reverse

from billing.stripe_gateway import sign_payload

SECRET = "whsec_test_secret"
_counter = iter(range(1, 10**9))


def intent(payment, *, status="succeeded", amount_cents=2500, intent_id="pi_test_1", error=None):
    obj = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount_cents,
        "amount_received": amount_cents if status == "succeeded" else 0,
        "currency": "usd",
        "status": status,
        "metadata": {"payment": payment.public_id, "team": payment.team.slug},
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
    secret=SECRET,
    timestamp=None,
    signature=None,
    client: Client | None = None,
):
    body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
    text = body.decode() if isinstance(body, bytes) else body
    if signature is None:
        signature = sign_payload(text, secret=secret, timestamp=timestamp or int(time.time()))
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature else {}
    return (client or Client()).post(
        reverse("stripe_webhook"), data=body, content_type="application/json", **headers
    )
