"""Billing: one account per team, an append-only ledger whose sum is the balance, Stripe
payments and saved cards, and business invoices. All amounts use billing.money."""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q, Sum
from django.urls import reverse
from django.utils import timezone

from billing.limits import limit_for_paid_total
from billing.money import ZERO, money_field
from teams.models import Team, new_public_id


class PaymentMethod(models.Model):
    """A card saved with Stripe for the team (only Stripe's id and display facts are kept)."""

    public_id = models.CharField(max_length=14, unique=True, default=new_public_id)
    team = models.ForeignKey(Team, models.PROTECT, related_name="payment_methods")
    stripe_id = models.CharField(max_length=255, unique=True)
    brand = models.CharField(max_length=30, blank=True)
    last4 = models.CharField(max_length=4, blank=True)
    exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-is_default", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["team"],
                condition=Q(is_default=True, removed_at=None),
                name="one_default_card_per_team",
            )
        ]

    def __str__(self) -> str:
        return f"{self.brand.title() or 'Card'} •••• {self.last4}"

    @property
    def expiry(self) -> str:
        return f"{self.exp_month:02d}/{self.exp_year}" if self.exp_month and self.exp_year else ""


class BillingAccount(models.Model):
    """A team's money settings and its cached balance (= the sum of its ledger entries)."""

    team = models.OneToOneField(Team, models.PROTECT, related_name="billing_account")
    balance = money_field(default=ZERO)
    # Sum of top-ups and paid invoices; drives the automatic spend limit (billing.limits).
    paid_total = money_field(default=ZERO)
    spend_limit_override = money_field(
        null=True, blank=True, help_text="Hourly spend limit set by staff; empty = automatic."
    )
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    auto_recharge_enabled = models.BooleanField(default=False)
    auto_recharge_threshold = money_field(default=Decimal("10"))
    auto_recharge_amount = money_field(default=Decimal("50"))
    auto_recharge_card = models.ForeignKey(
        PaymentMethod, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    auto_recharge_failures = models.PositiveSmallIntegerField(default=0)
    auto_recharge_last_attempt_at = models.DateTimeField(null=True, blank=True)
    auto_recharge_disabled_reason = models.CharField(max_length=255, blank=True)
    low_balance_alert_threshold = money_field(null=True, blank=True)
    low_balance_alerted_at = models.DateTimeField(null=True, blank=True)
    # Since when the balance has been at or below zero (None while positive): drives the grace
    # period before a team's stopped pods and then its network volumes are removed.
    depleted_since = models.DateTimeField(null=True, blank=True)
    depletion_warned_at = models.DateTimeField(null=True, blank=True)
    # Since when the team has been short of funds (pods.funds): its e-mail and audit row are
    # sent once per episode, which ends when the balance covers what the team holds again.
    low_funds_since = models.DateTimeField(null=True, blank=True)
    # Usage roll-up (billing.usage): the team's resources are charged into `balance` up to this
    # minute (the per-minute watermark), and `usage_accrued` is the part of those charges not
    # yet posted as ledger rows (the open hour): balance = sum(ledger) + usage_accrued.
    usage_metered_until = models.DateTimeField(null=True, blank=True)
    usage_accrued = money_field(default=ZERO)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["team__name"]

    def __str__(self) -> str:
        return f"Billing for {self.team}"

    @property
    def automatic_spend_limit(self) -> Decimal:
        return limit_for_paid_total(self.paid_total)

    @property
    def spend_limit_per_hour(self) -> Decimal:
        if self.spend_limit_override is not None:
            return self.spend_limit_override
        return self.automatic_spend_limit


class LedgerEntryQuerySet(models.QuerySet):
    def for_team(self, team: Team) -> "LedgerEntryQuerySet":
        return self.filter(team=team)

    def total(self) -> Decimal:
        return self.aggregate(total=Sum("amount"))["total"] or ZERO

    def update(self, **kwargs):
        raise PermissionError("Ledger entries are append-only; post an adjustment instead.")

    def delete(self):
        raise PermissionError("Ledger entries are append-only; post an adjustment instead.")


class LedgerEntry(models.Model):
    """One movement of a team's money, never edited or deleted: credits are positive, charges
    negative. Written only by billing.services.post_entry."""

    class Kind(models.TextChoices):
        TOP_UP = "top_up", "Top-up"
        USAGE_COMPUTE = "usage_compute", "Compute usage"
        USAGE_STORAGE = "usage_storage", "Storage usage"
        USAGE_SERVERLESS = "usage_serverless", "Serverless usage"
        REFERRAL_COMMISSION = "referral_commission", "Referral commission"
        INVOICE_PAYMENT = "invoice_payment", "Invoice payment"
        ADJUSTMENT = "adjustment", "Staff adjustment"
        REFUND = "refund", "Refund / reversal"

    CREDIT_KINDS = frozenset({Kind.TOP_UP, Kind.REFERRAL_COMMISSION, Kind.INVOICE_PAYMENT})
    USAGE_KINDS = frozenset({Kind.USAGE_COMPUTE, Kind.USAGE_STORAGE, Kind.USAGE_SERVERLESS})
    PAID_KINDS = frozenset({Kind.TOP_UP, Kind.INVOICE_PAYMENT})

    public_id = models.CharField(max_length=14, unique=True, default=new_public_id)
    team = models.ForeignKey(Team, models.PROTECT, related_name="ledger_entries")
    amount = money_field()
    balance_after = money_field()
    kind = models.CharField(max_length=24, choices=Kind.choices)
    idempotency_key = models.CharField(max_length=200, unique=True)
    source_type = models.CharField(max_length=40, blank=True)
    source_id = models.CharField(max_length=64, blank=True)
    description = models.CharField(max_length=255)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # A rolled-up usage row (billing.usage): the minutes [period_start, period_end) it covers,
    # of which `minutes` were billed at its kind's rate (compute: minutes the pod ran).
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    minutes = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = LedgerEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        indexes = [
            models.Index(fields=["team", "-created_at"]),
            models.Index(fields=["source_type", "source_id"]),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="ledger_amount_not_zero"),
            models.CheckConstraint(
                condition=~Q(kind__in=["top_up", "referral_commission", "invoice_payment"])
                | Q(amount__gt=0),
                name="ledger_credits_positive",
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=["usage_compute", "usage_storage", "usage_serverless"])
                | Q(amount__lt=0),
                name="ledger_usage_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} ({self.team})"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("Ledger entries are append-only; post an adjustment instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Ledger entries are append-only; post an adjustment instead.")

    @property
    def is_credit(self) -> bool:
        return self.amount > 0


class UsageWriteOff(models.Model):
    """Usage the platform failed to charge in time and gives up on: minutes a catch-up (after a
    metering outage) found past the point where the team's funds ran low, when its pods would
    have been stopped. Never charged; listed for staff. Written only by billing.usage."""

    team = models.ForeignKey(Team, models.PROTECT, related_name="usage_write_offs")
    source_type = models.CharField(max_length=40)
    source_id = models.CharField(max_length=64)
    description = models.CharField(max_length=255)
    first_minute = models.DateTimeField()
    last_minute = models.DateTimeField()
    minutes = models.PositiveIntegerField()
    # What those minutes would have cost (positive).
    amount = money_field()
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["source_type", "source_id"])]

    def __str__(self) -> str:
        return f"{self.description}: {self.minutes} min written off ({self.team})"


class PaymentQuerySet(models.QuerySet):
    def for_team(self, team: Team) -> "PaymentQuerySet":
        return self.filter(team=team)


class Payment(models.Model):
    """One Stripe PaymentIntent: a top-up from the console or an automatic recharge."""

    class Kind(models.TextChoices):
        TOP_UP = "top_up", "Top-up"
        AUTO_RECHARGE = "auto_recharge", "Auto-recharge"

    class Status(models.TextChoices):
        CREATED = "created", "Awaiting card"
        PROCESSING = "processing", "Processing"
        REQUIRES_ACTION = "requires_action", "Needs authentication"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    OPEN_STATUSES = frozenset({Status.CREATED, Status.PROCESSING, Status.REQUIRES_ACTION})

    public_id = models.CharField(max_length=14, unique=True, default=new_public_id)
    team = models.ForeignKey(Team, models.PROTECT, related_name="payments")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TOP_UP)
    amount = money_field()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CREATED)
    stripe_payment_intent_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    save_card = models.BooleanField(default=False)
    payment_method = models.ForeignKey(
        PaymentMethod, models.SET_NULL, null=True, blank=True, related_name="payments"
    )
    # The card charged, kept even when it was not saved (for receipts and clean-up).
    stripe_payment_method_id = models.CharField(max_length=255, blank=True)
    card_label = models.CharField(max_length=60, blank=True)
    # Auto-recharge: one payment per trigger (team + hour), so a retried task charges once.
    trigger_key = models.CharField(max_length=100, unique=True, null=True, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    ledger_entry = models.OneToOneField(
        LedgerEntry, models.PROTECT, null=True, blank=True, related_name="payment"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    succeeded_at = models.DateTimeField(null=True, blank=True)

    objects = PaymentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="payment_positive")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} ({self.team}, {self.status})"

    def get_absolute_url(self) -> str:
        return reverse("billing_payment", args=[self.team.slug, self.public_id])

    @property
    def receipt_number(self) -> str:
        return f"R-{self.created_at:%Y}-{self.pk:06d}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


class InvoiceQuerySet(models.QuerySet):
    def for_team(self, team: Team) -> "InvoiceQuerySet":
        return self.filter(team=team)


class Invoice(models.Model):
    """A business invoice top-up: requested by the team, issued and settled by staff."""

    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested"
        ISSUED = "issued", "Issued"
        PAID = "paid", "Paid"
        VOID = "void", "Void"

    public_id = models.CharField(max_length=14, unique=True, default=new_public_id)
    team = models.ForeignKey(Team, models.PROTECT, related_name="invoices")
    number = models.CharField(max_length=30, unique=True, null=True, blank=True)
    amount = money_field()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.REQUESTED)
    billing_name = models.CharField(max_length=200)
    billing_address = models.TextField(blank=True)
    tax_id = models.CharField("tax ID", max_length=50, blank=True)
    note = models.TextField(blank=True)
    due_date = models.DateField(null=True, blank=True)
    payment_reference = models.CharField(max_length=200, blank=True)
    ledger_entry = models.OneToOneField(
        LedgerEntry, models.PROTECT, null=True, blank=True, related_name="invoice"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    issued_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="invoice_positive")]

    def __str__(self) -> str:
        return self.number or f"Invoice request {self.public_id}"

    def get_absolute_url(self) -> str:
        return reverse("billing_invoice", args=[self.team.slug, self.public_id])


class WebhookEvent(models.Model):
    """Every verified Stripe event we received, kept for support and replay diagnosis."""

    stripe_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)
    deliveries = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_id}"
