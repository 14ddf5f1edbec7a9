"""The only module that talks to Stripe. Every call goes through the official `stripe` library
with an idempotency key; callers get small plain results, never Stripe objects.

Configuration (settings): STRIPE_SECRET_KEY, STRIPE_PUBLISHABLE_KEY, STRIPE_WEBHOOK_SECRET and
STRIPE_API_BASE. When STRIPE_API_BASE is set the library and Stripe.js point at that emulator
(localstripe, see `manage.py stripe_emulator`) and unset keys fall back to test keys. The webhook
secret is never a constant: with real keys it must be set (STRIPE_WEBHOOK_SECRET); with the
emulator it is generated once per installation into DATA_DIR/stripe-webhook-secret.
"""

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import stripe
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from billing.money import to_cents

EMULATOR_SECRET_KEY = "sk_test_localstripe"
EMULATOR_PUBLISHABLE_KEY = "pk_test_localstripe"
WEBHOOK_SECRET_FILE = "stripe-webhook-secret"
WEBHOOK_TOLERANCE_SECONDS = 300
CURRENCY = "usd"
MISSING_WEBHOOK_SECRET = (
    "STRIPE_WEBHOOK_SECRET is required when STRIPE_SECRET_KEY is set: copy the signing secret "
    "of the webhook endpoint /billing/stripe/webhook/ from the Stripe dashboard."
)


class GatewayError(Exception):
    """Stripe could not be reached or refused the request for a reason that is not the card's."""


class NotFound(GatewayError):
    """Stripe has no such object (a made-up or foreign id)."""


class InvalidWebhook(Exception):
    """Unsigned, wrongly signed, stale or malformed webhook."""


@dataclass(frozen=True)
class StripeConfig:
    secret_key: str
    publishable_key: str
    webhook_secret: str
    api_base: str

    @property
    def configured(self) -> bool:
        return bool(self.secret_key and self.publishable_key)

    @property
    def uses_emulator(self) -> bool:
        return bool(self.api_base)

    @property
    def test_mode(self) -> bool:
        return self.uses_emulator or self.secret_key.startswith(("sk_test_", "rk_test_"))

    @property
    def js_url(self) -> str:
        if self.uses_emulator:
            return f"{self.api_base}/js.stripe.com/v3/"
        return "https://js.stripe.com/v3/"


def config() -> StripeConfig:
    base = settings.STRIPE_API_BASE
    return StripeConfig(
        secret_key=settings.STRIPE_SECRET_KEY or (EMULATOR_SECRET_KEY if base else ""),
        publishable_key=settings.STRIPE_PUBLISHABLE_KEY
        or (EMULATOR_PUBLISHABLE_KEY if base else ""),
        webhook_secret=webhook_secret(),
        api_base=base,
    )


def webhook_secret() -> str:
    """The secret our webhook endpoint verifies with ("" when card payments are off).
    Real keys need STRIPE_WEBHOOK_SECRET; the emulator gets this installation's own secret."""
    if settings.STRIPE_WEBHOOK_SECRET:
        return settings.STRIPE_WEBHOOK_SECRET
    if settings.STRIPE_SECRET_KEY:
        raise ImproperlyConfigured(MISSING_WEBHOOK_SECRET)
    if settings.STRIPE_API_BASE:
        return installation_webhook_secret(Path(settings.DATA_DIR))
    return ""


def installation_webhook_secret(data_dir: Path) -> str:
    """Read, or create once, the emulator's webhook secret in `data_dir` (mode 0600). Written
    to a private temporary file and hard-linked into place, so two processes starting at once
    agree on one secret and nobody ever reads a half-written file."""
    path = data_dir / WEBHOOK_SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        temporary = data_dir / f".{WEBHOOK_SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write("whsec_" + secrets.token_urlsafe(32))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process won; use its secret
        finally:
            temporary.unlink()
    secret = path.read_text().strip()
    if not secret:
        raise ImproperlyConfigured(f"{path} is empty: delete it to generate a new secret.")
    return secret


def _client() -> stripe.StripeClient:
    cfg = config()
    if not cfg.configured:
        raise GatewayError("Card payments are not configured (STRIPE_SECRET_KEY).")
    kwargs: dict = {"max_network_retries": 2}
    if cfg.api_base:
        kwargs["base_addresses"] = {"api": cfg.api_base}
    return stripe.StripeClient(cfg.secret_key, **kwargs)


def _options(idempotency_key: str | None) -> dict:
    return {"idempotency_key": idempotency_key} if idempotency_key else {}


@dataclass(frozen=True)
class Card:
    id: str
    customer: str | None
    brand: str
    last4: str
    exp_month: int | None
    exp_year: int | None


@dataclass(frozen=True)
class SetupIntentResult:
    id: str
    client_secret: str
    status: str
    payment_method: str | None
    customer: str | None


@dataclass(frozen=True)
class PaymentIntentResult:
    """The outcome of creating (and confirming) a PaymentIntent, or Stripe's current record of
    one. status is Stripe's, or "failed" when the card was refused; error is the reason to
    show; amounts are in cents as Stripe keeps them."""

    id: str | None
    status: str
    client_secret: str = ""
    error: str = ""
    metadata: dict = field(default_factory=dict)
    amount_cents: int | None = None
    amount_received_cents: int | None = None
    currency: str = ""
    customer: str | None = None

    @property
    def failed(self) -> bool:
        return self.status in {"failed", "requires_payment_method", "canceled"}


def _call(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except stripe.CardError:
        raise
    except stripe.StripeError as error:
        raise GatewayError(error.user_message or str(error)) from error


def create_customer(*, email: str, name: str, team_slug: str, idempotency_key: str) -> str:
    customer = _call(
        _client().v1.customers.create,
        params={"email": email, "name": name, "metadata": {"team": team_slug}},
        options=_options(idempotency_key),
    )
    return customer.id


def create_setup_intent(*, customer_id: str, team_slug: str, idempotency_key: str):
    intent = _call(
        _client().v1.setup_intents.create,
        params={"customer": customer_id, "usage": "off_session", "metadata": {"team": team_slug}},
        options=_options(idempotency_key),
    )
    return _setup_result(intent)


def retrieve_setup_intent(setup_intent_id: str) -> SetupIntentResult:
    return _setup_result(_call(_client().v1.setup_intents.retrieve, setup_intent_id))


def _setup_result(intent) -> SetupIntentResult:
    data = intent.to_dict()
    return SetupIntentResult(
        id=data["id"],
        client_secret=data.get("client_secret") or "",
        status=data["status"],
        payment_method=data.get("payment_method"),
        customer=data.get("customer"),
    )


def retrieve_card(payment_method_id: str) -> Card:
    method = _call(_client().v1.payment_methods.retrieve, payment_method_id).to_dict()
    card = method.get("card") or {}
    return Card(
        id=method["id"],
        customer=method.get("customer"),
        brand=card.get("brand", ""),
        last4=card.get("last4", ""),
        exp_month=card.get("exp_month"),
        exp_year=card.get("exp_year"),
    )


def attach_card(*, payment_method_id: str, customer_id: str, idempotency_key: str) -> Card:
    """Make sure the card belongs to the customer (a confirmed SetupIntent usually did it)."""
    card = retrieve_card(payment_method_id)
    if card.customer == customer_id:
        return card
    if card.customer:
        raise GatewayError("This card belongs to another customer.")
    try:
        _client().v1.payment_methods.attach(
            payment_method_id,
            params={"customer": customer_id},
            options=_options(idempotency_key),
        )
    except stripe.CardError as error:
        raise GatewayError(error.user_message or "Your card was declined.") from error
    except stripe.StripeError as error:
        raise GatewayError(error.user_message or str(error)) from error
    return retrieve_card(payment_method_id)


def detach_card(*, payment_method_id: str, idempotency_key: str) -> None:
    _call(
        _client().v1.payment_methods.detach,
        payment_method_id,
        options=_options(idempotency_key),
    )


def create_payment_intent(
    *,
    amount: Decimal,
    customer_id: str,
    payment_method_id: str,
    off_session: bool,
    metadata: dict,
    idempotency_key: str,
) -> PaymentIntentResult:
    """Create and confirm a card PaymentIntent. A declined card is a result, not an exception."""
    params: dict = {
        "amount": to_cents(amount),
        "currency": CURRENCY,
        "customer": customer_id,
        "payment_method": payment_method_id,
        "confirm": True,
        "metadata": metadata,
    }
    if off_session:
        params["off_session"] = True
    try:
        intent = _client().v1.payment_intents.create(
            params=params, options=_options(idempotency_key)
        )
    except stripe.CardError as error:
        return _declined(error)
    except stripe.StripeError as error:
        raise GatewayError(error.user_message or str(error)) from error
    data = intent.to_dict()
    return PaymentIntentResult(
        id=data["id"],
        status=data["status"],
        client_secret=data.get("client_secret") or "",
        error=_last_error(data),
        metadata=data.get("metadata") or {},
    )


def retrieve_payment_intent(payment_intent_id: str) -> PaymentIntentResult:
    """Stripe's own record of a PaymentIntent (what a webhook's copy is checked against).
    Raises NotFound for an id Stripe does not know in our account."""
    try:
        data = _client().v1.payment_intents.retrieve(payment_intent_id).to_dict()
    except stripe.InvalidRequestError as error:
        if error.http_status == 404 or error.code == "resource_missing":
            raise NotFound(f"no PaymentIntent {payment_intent_id}") from error
        raise GatewayError(error.user_message or str(error)) from error
    except stripe.StripeError as error:
        raise GatewayError(error.user_message or str(error)) from error
    return PaymentIntentResult(
        id=data["id"],
        status=data["status"],
        error=_last_error(data),
        metadata=data.get("metadata") or {},
        amount_cents=_cents(data.get("amount")),
        amount_received_cents=_cents(data.get("amount_received")),
        currency=data.get("currency") or "",
        customer=data.get("customer"),
    )


def _cents(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _declined(error: stripe.CardError) -> PaymentIntentResult:
    body = (error.json_body or {}).get("error", {})
    intent = body.get("payment_intent") or {}
    message = error.user_message or body.get("message") or "Your card was declined."
    return PaymentIntentResult(id=intent.get("id"), status="failed", error=message)


def _last_error(intent: dict) -> str:
    error = intent.get("last_payment_error") or {}
    return error.get("message", "") if isinstance(error, dict) else ""


def cancel_payment_intent(*, payment_intent_id: str, idempotency_key: str) -> None:
    _call(
        _client().v1.payment_intents.cancel,
        payment_intent_id,
        options=_options(idempotency_key),
    )


def verify_webhook(payload: bytes, signature: str) -> dict:
    """The event as a plain dict, if Stripe signed it with our secret in the last 5 minutes."""
    secret = config().webhook_secret
    if not secret or not signature:
        raise InvalidWebhook("missing signature or secret")
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(
            text, signature, secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
        )
        event = json.loads(text)
    except (UnicodeDecodeError, ValueError, stripe.SignatureVerificationError) as error:
        raise InvalidWebhook(str(error)) from error
    if _signed_at(signature) > time.time() + WEBHOOK_TOLERANCE_SECONDS:
        # Stripe's check only bounds the past; a future-dated signature would replay for longer.
        raise InvalidWebhook("signature timestamp is in the future")
    if not _well_formed(event):
        raise InvalidWebhook("not a Stripe event")
    return event


def _signed_at(signature: str) -> int:
    for item in signature.split(","):
        key, _, value = item.partition("=")
        if key.strip() == "t" and value.strip().isdigit():
            return int(value)
    raise InvalidWebhook("no timestamp in the signature")


def _well_formed(event) -> bool:
    if not isinstance(event, dict):
        return False
    obj = (event.get("data") or {}).get("object") if isinstance(event.get("data"), dict) else None
    return (
        isinstance(event.get("id"), str)
        and isinstance(event.get("type"), str)
        and isinstance(obj, dict)
        and isinstance(obj.get("id"), str)
    )


def sign_payload(payload: str, *, secret: str, timestamp: int) -> str:
    """A Stripe-Signature header for `payload` (tests and the emulator tooling)."""
    return stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp)
