from datetime import UTC, datetime, time
from decimal import Decimal

from django import forms
from django.conf import settings

from billing.models import LedgerEntry, PaymentMethod
from billing.payments import MAX_CARD_TOP_UP
from billing.widgets import MoneyInput


def money_input(**kwargs) -> forms.DecimalField:
    kwargs.setdefault("max_digits", 12)
    kwargs.setdefault("decimal_places", 2)
    return forms.DecimalField(widget=MoneyInput(places=kwargs["decimal_places"]), **kwargs)


class CardChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: PaymentMethod) -> str:
        expiry = f" (expires {obj.expiry})" if obj.expiry else ""
        return f"{obj}{expiry}"


def saved_cards(team):
    return PaymentMethod.objects.filter(team=team, removed_at=None)


class TopUpForm(forms.Form):
    amount = money_input(min_value=settings.MIN_TOP_UP, max_value=MAX_CARD_TOP_UP)
    card = CardChoiceField(
        queryset=PaymentMethod.objects.none(), required=False, to_field_name="public_id"
    )
    setup_intent = forms.CharField(required=False, max_length=255, widget=forms.HiddenInput)
    save_card = forms.BooleanField(
        required=False, label="Save this card for later top-ups and auto-recharge"
    )

    def __init__(self, *args, team, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["card"].queryset = saved_cards(team)

    def clean(self):
        data = super().clean()
        if not data.get("card") and not data.get("setup_intent"):
            raise forms.ValidationError("Choose a saved card or enter a new one.")
        return data


class AutoRechargeForm(forms.Form):
    enabled = forms.BooleanField(required=False, label="Turn on auto-recharge")
    threshold = money_input(min_value=Decimal("0"), label="When the balance falls below")
    amount = money_input(min_value=settings.MIN_TOP_UP, max_value=MAX_CARD_TOP_UP, label="Add")
    card = CardChoiceField(
        queryset=PaymentMethod.objects.none(),
        required=False,
        to_field_name="public_id",
        widget=forms.Select(attrs={"class": "form-select"}),
    )

    def __init__(self, *args, team, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["card"].queryset = saved_cards(team)


class LowBalanceAlertForm(forms.Form):
    threshold = money_input(
        min_value=Decimal("0"),
        required=False,
        label="E-mail billing members below",
        help_text="Leave empty to turn the alert off.",
    )


class InvoiceRequestForm(forms.Form):
    amount = money_input(min_value=settings.MIN_INVOICE_AMOUNT, max_value=Decimal("10000000"))
    billing_name = forms.CharField(max_length=200, label="Company name")
    billing_address = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    tax_id = forms.CharField(max_length=50, required=False, label="Tax ID (VAT, EIN)")
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        label="How will you pay?",
        help_text="Bank transfer, ACH or card; anything staff should know.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.widget.attrs.setdefault("class", "form-control")


class LedgerFilterForm(forms.Form):
    """Filters of the ledger page and CSV, on entries annotated with `moment`
    (billing.reports.ledger_entries): dates are those of the usage, not of its posting."""

    group = forms.ChoiceField(
        choices=[("day", "Per day"), ("hour", "Per hour"), ("entry", "Every entry")],
        required=False,
    )
    kind = forms.ChoiceField(choices=[("", "All kinds"), *LedgerEntry.Kind.choices], required=False)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    hour = forms.DateTimeField(required=False)
    resource = forms.CharField(required=False, max_length=110)
    q = forms.CharField(required=False, max_length=100, label="Search")

    @property
    def grouping(self) -> str:
        if self.is_valid() and self.cleaned_data["group"]:
            return self.cleaned_data["group"]
        return "day"

    def clean_resource(self) -> tuple[str, str] | None:
        value = self.cleaned_data["resource"]
        if not value:
            return None
        source_type, _, source_id = value.partition(":")
        if not source_type or not source_id:
            raise forms.ValidationError("A resource is written type:id, e.g. pod:abc123.")
        return source_type, source_id

    def keeps(self, line) -> bool:
        """The same filters for a line that is not a ledger row (an open accrual)."""
        if not self.is_valid():
            return True
        data = self.cleaned_data
        day = line.period.astimezone(UTC).date()
        hour = data["hour"] and data["hour"].astimezone(UTC).replace(
            minute=0, second=0, microsecond=0
        )
        query = data["q"].lower()
        return all(
            [
                not data["kind"] or line.kind == data["kind"],
                not data["resource"] or (line.source_type, line.source_id) == data["resource"],
                not data["since"] or day >= data["since"],
                not data["until"] or day <= data["until"],
                not hour or line.period.astimezone(UTC).replace(minute=0) == hour,
                not query or query in line.description.lower() or line.source_id == data["q"],
            ]
        )

    def filter(self, entries):
        if not self.is_valid():
            return entries
        data = self.cleaned_data
        if data["kind"]:
            entries = entries.filter(kind=data["kind"])
        if data["since"]:
            # An entry is posted after the usage it charges (moment <= created_at), so this
            # bound on the indexed column keeps every match and skips older rows.
            start = datetime.combine(data["since"], time.min, tzinfo=UTC)
            entries = entries.filter(created_at__gte=start, moment__date__gte=data["since"])
        if data["until"]:
            entries = entries.filter(moment__date__lte=data["until"])
        if data["hour"]:
            hour = data["hour"].astimezone(UTC)
            entries = entries.filter(
                created_at__gte=hour.replace(minute=0, second=0, microsecond=0),
                moment__date=hour.date(),
                moment__hour=hour.hour,
            )
        if data["resource"]:
            source_type, source_id = data["resource"]
            entries = entries.filter(source_type=source_type, source_id=source_id)
        if data["q"]:
            entries = entries.filter(description__icontains=data["q"]) | entries.filter(
                source_id=data["q"]
            )
        return entries


class AdjustmentForm(forms.Form):
    amount = forms.DecimalField(
        max_digits=20, decimal_places=10, help_text="Positive adds credit, negative removes it."
    )
    reason = forms.CharField(max_length=255)
