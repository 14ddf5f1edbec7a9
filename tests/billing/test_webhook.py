"""The Stripe webhook credits a payment exactly once, and only when Stripe signed it."""

import json
import threading
import time
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from billing import services
from billing.models import LedgerEntry, Payment, WebhookEvent
from teams.models import AuditEvent, Team
from tests.billing.stripe_events import SECRET, deliver, event, intent


@pytest.fixture(autouse=True)
def stripe_keys(settings):
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    settings.STRIPE_PUBLISHABLE_KEY = "pk_test_x"
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    settings.STRIPE_API_BASE = ""


@pytest.fixture
def payment(team) -> Payment:
    return Payment.objects.create(
        team=team,
        amount=Decimal("25"),
        status=Payment.Status.PROCESSING,
        card_label="Visa •••• 4242",
    )


def balance(team) -> Decimal:
    return services.get_account(team).balance


def test_it_credits_a_succeeded_payment(payment):
    response = deliver(event("payment_intent.succeeded", intent(payment)))
    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.ledger_entry.amount == Decimal("25")
    assert payment.stripe_payment_intent_id == "pi_test_1"
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
    deliver(
        event(
            "payment_intent.payment_failed",
            intent(payment, status="requires_payment_method", error="Declined"),
        )
    )
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert balance(payment.team) == Decimal("25")


def test_it_credits_a_success_that_arrives_after_a_failure(payment):
    deliver(
        event(
            "payment_intent.payment_failed",
            intent(payment, status="requires_payment_method", error="Declined"),
        )
    )
    deliver(event("payment_intent.succeeded", intent(payment)))
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert balance(payment.team) == Decimal("25")


def test_it_records_why_a_payment_failed(payment):
    failed = intent(
        payment, status="requires_payment_method", error="Your card has insufficient funds."
    )
    deliver(event("payment_intent.payment_failed", failed))
    payment.refresh_from_db()
    assert payment.status == Payment.Status.FAILED
    assert payment.failure_message == "Your card has insufficient funds."
    assert balance(payment.team) == 0


def test_it_credits_what_stripe_collected(payment):
    deliver(event("payment_intent.succeeded", intent(payment, amount_cents=2501)))
    assert balance(payment.team) == Decimal("25.01")


def test_it_ignores_intents_that_are_not_ours(team):
    stranger = {"id": "pi_x", "amount": 100, "amount_received": 100, "metadata": {}}
    assert deliver(event("payment_intent.succeeded", stranger)).status_code == 200
    assert not LedgerEntry.objects.exists()


def test_it_ignores_an_event_whose_intent_does_not_match_the_payment(payment):
    Payment.objects.filter(pk=payment.pk).update(stripe_payment_intent_id="pi_real")
    deliver(event("payment_intent.succeeded", intent(payment, intent_id="pi_other")))
    assert not LedgerEntry.objects.exists()


def signed_now(payload: str) -> dict:
    return {"timestamp": int(time.time())}


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
        "no_amount",
    ],
)
def test_it_rejects_bad_webhooks_and_changes_nothing(payment, tamper):
    good = event("payment_intent.succeeded", intent(payment))
    body = json.dumps(good)
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
    elif tamper == "no_amount":
        obj = intent(payment)
        del obj["amount"], obj["amount_received"]
        body = json.dumps(event("payment_intent.succeeded", obj))
    if tamper == "tampered":
        from billing.stripe_gateway import sign_payload

        signature = sign_payload(body, secret=SECRET, timestamp=int(time.time()))
        body = body.replace("2500", "250000")
        kwargs["signature"] = signature
    response = deliver(body, **kwargs)
    assert response.status_code == 400
    assert not LedgerEntry.objects.exists()
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PROCESSING
    if tamper != "no_amount":
        assert not WebhookEvent.objects.exists()


def test_it_refuses_get(client):
    from django.urls import reverse

    assert client.get(reverse("stripe_webhook")).status_code == 405


@pytest.mark.django_db(transaction=True)
def test_it_credits_once_when_the_same_event_arrives_from_8_threads_at_once(settings):
    team = Team.objects.create(name="Race", slug="race", is_personal=False)
    payment = Payment.objects.create(
        team=team, amount=Decimal("25"), status=Payment.Status.PROCESSING
    )
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
