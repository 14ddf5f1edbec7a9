import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from billing import burn, emulator

WEBHOOK_SECRET = "whsec_emulator_tests"


@pytest.fixture
def burn_rates():
    """Set a team's burn rate for a test: burn_rates[team.pk] = Decimal("2.50")."""
    rates: dict = {}

    def provider(team):
        return rates.get(team.pk, 0)

    burn.register_burn_rate_provider(provider)
    yield rates
    burn.BURN_RATE_PROVIDERS.remove(provider)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebhookInbox:
    """What the emulator posted to its webhook, exactly as signed, to hand to our view."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[bytes, str]] = []
        self.changed = threading.Condition()

    def add(self, body: bytes, signature: str) -> None:
        with self.changed:
            self.deliveries.append((body, signature))
            self.changed.notify_all()

    def wait_for(self, event_type: str, intent_id: str, timeout: float = 15) -> tuple[bytes, str]:
        marker_type = f'"type": "{event_type}"'.encode()
        marker_id = f'"id": "{intent_id}"'.encode()
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for body, signature in self.deliveries:
                    if marker_type in body and marker_id in body:
                        return body, signature
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {event_type} for {intent_id} from the emulator")
                self.changed.wait(left)


@pytest.fixture(scope="session")
def localstripe():
    """localstripe on a free port for the whole session, its webhooks caught by an inbox."""
    inbox = WebhookInbox()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            inbox.add(body, self.headers.get("Stripe-Signature", ""))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = emulator.start(port)
    try:
        emulator.wait_until_up(base, process=process)
        emulator.register_webhook(
            base, url=f"http://127.0.0.1:{receiver.server_port}/", secret=WEBHOOK_SECRET
        )
        yield {"base": base, "inbox": inbox, "pid": process.pid}
    finally:
        process.terminate()
        process.wait(timeout=10)
        receiver.shutdown()


@pytest.fixture
def stripe_emulator(localstripe, settings):
    """Point the console at the session's emulator."""
    settings.STRIPE_API_BASE = localstripe["base"]
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_PUBLISHABLE_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    return localstripe


def browser_confirms_card(base: str, client_secret: str, number: str) -> requests.Response:
    """What Stripe.js (localstripe's stand-in) does when the user submits the card form."""
    setup_intent = client_secret.split("_secret_")[0]
    return requests.post(
        f"{base}/v1/setup_intents/{setup_intent}/confirm",
        json={
            "key": "pk_test_localstripe",
            "client_secret": client_secret,
            "payment_method_data": {
                "type": "card",
                "card": {"number": number, "exp_month": "12", "exp_year": "2030", "cvc": "123"},
            },
        },
        timeout=10,
    )


def browser_authenticates(base: str, client_secret: str, success: bool) -> requests.Response:
    """The 3-D Secure step of stripe.confirmCardPayment in localstripe's Stripe.js."""
    intent = client_secret.split("_secret_")[0]
    return requests.post(
        f"{base}/v1/payment_intents/{intent}/_authenticate?success={str(success).lower()}",
        json={"key": "pk_test_localstripe", "client_secret": client_secret},
        timeout=10,
    )
