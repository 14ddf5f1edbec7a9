"""Top-ups, saved cards and auto-recharge against localstripe through the real `stripe`
library; the emulator's own signed webhooks are handed to our endpoint."""

from datetime import timedelta
from decimal import Decimal

import psutil
import pytest
import requests
import time_machine
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing import payments, services
from billing import stripe_gateway as gateway
from billing.models import LedgerEntry, Payment, PaymentMethod
from teams.models import AuditEvent, Membership, Role
from tests.billing.conftest import browser_authenticates, browser_confirms_card
from tests.conftest import login, make_user

VISA = "4242424242424242"
DECLINED_ON_CHARGE = "4000000000000341"
DECLINED_ON_SETUP = "4000000000000002"
NEEDS_3DS = "4000002500003155"


def forward(emulator, event_type: str, intent_id: str):
    """Hand the emulator's signed delivery to our webhook view, byte for byte."""
    body, signature = emulator["inbox"].wait_for(event_type, intent_id)
    return Client().post(
        reverse("stripe_webhook"),
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature,
    )


def new_card(emulator, team, user, number=VISA) -> str:
    """Collect a card the way the top-up page does: SetupIntent, confirmed by Stripe.js."""
    setup = payments.start_card_setup(team=team, actor=user)
    response = browser_confirms_card(emulator["base"], setup.client_secret, number)
    return setup.id if response.status_code == 200 else ""


def confirm_3ds_card(emulator, setup) -> None:
    """A 3-D Secure card: the SetupIntent asks for authentication, the user completes it."""
    assert browser_confirms_card(emulator["base"], setup.client_secret, NEEDS_3DS).ok
    response = requests.post(
        f"{emulator['base']}/v1/setup_intents/{setup.id}/confirm",
        json={"key": "pk_test_localstripe", "client_secret": setup.client_secret},
        timeout=10,
    )
    assert response.json()["status"] == "succeeded"


def saved_card(emulator, team, user, number=VISA) -> PaymentMethod:
    return payments.save_card(
        team=team, actor=user, setup_intent_id=new_card(emulator, team, user, number)
    )


def balance(team) -> Decimal:
    return services.get_account(team).balance


def test_it_tops_up_with_a_new_card_and_credits_on_the_webhook(
    stripe_emulator, team, alice, django_capture_on_commit_callbacks
):
    client = login(alice)
    setup = client.post(reverse("billing_card_setup", args=[team.slug])).json()
    assert browser_confirms_card(stripe_emulator["base"], setup["client_secret"], VISA).ok
    response = client.post(
        reverse("billing_top_up", args=[team.slug]),
        {"amount": "25", "setup_intent": setup["client_secret"].split("_secret_")[0]},
        HTTP_ACCEPT="application/json",
    )
    body = response.json()
    payment = Payment.objects.get(public_id=body["payment"])
    assert body["status"] == Payment.Status.PROCESSING
    assert body["client_secret"] == ""
    assert balance(team) == 0  # nothing until Stripe's signed event arrives
    with django_capture_on_commit_callbacks(execute=True):
        delivered = forward(
            stripe_emulator, "payment_intent.succeeded", payment.stripe_payment_intent_id
        )
    assert delivered.status_code == 200
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.card_label == "Visa •••• 4242"
    assert balance(team) == Decimal("25")
    assert not PaymentMethod.objects.exists()  # not saved
    card = gateway.retrieve_card(payment.stripe_payment_method_id)
    assert card.customer is None  # and detached from the customer once settled
    page = client.get(reverse("billing_payment", args=[team.slug, payment.public_id]))
    assert (
        'Your balance is now <strong data-testid="balance">$25.00</strong>' in page.content.decode()
    )
    call_command("check_ledger")


def test_it_saves_the_card_and_tops_up_with_it_again(stripe_emulator, team, alice):
    setup_id = new_card(stripe_emulator, team, alice)
    started = payments.start_top_up(
        team=team, actor=alice, amount=Decimal("100"), setup_intent_id=setup_id, save=True
    )
    card = PaymentMethod.objects.get()
    assert card.is_default and card.last4 == "4242" and card.exp_year == 2030
    forward(stripe_emulator, "payment_intent.succeeded", started.payment.stripe_payment_intent_id)
    again = payments.start_top_up(team=team, actor=alice, amount=Decimal("10.50"), card=card)
    forward(stripe_emulator, "payment_intent.succeeded", again.payment.stripe_payment_intent_id)
    assert balance(team) == Decimal("110.50")
    assert gateway.retrieve_card(card.stripe_id).customer  # a saved card stays attached
    assert AuditEvent.objects.filter(action="billing.card.added").count() == 1


def test_it_shows_the_decline_reason_and_credits_nothing(stripe_emulator, team, alice):
    setup_id = new_card(stripe_emulator, team, alice, DECLINED_ON_CHARGE)
    started = payments.start_top_up(
        team=team, actor=alice, amount=Decimal("25"), setup_intent_id=setup_id
    )
    payment = started.payment
    assert payment.status == Payment.Status.FAILED
    assert payment.failure_message == "Your card was declined."
    page = login(alice).get(reverse("billing_payment", args=[team.slug, payment.public_id]))
    assert "Your card was declined." in page.content.decode()
    assert balance(team) == 0


def test_it_reports_a_card_refused_at_entry(stripe_emulator, team, alice):
    setup = payments.start_card_setup(team=team, actor=alice)
    response = browser_confirms_card(
        stripe_emulator["base"], setup.client_secret, DECLINED_ON_SETUP
    )
    assert response.status_code == 402
    with pytest.raises(payments.PaymentError, match="not confirmed"):
        payments.start_top_up(
            team=team, actor=alice, amount=Decimal("25"), setup_intent_id=setup.id
        )
    assert not Payment.objects.exists()


def test_it_handles_3d_secure_before_crediting(stripe_emulator, team, alice):
    setup = payments.start_card_setup(team=team, actor=alice)
    confirm_3ds_card(stripe_emulator, setup)
    started = payments.start_top_up(
        team=team, actor=alice, amount=Decimal("25"), setup_intent_id=setup.id
    )
    assert started.payment.status == Payment.Status.REQUIRES_ACTION
    assert started.client_secret
    assert browser_authenticates(stripe_emulator["base"], started.client_secret, True).ok
    forward(stripe_emulator, "payment_intent.succeeded", started.payment.stripe_payment_intent_id)
    started.payment.refresh_from_db()
    assert started.payment.status == Payment.Status.SUCCEEDED
    assert balance(team) == Decimal("25")


def test_it_refuses_amounts_under_the_minimum(stripe_emulator, team, alice):
    with pytest.raises(payments.PaymentError, match="minimum top-up is \\$10.00"):
        payments.start_top_up(team=team, actor=alice, amount=Decimal("9.99"), setup_intent_id="x")


def test_it_sets_default_and_removes_cards(
    stripe_emulator, team, alice, django_capture_on_commit_callbacks
):
    first = saved_card(stripe_emulator, team, alice)
    second = saved_card(stripe_emulator, team, alice)
    assert first.is_default and not second.is_default
    client = login(alice)
    client.post(reverse("billing_card_default", args=[team.slug, second.public_id]))
    second.refresh_from_db()
    first.refresh_from_db()
    assert second.is_default and not first.is_default
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("billing_card_remove", args=[team.slug, second.public_id]))
    second.refresh_from_db()
    assert second.removed_at is not None
    assert gateway.retrieve_card(second.stripe_id).customer is None
    html = client.get(reverse("billing_cards", args=[team.slug])).content.decode()
    assert html.count('data-testid="saved-card"') == 1


def enable_auto_recharge(team, user, card, threshold="10", amount="50"):
    payments.configure_auto_recharge(
        team=team,
        actor=user,
        new=payments.AutoRechargeSettings(
            enabled=True, threshold=Decimal(threshold), amount=Decimal(amount), card=card
        ),
    )


def charge(team, amount, key):
    return services.post_entry(
        team=team,
        amount=-Decimal(amount),
        kind="usage_compute",
        idempotency_key=key,
        description="pod",
    )


def test_it_auto_recharges_when_a_charge_crosses_the_threshold(
    stripe_emulator, team, alice, eager_tasks, django_capture_on_commit_callbacks
):
    card = saved_card(stripe_emulator, team, alice)
    services.adjust_balance(team=team, amount=Decimal("12"), reason="start", actor=None)
    enable_auto_recharge(team, alice, card)
    with django_capture_on_commit_callbacks(execute=True):
        charge(team, "1", "m1")  # 11: above the threshold
    assert not Payment.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        charge(team, "3", "m2")  # 8: below
    payment = Payment.objects.get()
    assert payment.kind == Payment.Kind.AUTO_RECHARGE
    assert payment.amount == Decimal("50")
    assert payment.status == Payment.Status.PROCESSING
    forward(stripe_emulator, "payment_intent.succeeded", payment.stripe_payment_intent_id)
    assert balance(team) == Decimal("58")
    with django_capture_on_commit_callbacks(execute=True):
        charge(team, "50", "m3")  # 8 again, but within the hour: no second charge
    assert Payment.objects.count() == 1
    assert AuditEvent.objects.filter(action="billing.auto_recharge.started").count() == 1


def test_it_charges_again_after_an_hour(stripe_emulator, team, alice):
    card = saved_card(stripe_emulator, team, alice)
    enable_auto_recharge(team, alice, card)
    assert payments.trigger_auto_recharge(team=team) is not None
    assert payments.trigger_auto_recharge(team=team) is None
    with time_machine.travel(timezone.now() + timedelta(minutes=61)):
        assert payments.trigger_auto_recharge(team=team) is not None
    assert Payment.objects.filter(kind="auto_recharge").count() == 2


def test_it_turns_auto_recharge_off_after_three_failures(
    stripe_emulator, team, alice, bob, django_capture_on_commit_callbacks
):
    Membership.objects.filter(user=bob).update(role=Role.BILLING)
    dev = make_user("dev@example.com")
    Membership.objects.create(user=dev, team=team, role=Role.DEV)
    card = saved_card(stripe_emulator, team, alice, DECLINED_ON_CHARGE)
    enable_auto_recharge(team, alice, card)
    start = timezone.now()
    for attempt in range(3):
        with (
            time_machine.travel(start + timedelta(hours=attempt, minutes=1)),
            django_capture_on_commit_callbacks(execute=True),
        ):
            payment = payments.trigger_auto_recharge(team=team)
        assert payment.status == Payment.Status.FAILED
        assert payment.failure_message == "Your card was declined."
    account = services.get_account(team)
    assert account.auto_recharge_enabled is False
    assert account.auto_recharge_failures == 3
    assert "3 failed charges in a row" in account.auto_recharge_disabled_reason
    subjects = [m.subject for m in mail.outbox]
    assert subjects.count("[GPU Console] Auto-recharge failed for Acme") == 2
    assert subjects.count("[GPU Console] Auto-recharge is now off for Acme") == 1
    assert sorted(mail.outbox[0].to) == ["alice@example.com", "bob@example.com"]
    assert reverse("billing_cards", args=[team.slug]) in mail.outbox[0].body
    assert AuditEvent.objects.filter(action="billing.auto_recharge.disabled").count() == 1
    with time_machine.travel(start + timedelta(hours=5)):
        assert payments.trigger_auto_recharge(team=team) is None
    assert not LedgerEntry.objects.filter(kind="top_up").exists()


def test_it_resets_the_failure_count_after_a_success(stripe_emulator, team, alice):
    card = saved_card(stripe_emulator, team, alice)
    enable_auto_recharge(team, alice, card)
    account = services.get_account(team)
    account.auto_recharge_failures = 2
    account.save()
    payment = payments.trigger_auto_recharge(team=team)
    forward(stripe_emulator, "payment_intent.succeeded", payment.stripe_payment_intent_id)
    assert services.get_account(team).auto_recharge_failures == 0


def test_it_fails_off_session_charges_that_need_authentication(
    stripe_emulator, team, alice, django_capture_on_commit_callbacks
):
    setup = payments.start_card_setup(team=team, actor=alice)
    confirm_3ds_card(stripe_emulator, setup)
    card = payments.save_card(team=team, actor=alice, setup_intent_id=setup.id)
    enable_auto_recharge(team, alice, card)
    with django_capture_on_commit_callbacks(execute=True):
        payment = payments.trigger_auto_recharge(team=team)
    assert payment.status == Payment.Status.FAILED
    assert "authenticate" in payment.failure_message
    assert services.get_account(team).auto_recharge_failures == 1
    assert len(mail.outbox) == 1


def test_it_turns_auto_recharge_off_when_its_card_is_removed(stripe_emulator, team, alice):
    card = saved_card(stripe_emulator, team, alice)
    enable_auto_recharge(team, alice, card)
    payments.remove_card(card=card, actor=alice)
    account = services.get_account(team)
    assert not account.auto_recharge_enabled
    assert account.auto_recharge_card is None


def test_it_shows_a_failed_3d_secure_on_the_payment_page(stripe_emulator, team, alice):
    setup = payments.start_card_setup(team=team, actor=alice)
    confirm_3ds_card(stripe_emulator, setup)
    started = payments.start_top_up(
        team=team, actor=alice, amount=Decimal("25"), setup_intent_id=setup.id
    )
    assert browser_authenticates(stripe_emulator["base"], started.client_secret, False).ok
    page = login(alice).get(reverse("billing_payment", args=[team.slug, started.payment.public_id]))
    started.payment.refresh_from_db()
    assert started.payment.status == Payment.Status.FAILED
    assert "The provided PaymentMethod has failed authentication." in page.content.decode()
    assert balance(team) == 0


def test_the_emulator_listens_on_the_loopback_only(localstripe):
    """Pods' outbound traffic leaves through the host's stack: a service on every interface
    would be theirs to call (localstripe's own start() binds "::")."""
    listening = [
        conn.laddr
        for conn in psutil.Process(localstripe["pid"]).net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    ]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening
