"""Referral and template programs: who referred whom, the programs as data, and one commission
row per usage entry that earned something (the record that says where every cent came from).

Money moves only through billing: commissions are credited to the earner's team as ledger
entries of kind referral_commission (referrals.commissions). Rows here are append-only.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q, Sum

from billing.models import LedgerEntry
from billing.money import ZERO, money_field
from teams.models import Team, new_public_id


class ProgramKind(models.TextChoices):
    PODS = "pods", "Pods"
    SERVERLESS = "serverless", "Serverless"
    TEMPLATES = "templates", "Templates"


class ProgramQuerySet(models.QuerySet):
    def live_on(self, day: date) -> ProgramQuerySet:
        return self.filter(starts_on__lte=day).filter(Q(ends_on=None) | Q(ends_on__gte=day))


class Program(models.Model):
    """A commission program. Spend counts when it is charged between starts_on and ends_on
    (inclusive, UTC days; no end date = open-ended)."""

    public_id = models.CharField(max_length=14, unique=True, default=new_public_id)
    kind = models.CharField(max_length=12, choices=ProgramKind.choices)
    name = models.CharField(max_length=100)
    rate = models.DecimalField(
        max_digits=7,
        decimal_places=6,
        validators=[MinValueValidator(Decimal("0.000001")), MaxValueValidator(Decimal("0.5"))],
        help_text="Share of the spend paid as commission: 0.03 is 3 %.",
    )
    starts_on = models.DateField()
    ends_on = models.DateField(null=True, blank=True, help_text="Last day (UTC); empty = open.")
    min_template_runtime = models.DurationField(
        default=timedelta(days=1),
        help_text="Templates program only: total runtime across all pods of a template before "
        "its creator starts earning (e.g. '1 00:00:00' for one day).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProgramQuerySet.as_manager()

    class Meta:
        ordering = ["kind", "starts_on"]
        constraints = [
            models.CheckConstraint(condition=Q(rate__gt=0), name="program_rate_positive"),
            models.CheckConstraint(
                condition=Q(ends_on=None) | Q(ends_on__gte=models.F("starts_on")),
                name="program_ends_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.percent_label})"

    @property
    def percent_label(self) -> str:
        percent = (self.rate * 100).normalize()
        return f"{percent:f} %"

    @property
    def starts_at(self) -> datetime:
        return datetime.combine(self.starts_on, time.min, tzinfo=UTC)

    @property
    def ends_at(self) -> datetime | None:
        """The first moment after the program (exclusive), or None when open-ended."""
        if self.ends_on is None:
            return None
        return datetime.combine(self.ends_on + timedelta(days=1), time.min, tzinfo=UTC)

    def covers(self, moment: datetime) -> bool:
        return self.starts_at <= moment and (self.ends_at is None or moment < self.ends_at)

    @property
    def min_runtime_minutes(self) -> int:
        return int(self.min_template_runtime.total_seconds() // 60)

    @property
    def min_runtime_label(self) -> str:
        """'1 day', '36 hours', '90 minutes'."""
        minutes = self.min_runtime_minutes
        if minutes and minutes % (24 * 60) == 0:
            count, unit = minutes // (24 * 60), "day"
        elif minutes and minutes % 60 == 0:
            count, unit = minutes // 60, "hour"
        else:
            count, unit = minutes, "minute"
        return f"{count} {unit}{'' if count == 1 else 's'}"

    def clean(self) -> None:
        if self.ends_on and self.starts_on and self.ends_on < self.starts_on:
            raise ValidationError({"ends_on": "The program cannot end before it starts."})
        if self.kind and self.starts_on and self._overlapping().exists():
            raise ValidationError(
                "Another program of this kind runs at the same time; end it first, so one "
                "usage entry never earns two commissions of the same kind."
            )

    def _overlapping(self) -> ProgramQuerySet:
        others = Program.objects.filter(kind=self.kind).exclude(pk=self.pk)
        others = others.filter(Q(ends_on=None) | Q(ends_on__gte=self.starts_on))
        if self.ends_on:
            others = others.filter(starts_on__lte=self.ends_on)
        return others


class Referrer(models.Model):
    """A person who earns commissions, and where they want them credited."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, models.CASCADE, related_name="referrer_profile"
    )
    payout_team = models.ForeignKey(
        Team,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty = the person's personal account.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user__email"]

    def __str__(self) -> str:
        return str(self.user)


class Referral(models.Model):
    """An account created through someone's referral link."""

    public_id = models.CharField(max_length=14, unique=True, default=new_public_id)
    referrer = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, related_name="referrals_made"
    )
    referred_user = models.OneToOneField(
        settings.AUTH_USER_MODEL, models.PROTECT, related_name="referral"
    )
    # The personal account created at signup: its spend is what the referral programs count.
    team = models.OneToOneField(Team, models.PROTECT, related_name="referral")
    code = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(referrer=models.F("referred_user")), name="referral_not_self"
            )
        ]

    def __str__(self) -> str:
        return f"{self.referred_user} referred by {self.referrer}"

    @property
    def masked_email(self) -> str:
        return mask_email(self.referred_user.email)


def mask_email(email: str) -> str:
    """alice@example.com -> a***@example.com: enough to recognise a friend, not to mail them."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


class CommissionKind(models.TextChoices):
    PODS = "pods", "Pods"
    SERVERLESS = "serverless", "Serverless"
    TEMPLATES = "templates", "Templates"
    ADJUSTMENT = "adjustment", "Staff adjustment"


class CommissionQuerySet(models.QuerySet):
    def for_earner(self, user) -> CommissionQuerySet:
        return self.filter(earner=user)

    def total(self) -> Decimal:
        return self.aggregate(total=Sum("amount"))["total"] or ZERO

    def update(self, **kwargs):
        raise PermissionError("Commissions are append-only; post an adjustment instead.")

    def delete(self):
        raise PermissionError("Commissions are append-only; post an adjustment instead.")


class Commission(models.Model):
    """What one usage entry earned its referrer or template creator (or, negative, what a
    refund of it took back, or a staff adjustment). `key` makes each of these happen once:
    commission:<kind>:<usage entry>, reversal:<kind>:<refund entry>, adjustment:<entry>."""

    # Also its public identifier (commission rows have no pages of their own).
    key = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=12, choices=CommissionKind.choices)
    program = models.ForeignKey(
        Program, models.PROTECT, null=True, blank=True, related_name="commissions"
    )
    earner = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="commissions")
    referral = models.ForeignKey(
        Referral, models.PROTECT, null=True, blank=True, related_name="commissions"
    )
    template = models.ForeignKey(
        "pods.PodTemplate", models.SET_NULL, null=True, blank=True, related_name="+"
    )
    template_name = models.CharField(max_length=100, blank=True)
    # The team whose spend earned it (the referred account, or whoever ran the template).
    source_team = models.ForeignKey(Team, models.PROTECT, null=True, blank=True, related_name="+")
    usage_entry = models.ForeignKey(
        LedgerEntry, models.PROTECT, null=True, blank=True, related_name="+"
    )
    refund_entry = models.ForeignKey(
        LedgerEntry, models.PROTECT, null=True, blank=True, related_name="+"
    )
    spend = money_field(default=ZERO)
    rate = models.DecimalField(max_digits=7, decimal_places=6, null=True, blank=True)
    amount = money_field()
    # The team credited, and the ledger entry that carried the money.
    team = models.ForeignKey(Team, models.PROTECT, related_name="+")
    ledger_entry = models.ForeignKey(LedgerEntry, models.PROTECT, related_name="+")
    # When the spend was charged (or refunded): months on the referrals page go by this.
    earned_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CommissionQuerySet.as_manager()

    class Meta:
        ordering = ["-earned_at", "-id"]
        indexes = [
            models.Index(fields=["earner", "earned_at"]),
            models.Index(fields=["template", "earned_at"]),
        ]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="commission_not_zero")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} to {self.earner}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("Commissions are append-only; post an adjustment instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Commissions are append-only; post an adjustment instead.")


class TemplateUnlock(models.Model):
    """The moment a template reached the program's minimum runtime: its creator earns on
    usage entries after `entry_id` (the ledger id of the runtime minute that crossed it)."""

    program = models.ForeignKey(Program, models.CASCADE, related_name="+")
    template = models.ForeignKey("pods.PodTemplate", models.CASCADE, related_name="+")
    entry_id = models.BigIntegerField()
    unlocked_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["program", "template"], name="one_unlock_per_program")
        ]

    def __str__(self) -> str:
        return f"{self.template_id} unlocked {self.unlocked_at:%Y-%m-%d %H:%M}"


class CommissionCursor(models.Model):
    """How far commission processing has read the ledger (by ledger id), and the newest id it
    saw last time with when it saw it (processing waits until those rows must be committed)."""

    name = models.CharField(max_length=40, unique=True)
    position = models.BigIntegerField(default=0)
    seen_id = models.BigIntegerField(default=0)
    seen_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} at ledger id {self.position}"
