"""The Stripe webhook credits a payment exactly once, only when Stripe signed the event and
only after Stripe's API confirms the intent. Real intents at the emulator (localstripe)
through the real `stripe` library; events signed here with the secret we verify with."""

import json
import threading
import time
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse

from billing import services
from billing.models import LedgerEntry, Payment, WebhookEvent
from teams.models import AuditEvent
from tests.billing.stripe_events import (
    DECLINED_ON_CHARGE,
    deliver,
    event,
    intent,
    recorded_payment,
    top_up,
)

pytestmark = pytest.mark.usefixtures("stripe_emulator")


@pytest.fixture
def payment(team, alice) -> Payment:
    """$25 paid at Stripe; our payment waits for the webhook."""
    payment = top_up(team, alice, "25")
    assert payment.status == Payment.Status.PROCESSING
    return payment


def balance(team) -> Decimal:
    return services.get_account(team).balance


def test_it_credits_a_succeeded_payment(payment):
    response = deliver(event("payment_intent.succeeded", intent(payment)))
    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.ledger_entry.amount == Decimal("25")
    assert payment.ledger_entry.idempotency_key == f"stripe:pi:{payment.stripe_payment_intent_id}"
    assert balance(payment.team) == Decimal("25")
    assert AuditEvent.objects.filter(action="billing.top_up.succeeded").count() == 1


def test_it_credits_once_when_replayed_100_times_interleaved_with_processing(payment):
    succeeded = event("payment_intent.succeeded", intent(payment), event_id="evt_success")
    processing = event("payment_intent.processing", intent(payment, status="processing"))
    assert deliver(processing).status_code == 200
    for _ in range(100):
        assert deliver(succeeded).status_code == 200
        assert deliver(processing).status_code == 200
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert LedgerEntry.objects.count() == 1
    assert balance(payment.team) == Decimal("25")
    assert WebhookEvent.objects.get(stripe_id="evt_success").deliveries == 100
    assert AuditEvent.objects.filter(action="billing.top_up.succeeded").count() == 1
    call_command("check_ledger")


def test_it_credits_once_when_stripe_sends_new_events_for_the_same_intent(payment):
    for _ in range(3):
        deliver(event("payment_intent.succeeded", intent(payment)))
    assert LedgerEntry.objects.count() == 1


def test_it_keeps_success_when_a_failure_arrives_late(payment):
    deliver(event("payment_intent.succeeded", intent(payment)))
    failed = intent(payment, status="requires_payment_method", error="Declined")
    deliver(event("payment_intent.payment_failed", failed))
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert balance(payment.team) == Decimal("25")


def test_it_believes_stripe_over_the_event_about_what_happened(payment):
    """A failure event for an intent that Stripe says succeeded settles it as succeeded."""
    failed = intent(payment, status="requires_payment_method", error="Declined")
    deliver(event("payment_intent.payment_failed", failed))
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert balance(payment.team) == Decimal("25")


def test_it_records_why_a_payment_failed_from_stripes_record(team):
    declined = recorded_payment(team, "25", DECLINED_ON_CHARGE)
    failed = intent(declined, status="requires_payment_method", error="Anything the event says")
    deliver(event("payment_intent.payment_failed", failed))
    declined.refresh_from_db()
    assert declined.status == Payment.Status.FAILED
    assert declined.failure_message == "Your card was declined."
    assert balance(team) == 0


def test_it_answers_503_when_stripe_cannot_be_asked_and_credits_on_redelivery(
    payment, settings, stripe_emulator
):
    body = json.dumps(event("payment_intent.succeeded", intent(payment)))
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens on the discard port
    assert deliver(body).status_code == 503
    assert balance(payment.team) == 0
    settings.STRIPE_API_BASE = stripe_emulator["base"]
    assert deliver(body).status_code == 200
    assert balance(payment.team) == Decimal("25")


@pytest.mark.parametrize(
    "tamper",
    [
        "unsigned",
        "wrong_secret",
        "stale",
        "future",
        "malformed_json",
        "not_an_event",
        "tampered",
        "garbage_header",
    ],
)
def test_it_rejects_bad_webhooks_and_changes_nothing(payment, tamper):
    body = json.dumps(event("payment_intent.succeeded", intent(payment)))
    kwargs: dict = {}
    if tamper == "unsigned":
        kwargs["signature"] = ""
    elif tamper == "wrong_secret":
        kwargs["secret"] = "whsec_wrong"
    elif tamper == "stale":
        kwargs["timestamp"] = int(time.time()) - 301
    elif tamper == "future":
        kwargs["timestamp"] = int(time.time()) + 301
    elif tamper == "malformed_json":
        body = body[:-5]
    elif tamper == "not_an_event":
        body = json.dumps({"id": "evt_1", "type": "payment_intent.succeeded", "data": {}})
    elif tamper == "garbage_header":
        kwargs["signature"] = "t=abc,v1="
    if tamper == "tampered":
        from billing.stripe_gateway import sign_payload, webhook_secret

        signature = sign_payload(body, secret=webhook_secret(), timestamp=int(time.time()))
        body = body.replace("2500", "250000")
        kwargs["signature"] = signature
    response = deliver(body, **kwargs)
    assert response.status_code == 400
    assert not LedgerEntry.objects.exists()
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PROCESSING
    assert not WebhookEvent.objects.exists()


def test_it_refuses_get(client):
    assert client.get(reverse("stripe_webhook")).status_code == 405


@pytest.mark.django_db(transaction=True)
def test_it_credits_once_when_the_same_event_arrives_from_8_threads_at_once(team, alice):
    payment = top_up(team, alice, "25")
    body = json.dumps(event("payment_intent.succeeded", intent(payment)))
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def send():
        try:
            client = Client()
            barrier.wait()
            statuses.append(deliver(body, client=client).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 8
    assert LedgerEntry.objects.filter(team=team).count() == 1
    assert services.get_account(team).balance == Decimal("25")
    assert WebhookEvent.objects.get().deliveries == 8
    call_command("check_ledger")
