"""An attacker who can POST to /billing/stripe/webhook/ tries to be credited money nobody paid.

The console runs against the emulator (localstripe) with this installation's own webhook
secret (DATA_DIR/stripe-webhook-secret, no STRIPE_WEBHOOK_SECRET), exactly like `make run`.
Intents are real ones at the emulator, made through the real `stripe` library; events are
signed here. The forged events are signed with the right secret on purpose: even a leaked
secret must not credit a payment Stripe did not collect."""

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings as django_settings
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured

from billing import services
from billing import stripe_gateway as gateway
from billing.models import BillingAccount, LedgerEntry, Payment
from tests.billing.conftest import free_port, localstripe  # noqa: F401 (shared fixture)
from tests.billing.stripe_events import (
    DECLINED_ON_CHARGE,
    deliver,
    event,
    intent,
    recorded_payment,
    top_up,
)
from tests.conftest import make_user

ONE_MILLION_CENTS = 100_000_000


@pytest.fixture
def emulator_installation(localstripe, settings, tmp_path):  # noqa: F811
    """The console as `make run` configures it: the emulator, no webhook secret set."""
    settings.DATA_DIR = tmp_path
    settings.STRIPE_API_BASE = localstripe["base"]
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_PUBLISHABLE_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = ""
    return tmp_path


pytestmark = pytest.mark.usefixtures("emulator_installation")


def balance(team) -> Decimal:
    return services.get_account(team).balance


def succeeded(obj: dict) -> dict:
    return event("payment_intent.succeeded", obj)


# The secret ---------------------------------------------------------------------------------


def test_it_refuses_events_signed_with_the_old_constant_secret(team, alice):
    payment = top_up(team, alice, "25")
    assert gateway.webhook_secret() != "whsec_localstripe"
    forged = deliver(succeeded(intent(payment)), secret="whsec_localstripe")
    assert forged.status_code == 400
    assert balance(team) == 0
    assert deliver(succeeded(intent(payment))).status_code == 200
    assert balance(team) == Decimal("25")


def test_it_generates_one_private_secret_per_installation(emulator_installation, tmp_path):
    secret = gateway.webhook_secret()
    path = emulator_installation / "stripe-webhook-secret"
    assert path.read_text() == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secret.startswith("whsec_") and len(secret) >= 40
    assert gateway.webhook_secret() == secret  # kept, not regenerated
    other = gateway.installation_webhook_secret(tmp_path / "other-installation")
    assert other != secret


def test_it_agrees_on_one_secret_when_processes_race_to_create_it(tmp_path):
    code = "from pathlib import Path; import sys; from billing.stripe_gateway import "
    code += "installation_webhook_secret as s; print(s(Path(sys.argv[1])))"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "console.settings"}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, env=env
        )
        for _ in range(4)
    ]
    secrets = {racer.communicate(timeout=30)[0].strip() for racer in racers}
    assert len(secrets) == 1 and secrets != {b""}
    assert [p.name for p in tmp_path.iterdir()] == ["stripe-webhook-secret"]


def test_it_refuses_to_start_with_real_keys_and_no_webhook_secret(settings):
    settings.STRIPE_SECRET_KEY = "sk_live_example"
    errors = [message.id for message in run_checks()]
    assert "billing.E001" in errors
    with pytest.raises(ImproperlyConfigured, match="STRIPE_WEBHOOK_SECRET is required"):
        gateway.webhook_secret()
    settings.STRIPE_WEBHOOK_SECRET = "whsec_from_the_dashboard"
    assert "billing.E001" not in [message.id for message in run_checks()]


class Receiver:
    """A webhook receiver on loopback that keeps what the emulator posts."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((body, self.headers.get("Stripe-Signature", "")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/"


def wait_until(check, process, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert process.poll() is None, "the emulator command exited"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_the_emulator_command_signs_with_the_secret_the_console_verifies_with(settings, tmp_path):
    """`manage.py stripe_emulator` (what `make run` starts) registers the installation's
    secret: its deliveries verify in the console, and nothing else would."""
    receiver = Receiver()
    port = free_port()
    env = {**os.environ, "DATA_DIR": str(tmp_path), "STRIPE_WEBHOOK_SECRET": ""}
    env.update(PYTHONUNBUFFERED="1")
    env.pop("STRIPE_SECRET_KEY", None)
    command = [sys.executable, "manage.py", "stripe_emulator", "--port", str(port)]
    command += ["--webhook-url", receiver.url, "--fresh"]
    log = tmp_path / "emulator.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            command, cwd=django_settings.BASE_DIR, env=env, stdout=output, stderr=output
        )
    try:
        wait_until(lambda: "Stripe emulator on" in log.read_text(), process)
        settings.STRIPE_API_BASE = f"http://127.0.0.1:{port}"
        gateway.create_customer(email="a@example.com", name="A", team_slug="a", idempotency_key="c")
        wait_until(lambda: receiver.received, process)
        body, signature = receiver.received[0]
        assert json.loads(body)["type"] == "customer.created"
        assert gateway.verify_webhook(body, signature)["type"] == "customer.created"
        assert (tmp_path / "stripe-webhook-secret").read_text() == gateway.webhook_secret()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        receiver.server.shutdown()


# Events that name the wrong intent, or lie about it ------------------------------------------


def test_a_signed_success_naming_a_failed_payment_credits_nothing(team, alice, caplog):
    failed = recorded_payment(team, "25", DECLINED_ON_CHARGE)
    Payment.objects.filter(pk=failed.pk).update(status=Payment.Status.FAILED)
    lie = intent(failed, amount_cents=ONE_MILLION_CENTS)
    assert deliver(succeeded(lie)).status_code == 200
    failed.refresh_from_db()
    assert failed.status == Payment.Status.FAILED
    assert balance(team) == 0
    assert not LedgerEntry.objects.exists()


def test_a_signed_success_with_a_made_up_intent_id_credits_nothing(team, alice, caplog):
    failed = top_up(team, alice, "25", DECLINED_ON_CHARGE)
    lie = intent(failed, intent_id="pi_madeup0000000000", amount_cents=ONE_MILLION_CENTS)
    assert deliver(succeeded(lie)).status_code == 200
    assert balance(team) == 0
    assert "Stripe does not know: pi_madeup0000000000" in caplog.text


def test_a_foreign_intent_credits_only_its_own_payment_with_its_own_amount(team, alice):
    """The event names another team's real, succeeded intent but the victim's payment in its
    metadata: Stripe's record decides whose it is (the other team's, for $10)."""
    victim = Payment.objects.create(team=team, amount=Decimal("25"))  # still being created
    other_user = make_user("mallory@example.com")
    other_team = other_user.memberships.get().team
    theirs = top_up(other_team, other_user, "10")
    lie = intent(
        intent_id=theirs.stripe_payment_intent_id,
        amount_cents=ONE_MILLION_CENTS,
        metadata={"payment": victim.public_id, "team": team.slug},
    )
    assert deliver(succeeded(lie)).status_code == 200
    assert balance(team) == 0
    victim.refresh_from_db()
    assert victim.status == Payment.Status.CREATED and victim.stripe_payment_intent_id is None
    assert balance(other_team) == Decimal("10")


def test_an_inflated_amount_in_the_event_credits_only_what_we_recorded(team, alice):
    payment = top_up(team, alice, "25")
    assert deliver(succeeded(intent(payment, amount_cents=ONE_MILLION_CENTS))).status_code == 200
    assert balance(team) == Decimal("25")
    payment.refresh_from_db()
    assert payment.ledger_entry.amount == Decimal("25")


@pytest.mark.parametrize(
    "at_stripe",
    [
        {"amount_cents": ONE_MILLION_CENTS},  # Stripe charged more than our payment says
        {"amount_cents": 100},  # or less
        {"currency": "eur"},
        {"metadata": {"payment": "someoneelse123"}},
        {"metadata": {"payment": None}},
        {"metadata": {"team": "another-team"}},
        {"customer": None},  # a stranger's customer
    ],
    ids=["more", "less", "currency", "payment", "no-payment", "team", "customer"],
)
def test_an_intent_that_disagrees_with_our_payment_credits_nothing(team, at_stripe, caplog):
    payment = recorded_payment(team, "25", **at_stripe)
    assert deliver(succeeded(intent(payment))).status_code == 200
    assert balance(team) == 0
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PROCESSING
    assert "disagrees with payment" in caplog.text


# Other event types ---------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", ["payment_intent.payment_failed", "payment_intent.canceled"])
def test_a_forged_failure_or_cancel_cannot_undo_a_payment_stripe_collected(team, alice, event_type):
    payment = top_up(team, alice, "25")
    lie = intent(payment, status="canceled", error="forged")
    assert deliver(event(event_type, lie)).status_code == 200
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED  # what Stripe says, credited once
    assert balance(team) == Decimal("25")


def test_a_failed_payment_is_credited_only_when_its_own_intent_succeeded(team, alice):
    """A payment marked failed here whose own intent did succeed at Stripe (e.g. the decline
    we saw was wrong) is credited, with our amount, by the event for that intent."""
    payment = recorded_payment(team, "25")
    Payment.objects.filter(pk=payment.pk).update(status=Payment.Status.FAILED)
    assert deliver(succeeded(intent(payment, amount_cents=ONE_MILLION_CENTS))).status_code == 200
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert balance(team) == Decimal("25")


def test_a_webhook_that_beats_the_recorded_intent_id_still_credits_once(team, alice):
    """Stripe's event can arrive before we stored the intent id: the payment still being
    created, named by Stripe's own metadata, is matched and credited once."""
    payment = recorded_payment(team, "25")
    intent_id = payment.stripe_payment_intent_id
    Payment.objects.filter(pk=payment.pk).update(
        stripe_payment_intent_id=None, status=Payment.Status.CREATED
    )
    for _ in range(3):
        assert deliver(succeeded(intent(payment, intent_id=intent_id))).status_code == 200
    payment.refresh_from_db()
    assert payment.stripe_payment_intent_id == intent_id
    assert payment.status == Payment.Status.SUCCEEDED
    assert LedgerEntry.objects.filter(team=team).count() == 1


def test_a_payment_whose_charge_call_failed_here_is_credited_if_stripe_collected(team):
    """Our create call failed (timeout) after Stripe made the intent: the payment is failed
    here with no intent id. Stripe's record of its own intent settles it, once."""
    payment = recorded_payment(team, "25")
    intent_id = payment.stripe_payment_intent_id
    Payment.objects.filter(pk=payment.pk).update(
        stripe_payment_intent_id=None, status=Payment.Status.FAILED
    )
    for _ in range(2):
        deliver(succeeded(intent(payment, intent_id=intent_id)))
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.stripe_payment_intent_id == intent_id
    assert balance(team) == Decimal("25")


def test_a_payment_of_a_team_without_a_stripe_customer_is_never_credited(team):
    payment = recorded_payment(team, "25")
    BillingAccount.objects.filter(team=team).update(stripe_customer_id="")
    assert deliver(succeeded(intent(payment))).status_code == 200
    assert balance(team) == 0


def test_the_real_flow_credits_once(localstripe, team, alice, settings):  # noqa: F811
    """The emulator's own signed deliveries, byte for byte, twice: one credit."""
    from tests.billing.conftest import WEBHOOK_SECRET

    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET  # what the session's emulator signs with
    payment = top_up(team, alice, "25")
    body, signature = localstripe["inbox"].wait_for(
        "payment_intent.succeeded", payment.stripe_payment_intent_id
    )
    for _ in range(2):
        assert deliver(body, signature=signature).status_code == 200
    assert balance(team) == Decimal("25")
    assert LedgerEntry.objects.filter(team=team).count() == 1


@pytest.mark.parametrize(
    "event_type, obj",
    [
        ("charge.succeeded", {"id": "ch_forged", "object": "charge", "amount": 100_000_000}),
        ("charge.refunded", {"id": "ch_forged", "object": "charge", "amount_refunded": 2500}),
        ("invoice.paid", {"id": "in_forged", "object": "invoice", "amount_paid": 100_000_000}),
        ("setup_intent.succeeded", {"id": "seti_forged", "object": "setup_intent"}),
        ("customer.created", {"id": "cus_forged", "object": "customer"}),
    ],
)
def test_events_of_other_types_move_no_money(team, alice, event_type, obj):
    """Only payment_intent events settle payments; business invoices are marked paid by
    staff, there are no card refunds, and cards are saved from a SetupIntent read back from
    Stripe's API when the user submits the form, never from a webhook."""
    payment = top_up(team, alice, "25")
    obj = {**obj, "metadata": {"payment": payment.public_id, "team": team.slug}}
    assert deliver(event(event_type, obj)).status_code == 200
    assert not LedgerEntry.objects.exists()
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PROCESSING
