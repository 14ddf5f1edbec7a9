"""Staff tools. The ledger is read-only; corrections are new adjustment entries with a reason,
posted through billing.services like everything else."""

from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.html import format_html

from billing import invoices, payments, services
from billing.forms import AdjustmentForm
from billing.models import (
    BillingAccount,
    Invoice,
    LedgerEntry,
    Payment,
    PaymentMethod,
    UsageWriteOff,
    WebhookEvent,
)
from billing.money import format_usd, money_field
from billing.widgets import MoneyInput
from teams.admin import ReadOnlyAdmin

# For admins that edit prices or limits per hour: up to 4 decimals, not the ledger's 10.
MONEY_WIDGET = {type(money_field()): {"widget": MoneyInput(places=4)}}


def money_column(field: str, description: str, places: int = 2):
    """An admin column (or read-only field) showing a money field as $1.00, not 1.0000000000."""

    @admin.display(description=description, ordering=field)
    def show(self, obj) -> str:
        return format_usd(getattr(obj, field), places)

    return show


@admin.register(BillingAccount)
class BillingAccountAdmin(admin.ModelAdmin):
    list_display = ["team", "balance_usd", "limit_usd", "auto_recharge_enabled", "paid_usd"]
    list_filter = ["auto_recharge_enabled"]
    search_fields = ["team__slug", "team__name", "stripe_customer_id"]
    fields = [
        "team",
        "balance_usd",
        "paid_usd",
        "automatic_limit",
        "spend_limit_override",
        "auto_recharge_enabled",
        "auto_recharge_threshold_usd",
        "auto_recharge_amount_usd",
        "auto_recharge_card",
        "auto_recharge_failures",
        "auto_recharge_last_attempt_at",
        "auto_recharge_disabled_reason",
        "low_balance_alert_threshold_usd",
        "stripe_customer_id",
        "adjust_link",
    ]
    readonly_fields = [f for f in fields if f != "spend_limit_override"]
    formfield_overrides = MONEY_WIDGET
    actions = ["turn_off_auto_recharge"]
    auto_recharge_threshold_usd = money_column("auto_recharge_threshold", "Auto-recharge below")
    auto_recharge_amount_usd = money_column("auto_recharge_amount", "Auto-recharge amount")
    low_balance_alert_threshold_usd = money_column(
        "low_balance_alert_threshold", "Low-balance e-mail below"
    )

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Balance")
    def balance_usd(self, obj: BillingAccount) -> str:
        return format_usd(obj.balance)

    @admin.display(description="Paid to date")
    def paid_usd(self, obj: BillingAccount) -> str:
        return format_usd(obj.paid_total)

    @admin.display(description="Spend limit /h")
    def limit_usd(self, obj: BillingAccount) -> str:
        return format_usd(obj.spend_limit_per_hour)

    @admin.display(description="Automatic limit /h (from paid history)")
    def automatic_limit(self, obj: BillingAccount) -> str:
        return format_usd(obj.automatic_spend_limit)

    @admin.display(description="Credit or debit")
    def adjust_link(self, obj: BillingAccount) -> str:
        url = reverse("admin:billing_billingaccount_adjust", args=[obj.pk])
        return format_html('<a class="button" href="{}">Post an adjustment…</a>', url)

    def save_model(self, request, obj, form, change) -> None:
        # The only editable field; changed through the service so it is audited.
        services.set_spend_limit_override(
            team=obj.team, limit=form.cleaned_data["spend_limit_override"], actor=request.user
        )

    @admin.action(description="Turn off auto-recharge")
    def turn_off_auto_recharge(self, request, queryset) -> None:
        for account in queryset.select_related("team", "auto_recharge_card"):
            payments.configure_auto_recharge(
                team=account.team,
                actor=request.user,
                new=payments.AutoRechargeSettings(
                    enabled=False,
                    threshold=account.auto_recharge_threshold,
                    amount=account.auto_recharge_amount,
                    card=account.auto_recharge_card,
                ),
            )
        self.message_user(request, f"Auto-recharge turned off for {queryset.count()} account(s).")

    def get_urls(self):
        extra = [
            path(
                "<int:pk>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="billing_billingaccount_adjust",
            )
        ]
        return extra + super().get_urls()

    def adjust_view(self, request, pk: int):
        account = get_object_or_404(BillingAccount.objects.select_related("team"), pk=pk)
        if not self.has_change_permission(request, account):
            return redirect("admin:index")
        form = AdjustmentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                entry = services.adjust_balance(
                    team=account.team,
                    amount=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                    actor=request.user,
                )
            except ValueError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(
                    request,
                    f"Posted {format_usd(entry.amount, 4)} to {account.team}.",
                    messages.SUCCESS,
                )
                return redirect("admin:billing_billingaccount_change", account.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Adjust the balance of {account.team}",
            "account": account,
            "form": form,
            "opts": self.model._meta,
        }
        return render(request, "admin/billing/adjust.html", context)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "team",
        "kind",
        "amount_usd",
        "balance_after_usd",
        "description",
        "actor",
    ]
    list_filter = ["kind", "created_at"]
    search_fields = ["team__slug", "idempotency_key", "description", "source_id", "public_id"]
    date_hierarchy = "created_at"
    list_select_related = ["team", "actor"]
    amount_usd = money_column("amount", "Amount", 4)
    balance_after_usd = money_column("balance_after", "Balance after", 4)


@admin.register(UsageWriteOff)
class UsageWriteOffAdmin(ReadOnlyAdmin):
    """The staff report of usage never charged: minutes a catch-up after a metering outage
    found past a team's low-funds line (billing.usage)."""

    list_display = [
        "created_at",
        "team",
        "description",
        "source_id",
        "minutes",
        "amount_usd",
        "first_minute",
        "last_minute",
    ]
    list_filter = ["created_at", "source_type"]
    search_fields = ["team__slug", "team__name", "source_id", "description"]
    date_hierarchy = "created_at"
    list_select_related = ["team"]

    amount_usd = money_column("amount", "Amount", 4)


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "team",
        "kind",
        "amount_usd",
        "status",
        "card_label",
        "failure_message",
    ]
    list_filter = ["kind", "status", "created_at"]
    search_fields = ["team__slug", "public_id", "stripe_payment_intent_id"]
    list_select_related = ["team"]
    amount_usd = money_column("amount", "Amount")


@admin.register(PaymentMethod)
class PaymentMethodAdmin(ReadOnlyAdmin):
    list_display = ["team", "__str__", "expiry", "is_default", "created_at", "removed_at"]
    search_fields = ["team__slug", "stripe_id", "last4"]


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "type", "stripe_id", "deliveries"]
    list_filter = ["type"]
    search_fields = ["stripe_id"]


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = ["requested_at", "team", "number", "amount_usd", "status", "due_date", "paid_at"]
    list_filter = ["status"]
    search_fields = ["team__slug", "number", "billing_name", "public_id"]
    fields = [
        "team",
        "amount_usd",
        "status",
        "number",
        "billing_name",
        "billing_address",
        "tax_id",
        "note",
        "due_date",
        "payment_reference",
        "requested_by",
        "requested_at",
        "issued_at",
        "paid_at",
        "voided_at",
        "ledger_entry",
    ]
    readonly_fields = [
        "team",
        "amount_usd",
        "status",
        "number",
        "requested_by",
        "requested_at",
        "issued_at",
        "paid_at",
        "voided_at",
        "ledger_entry",
    ]
    actions = ["issue", "mark_paid", "void"]
    amount_usd = money_column("amount", "Amount")

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def _each(self, request, queryset, verb: str, action) -> None:
        done = 0
        for invoice in queryset:
            try:
                action(invoice)
                done += 1
            except invoices.InvoiceError as exc:
                self.message_user(request, f"{invoice}: {exc}", messages.ERROR)
        if done:
            self.message_user(request, f"{done} invoice(s) {verb}.", messages.SUCCESS)

    @admin.action(description="Issue the selected invoice requests")
    def issue(self, request, queryset) -> None:
        self._each(
            request,
            queryset,
            "issued",
            lambda inv: invoices.issue_invoice(invoice=inv, actor=request.user),
        )

    @admin.action(description="Mark paid (adds the credit)")
    def mark_paid(self, request, queryset) -> None:
        self._each(
            request,
            queryset,
            "marked paid",
            lambda inv: invoices.mark_invoice_paid(
                invoice=inv, actor=request.user, reference=inv.payment_reference
            ),
        )

    @admin.action(description="Void")
    def void(self, request, queryset) -> None:
        self._each(
            request,
            queryset,
            "voided",
            lambda inv: invoices.void_invoice(invoice=inv, actor=request.user),
        )
