"""Card money in: saved cards, top-ups, auto-recharge and the Stripe webhook events that
settle them. Credit is added only by `settle_payment_intent` (from a signed payment_intent
event, checked against Stripe's own record of the intent), once per PaymentIntent, through
services.post_entry."""

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from billing import emails
from billing import stripe_gateway as gateway
from billing.models import BillingAccount, LedgerEntry, Payment, PaymentMethod, WebhookEvent
from billing.money import CENT, format_usd, to_cents, to_money
from billing.services import get_account, post_entry
from teams import audit
from teams.models import Team

log = logging.getLogger(__name__)

AUTO_RECHARGE_INTERVAL = timedelta(hours=1)
MAX_CARD_TOP_UP = Decimal("10000")


class PaymentError(Exception):
    """A top-up or card request that cannot go ahead; the message is for the user."""


# --- customers and cards -------------------------------------------------------------------


def ensure_customer(*, team: Team, actor) -> str:
    """The team's Stripe customer id, created once (the idempotency key makes a retry safe)."""
    account = get_account(team)
    if account.stripe_customer_id:
        return account.stripe_customer_id
    customer_id = gateway.create_customer(
        email=getattr(actor, "email", "") or "",
        name=team.name,
        team_slug=team.slug,
        idempotency_key=f"customer:{team.pk}:{account.pk}",
    )
    BillingAccount.objects.filter(pk=account.pk, stripe_customer_id="").update(
        stripe_customer_id=customer_id
    )
    return BillingAccount.objects.get(pk=account.pk).stripe_customer_id


def start_card_setup(*, team: Team, actor) -> gateway.SetupIntentResult:
    """A SetupIntent for Stripe.js to collect a card on (top-up with a new card, or add one)."""
    customer_id = ensure_customer(team=team, actor=actor)
    return gateway.create_setup_intent(
        customer_id=customer_id,
        team_slug=team.slug,
        idempotency_key=f"setup:{team.pk}:{timezone.now().timestamp()}",
    )


def _confirmed_card(*, team: Team, actor, setup_intent_id: str) -> gateway.Card:
    """The card behind a SetupIntent the browser confirmed for this team's customer."""
    customer_id = ensure_customer(team=team, actor=actor)
    intent = gateway.retrieve_setup_intent(setup_intent_id)
    if intent.customer and intent.customer != customer_id:
        raise PaymentError("That card setup belongs to another account.")
    if intent.status != "succeeded" or not intent.payment_method:
        raise PaymentError("The card was not confirmed. Please enter it again.")
    return gateway.attach_card(
        payment_method_id=intent.payment_method,
        customer_id=customer_id,
        idempotency_key=f"attach:{intent.payment_method}",
    )


def save_card(*, team: Team, actor, setup_intent_id: str) -> PaymentMethod:
    """Keep a confirmed card for later top-ups and auto-recharge; the first becomes default."""
    card = _confirmed_card(team=team, actor=actor, setup_intent_id=setup_intent_id)
    with transaction.atomic():
        get_account(team, lock=True)
        method, created = PaymentMethod.objects.get_or_create(
            stripe_id=card.id,
            defaults={
                "team": team,
                "brand": card.brand,
                "last4": card.last4,
                "exp_month": card.exp_month,
                "exp_year": card.exp_year,
            },
        )
        if method.team_id != team.pk:
            raise PaymentError("That card belongs to another account.")
        if method.removed_at:
            method.removed_at = None
            method.save(update_fields=["removed_at"])
        if not _active_cards(team).filter(is_default=True).exists():
            method.is_default = True
            method.save(update_fields=["is_default"])
        if created:
            audit.record(
                actor=actor,
                team=team,
                action="billing.card.added",
                resource_type="payment_method",
                resource_id=method.public_id,
                details={"card": str(method), "expiry": method.expiry},
            )
    return method


def _active_cards(team: Team):
    return PaymentMethod.objects.filter(team=team, removed_at=None)


@transaction.atomic
def set_default_card(*, card: PaymentMethod, actor) -> None:
    get_account(card.team, lock=True)
    _active_cards(card.team).filter(is_default=True).update(is_default=False)
    PaymentMethod.objects.filter(pk=card.pk).update(is_default=True)
    audit.record(
        actor=actor,
        team=card.team,
        action="billing.card.default",
        resource_type="payment_method",
        resource_id=card.public_id,
        details={"card": str(card)},
    )


def remove_card(*, card: PaymentMethod, actor) -> None:
    """Forget a card here and at Stripe; auto-recharge that used it turns off."""
    with transaction.atomic():
        account = get_account(card.team, lock=True)
        PaymentMethod.objects.filter(pk=card.pk).update(removed_at=timezone.now(), is_default=False)
        if account.auto_recharge_card_id == card.pk:
            account.auto_recharge_card = None
            if account.auto_recharge_enabled:
                account.auto_recharge_enabled = False
                account.auto_recharge_disabled_reason = f"{card} was removed."
            account.save()
        audit.record(
            actor=actor,
            team=card.team,
            action="billing.card.removed",
            resource_type="payment_method",
            resource_id=card.public_id,
            details={"card": str(card)},
        )
        transaction.on_commit(lambda: _detach_quietly(card.stripe_id))


def _detach_quietly(payment_method_id: str) -> None:
    try:
        gateway.detach_card(
            payment_method_id=payment_method_id, idempotency_key=f"detach:{payment_method_id}"
        )
    except gateway.GatewayError:
        log.warning("could not detach %s at Stripe", payment_method_id, exc_info=True)


# --- top-ups -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopUpStarted:
    payment: Payment
    client_secret: str = ""

    @property
    def needs_authentication(self) -> bool:
        return self.payment.status == Payment.Status.REQUIRES_ACTION


def validate_top_up_amount(amount: Decimal) -> Decimal:
    amount = to_money(amount)
    if amount < settings.MIN_TOP_UP:
        raise PaymentError(f"The minimum top-up is {format_usd(settings.MIN_TOP_UP)}.")
    if amount > MAX_CARD_TOP_UP:
        raise PaymentError(
            f"Card top-ups go up to {format_usd(MAX_CARD_TOP_UP)}; "
            "request a business invoice for more."
        )
    if amount != amount.quantize(CENT):
        raise PaymentError("Enter an amount in whole cents.")
    return amount


def start_top_up(
    *,
    team: Team,
    actor,
    amount: Decimal,
    card: PaymentMethod | None = None,
    setup_intent_id: str = "",
    save: bool = False,
) -> TopUpStarted:
    """Charge a saved card, or a card just confirmed in the browser (optionally saving it).
    The balance moves later, when Stripe's signed payment_intent.succeeded arrives."""
    amount = validate_top_up_amount(amount)
    if card is None:
        if not setup_intent_id:
            raise PaymentError("Choose a saved card or enter a new one.")
        if save:
            card = save_card(team=team, actor=actor, setup_intent_id=setup_intent_id)
            stripe_card = gateway.retrieve_card(card.stripe_id)
        else:
            stripe_card = _confirmed_card(team=team, actor=actor, setup_intent_id=setup_intent_id)
    else:
        if card.team_id != team.pk or card.removed_at:
            raise PaymentError("That card is not available.")
        stripe_card = gateway.retrieve_card(card.stripe_id)
    payment = _create_payment(
        team=team,
        actor=actor,
        amount=amount,
        kind=Payment.Kind.TOP_UP,
        card=card,
        stripe_card=stripe_card,
    )
    result = _charge(payment, off_session=False)
    payment.refresh_from_db()
    return TopUpStarted(payment=payment, client_secret=result.client_secret if result else "")


def _create_payment(*, team, actor, amount, kind, card, stripe_card, trigger_key=None) -> Payment:
    payment = Payment.objects.create(
        team=team,
        kind=kind,
        amount=amount,
        save_card=card is not None,
        payment_method=card,
        stripe_payment_method_id=stripe_card.id,
        card_label=f"{(stripe_card.brand or 'card').title()} •••• {stripe_card.last4}",
        trigger_key=trigger_key,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    audit.record(
        actor=actor,
        team=team,
        action=f"billing.{kind}.started",
        resource_type="payment",
        resource_id=payment.public_id,
        details={"amount": str(amount), "card": payment.card_label},
    )
    return payment


def _charge(payment: Payment, *, off_session: bool) -> gateway.PaymentIntentResult | None:
    """Create the PaymentIntent and record what Stripe said right away (never the credit)."""
    try:
        result = gateway.create_payment_intent(
            amount=payment.amount,
            customer_id=get_account(payment.team).stripe_customer_id,
            payment_method_id=payment.stripe_payment_method_id,
            off_session=off_session,
            metadata={
                "payment": payment.public_id,
                "team": payment.team.slug,
                "kind": payment.kind,
            },
            idempotency_key=f"payment:{payment.public_id}",
        )
    except gateway.GatewayError as error:
        record_payment_failed(
            payment_id=payment.pk, message=f"The payment service failed: {error}", card_fault=False
        )
        return None
    _remember_intent(payment, result.id)
    if result.failed:
        record_payment_failed(
            payment_id=payment.pk, message=result.error or "The card was declined."
        )
    elif result.status == "requires_action" and off_session:
        _cancel_quietly(result.id)
        record_payment_failed(
            payment_id=payment.pk,
            message="Your bank asked to authenticate this charge, which needs you present.",
        )
    elif result.status == "requires_action":
        _advance(payment, Payment.Status.REQUIRES_ACTION, {Payment.Status.CREATED})
    else:
        _advance(payment, Payment.Status.PROCESSING, {Payment.Status.CREATED})
    return result


def _remember_intent(payment: Payment, intent_id: str | None) -> None:
    if intent_id:
        Payment.objects.filter(pk=payment.pk, stripe_payment_intent_id=None).update(
            stripe_payment_intent_id=intent_id
        )


def _advance(payment: Payment, status: str, from_statuses: set) -> bool:
    """Move a payment forward only from the given states: late or replayed events never
    move it back (a 'processing' after 'succeeded' changes nothing)."""
    changed = Payment.objects.filter(pk=payment.pk, status__in=from_statuses).update(
        status=status, updated_at=timezone.now()
    )
    return changed == 1


def _cancel_quietly(intent_id: str | None) -> None:
    if not intent_id:
        return
    try:
        gateway.cancel_payment_intent(
            payment_intent_id=intent_id, idempotency_key=f"cancel:{intent_id}"
        )
    except gateway.GatewayError:
        log.warning("could not cancel %s", intent_id, exc_info=True)


# --- settlement (webhook events) -----------------------------------------------------------
# A webhook only says "look at PaymentIntent pi_…". What happened is read back from Stripe's
# API with our secret key, and a payment moves only when Stripe's record of that intent agrees
# with ours: the intent id we recorded, our amount and currency, our payment and team in its
# metadata, our customer. The event's own amount, status and metadata are never used.

PAYMENT_INTENT_EVENTS = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.processing",
        "payment_intent.requires_action",
        "payment_intent.canceled",
    }
)


def settle_payment_intent(intent_id: str) -> LedgerEntry | None:
    """Apply Stripe's current state of one PaymentIntent to the payment it belongs to.
    Returns the ledger entry when this call credited it (at most once per intent)."""
    try:
        intent = gateway.retrieve_payment_intent(intent_id)
    except gateway.NotFound:
        log.warning("Stripe event for a PaymentIntent Stripe does not know: %s", intent_id)
        return None
    with transaction.atomic():
        payment = _locked_payment(intent)
        if payment is None:
            return None
        return _apply(payment, intent)


def _locked_payment(intent: gateway.PaymentIntentResult) -> Payment | None:
    """Our payment for Stripe's intent, row-locked, if every recorded detail agrees."""
    payment = (
        Payment.objects.select_for_update()
        .select_related("team")
        .filter(stripe_payment_intent_id=intent.id)
        .first()
    ) or _unrecorded_payment(intent)
    if payment is None:
        log.warning("PaymentIntent %s belongs to no payment of ours", intent.id)
        return None
    mismatch = _mismatch(payment, intent)
    if mismatch:
        log.warning(
            "PaymentIntent %s disagrees with payment %s on %s: nothing applied",
            intent.id,
            payment.public_id,
            mismatch,
        )
        return None
    if payment.stripe_payment_intent_id is None:
        payment.stripe_payment_intent_id = intent.id
        payment.save(update_fields=["stripe_payment_intent_id"])
    return payment


def _unrecorded_payment(intent: gateway.PaymentIntentResult) -> Payment | None:
    """A payment with no intent recorded, named by Stripe's own metadata: the event beat
    `_remember_intent` (still created), or the create call failed on our side after Stripe
    made the intent (failed here). Its intent is the one Stripe made under the payment's
    idempotency key, so if that succeeded the money is the team's."""
    public_id = intent.metadata.get("payment")
    if not isinstance(public_id, str) or not public_id:
        return None
    return (
        Payment.objects.select_for_update()
        .select_related("team")
        .filter(
            public_id=public_id,
            stripe_payment_intent_id=None,
            status__in=(Payment.Status.CREATED, Payment.Status.FAILED),
        )
        .first()
    )


def _mismatch(payment: Payment, intent: gateway.PaymentIntentResult) -> str:
    """What in Stripe's record of the intent differs from our payment ("" when nothing)."""
    cents = to_cents(payment.amount)
    customer = get_account(payment.team).stripe_customer_id
    checks = {
        "amount": intent.amount_cents == cents,
        # localstripe leaves amount_received out; Stripe sets it once the money is in.
        "amount_received": intent.status != "succeeded"
        or intent.amount_received_cents in (None, cents),
        "currency": intent.currency == gateway.CURRENCY,
        "payment": intent.metadata.get("payment") == payment.public_id,
        "team": intent.metadata.get("team") == payment.team.slug,
        "customer": bool(customer) and intent.customer == customer,
    }
    return ", ".join(name for name, agrees in checks.items() if not agrees)


def _apply(payment: Payment, intent: gateway.PaymentIntentResult) -> LedgerEntry | None:
    if intent.status == "succeeded":
        return _credit(payment, intent.id)
    if intent.status == "canceled":
        _mark_canceled(payment)
    elif intent.status == "requires_payment_method":
        record_payment_failed(
            payment_id=payment.pk,
            message=intent.error or "The card was declined.",
            intent_id=intent.id,
        )
    elif intent.status in (Payment.Status.PROCESSING, Payment.Status.REQUIRES_ACTION):
        _advance(payment, intent.status, {Payment.Status.CREATED, Payment.Status.REQUIRES_ACTION})
    return None


def _credit(payment: Payment, intent_id: str) -> LedgerEntry | None:
    """Credit the amount we recorded, exactly once per intent however often it is reported
    (the ledger's idempotency key decides). None when it was already credited."""
    key = f"stripe:pi:{intent_id}"
    entry = post_entry(
        team=payment.team,
        amount=payment.amount,
        kind=LedgerEntry.Kind.TOP_UP,
        idempotency_key=key,
        description=f"{payment.get_kind_display()} with {payment.card_label or 'card'}",
        source_type="payment",
        source_id=payment.public_id,
    )
    if payment.status != Payment.Status.SUCCEEDED:
        _mark_succeeded(payment, intent_id, LedgerEntry.objects.get(idempotency_key=key))
    return entry


def _mark_canceled(payment: Payment) -> None:
    if _advance(payment, Payment.Status.CANCELED, Payment.OPEN_STATUSES):
        audit.record(
            actor=None,
            team=payment.team,
            action=f"billing.{payment.kind}.canceled",
            resource_type="payment",
            resource_id=payment.public_id,
        )


def _mark_succeeded(payment: Payment, intent_id: str, entry: LedgerEntry) -> None:
    now = timezone.now()
    payment.status = Payment.Status.SUCCEEDED
    payment.stripe_payment_intent_id = intent_id
    payment.ledger_entry = entry
    payment.failure_message = ""
    payment.succeeded_at = payment.updated_at = now
    payment.save()
    if payment.kind == Payment.Kind.AUTO_RECHARGE:
        BillingAccount.objects.filter(team=payment.team).update(auto_recharge_failures=0)
    audit.record(
        actor=None,
        team=payment.team,
        action=f"billing.{payment.kind}.succeeded",
        resource_type="payment",
        resource_id=payment.public_id,
        details={"amount": str(entry.amount), "payment_intent": intent_id},
    )
    transaction.on_commit(lambda: _after_settled(payment.pk))


def record_payment_failed(
    *, payment_id: int, message: str, intent_id: str | None = None, card_fault: bool = True
) -> bool:
    """Mark an open payment failed with the reason to show. A failed auto-recharge counts
    towards turning it off (unless the fault was ours or Stripe's, not the card's)."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().select_related("team").get(pk=payment_id)
        if payment.status not in Payment.OPEN_STATUSES:
            return False
        payment.status = Payment.Status.FAILED
        payment.failure_message = message[:500]
        payment.stripe_payment_intent_id = payment.stripe_payment_intent_id or intent_id
        payment.updated_at = timezone.now()
        payment.save()
        audit.record(
            actor=None,
            team=payment.team,
            action=f"billing.{payment.kind}.failed",
            resource_type="payment",
            resource_id=payment.public_id,
            details={"amount": str(payment.amount), "reason": payment.failure_message},
        )
        if payment.kind == Payment.Kind.AUTO_RECHARGE and card_fault:
            _count_auto_recharge_failure(payment)
        transaction.on_commit(lambda: _after_settled(payment.pk))
    return True


def refresh_open_payment(payment: Payment) -> None:
    """Ask Stripe about a payment still open here, to show a failure no webhook reported
    (e.g. 3-D Secure abandoned). Never credits: only the signed webhook does."""
    if not payment.is_open or not payment.stripe_payment_intent_id:
        return
    try:
        intent = gateway.retrieve_payment_intent(payment.stripe_payment_intent_id)
    except gateway.GatewayError:
        return
    if intent.status in {"requires_payment_method", "canceled"}:
        record_payment_failed(
            payment_id=payment.pk,
            message=intent.error or "The payment was not completed.",
            intent_id=intent.id,
        )
        payment.refresh_from_db()


def _after_settled(payment_id: int) -> None:
    """A one-off card (not saved) is detached from the customer once its payment is final."""
    payment = Payment.objects.get(pk=payment_id)
    if not payment.save_card and payment.stripe_payment_method_id:
        _detach_quietly(payment.stripe_payment_method_id)


def handle_webhook_event(event: dict) -> None:
    """Record a verified Stripe event and apply it. Safe to call again with the same event.
    Raises GatewayError when Stripe cannot be asked (the view answers 503: Stripe retries)."""
    try:
        with transaction.atomic():
            _, created = WebhookEvent.objects.get_or_create(
                stripe_id=event["id"], defaults={"type": event["type"], "payload": event}
            )
    except IntegrityError:
        created = False
    if not created:
        WebhookEvent.objects.filter(stripe_id=event["id"]).update(deliveries=F("deliveries") + 1)
    if event["type"] in PAYMENT_INTENT_EVENTS:
        settle_payment_intent(event["data"]["object"]["id"])


# --- auto-recharge -------------------------------------------------------------------------


def auto_recharge_due(account: BillingAccount, now=None) -> bool:
    now = now or timezone.now()
    last = account.auto_recharge_last_attempt_at
    return (
        account.auto_recharge_enabled
        and account.auto_recharge_card_id is not None
        and account.balance < account.auto_recharge_threshold
        and (last is None or now - last >= AUTO_RECHARGE_INTERVAL)
    )


def trigger_auto_recharge(*, team: Team) -> Payment | None:
    """Charge the auto-recharge card off-session if the balance is below the threshold and no
    attempt was made in the last hour. One payment per trigger (team + hour)."""
    now = timezone.now()
    with transaction.atomic():
        account = get_account(team, lock=True)
        if not auto_recharge_due(account, now):
            return None
        card = account.auto_recharge_card
        payment = _create_payment(
            team=team,
            actor=None,
            amount=account.auto_recharge_amount,
            kind=Payment.Kind.AUTO_RECHARGE,
            card=card,
            stripe_card=gateway.Card(card.stripe_id, None, card.brand, card.last4, None, None),
            trigger_key=f"auto-recharge:{team.pk}:{now:%Y%m%d%H}",
        )
        account.auto_recharge_last_attempt_at = now
        account.save(update_fields=["auto_recharge_last_attempt_at"])
    _charge(payment, off_session=True)
    payment.refresh_from_db()
    return payment


def _count_auto_recharge_failure(payment: Payment) -> None:
    """Inside the failing payment's transaction: count it, e-mail, and turn off at the limit."""
    account = get_account(payment.team, lock=True)
    account.auto_recharge_failures += 1
    turned_off = account.auto_recharge_failures >= settings.AUTO_RECHARGE_MAX_FAILURES
    if turned_off and account.auto_recharge_enabled:
        account.auto_recharge_enabled = False
        account.auto_recharge_disabled_reason = (
            f"Turned off after {account.auto_recharge_failures} failed charges in a row: "
            f"{payment.failure_message}"
        )
        audit.record(
            actor=None,
            team=payment.team,
            action="billing.auto_recharge.disabled",
            resource_type="billing_account",
            resource_id=payment.team.slug,
            details={"failures": account.auto_recharge_failures},
        )
    account.save()
    name = "auto_recharge_disabled" if turned_off else "auto_recharge_failed"
    context = {
        "payment": payment,
        "failures": account.auto_recharge_failures,
        "max_failures": settings.AUTO_RECHARGE_MAX_FAILURES,
        "fix_url": emails.absolute("billing_cards", payment.team.slug),
    }
    transaction.on_commit(lambda: emails.send_to_billing(name, team=payment.team, context=context))


@dataclass(frozen=True)
class AutoRechargeSettings:
    enabled: bool
    threshold: Decimal
    amount: Decimal
    card: PaymentMethod | None


def configure_auto_recharge(*, team: Team, actor, new: AutoRechargeSettings) -> BillingAccount:
    if new.enabled and new.card is None:
        raise PaymentError("Choose a saved card for auto-recharge.")
    if new.card is not None and (new.card.team_id != team.pk or new.card.removed_at):
        raise PaymentError("That card is not available.")
    validate_top_up_amount(new.amount)
    with transaction.atomic():
        account = get_account(team, lock=True)
        if new.enabled and not account.auto_recharge_enabled:
            account.auto_recharge_failures = 0
            account.auto_recharge_disabled_reason = ""
        account.auto_recharge_enabled = new.enabled
        account.auto_recharge_threshold = to_money(new.threshold)
        account.auto_recharge_amount = to_money(new.amount)
        account.auto_recharge_card = new.card
        account.save()
        audit.record(
            actor=actor,
            team=team,
            action="billing.auto_recharge.updated",
            resource_type="billing_account",
            resource_id=team.slug,
            details={
                "enabled": new.enabled,
                "threshold": str(account.auto_recharge_threshold),
                "amount": str(account.auto_recharge_amount),
                "card": str(new.card) if new.card else "",
            },
        )
        transaction.on_commit(lambda: balance_changed(team.pk))
    return account


# --- low-balance alerts and the balance hook -----------------------------------------------


def set_low_balance_alert(*, team: Team, actor, threshold: Decimal | None) -> None:
    with transaction.atomic():
        account = get_account(team, lock=True)
        account.low_balance_alert_threshold = to_money(threshold) if threshold else None
        account.low_balance_alerted_at = None
        account.save(update_fields=["low_balance_alert_threshold", "low_balance_alerted_at"])
        audit.record(
            actor=actor,
            team=team,
            action="billing.low_balance_alert.updated",
            resource_type="billing_account",
            resource_id=team.slug,
            details={"threshold": str(threshold) if threshold else None},
        )
        transaction.on_commit(lambda: balance_changed(team.pk))


def send_low_balance_alert(*, team: Team) -> bool:
    """E-mail billing members once per dip below the alert threshold."""
    with transaction.atomic():
        account = get_account(team, lock=True)
        threshold = account.low_balance_alert_threshold
        if threshold is None or account.balance >= threshold or account.low_balance_alerted_at:
            return False
        account.low_balance_alerted_at = timezone.now()
        account.save(update_fields=["low_balance_alerted_at"])
        audit.record(
            actor=None,
            team=team,
            action="billing.low_balance_alert.sent",
            resource_type="billing_account",
            resource_id=team.slug,
            details={"balance": str(account.balance), "threshold": str(threshold)},
        )
        context = {
            "balance": account.balance,
            "threshold": threshold,
            "top_up_url": emails.absolute("billing_top_up", team.slug),
        }
        transaction.on_commit(
            lambda: emails.send_to_billing("low_balance", team=team, context=context)
        )
    return True


def balance_changed(team_id: int) -> list[str]:
    """Runs after every committed ledger entry: queue an auto-recharge or a low-balance
    alert when one is due, and re-arm the alert once the balance is back above it. Returns
    what it did (for the sweep's log line: nothing done, nothing said)."""
    from billing import tasks

    account = BillingAccount.objects.filter(team_id=team_id).first()
    if account is None:
        return []
    done = []
    if auto_recharge_due(account):
        tasks.auto_recharge_task.delay(team_id)
        done.append("auto_recharge")
    threshold = account.low_balance_alert_threshold
    if threshold is None:
        return done
    if account.balance < threshold and account.low_balance_alerted_at is None:
        tasks.low_balance_alert_task.delay(team_id)
        done.append("low_balance_alert")
    elif account.balance >= threshold and account.low_balance_alerted_at is not None:
        BillingAccount.objects.filter(pk=account.pk, balance__gte=threshold).update(
            low_balance_alerted_at=None
        )
        done.append("alert_rearmed")
    return done
