"""Staff tools: programs are edited here (audited through referrals.services); referrals and
commissions are read-only; corrections are ledger adjustments with a reason."""

from django.contrib import admin, messages
from django.db.models import Sum
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.html import format_html

from billing.admin import money_column
from billing.forms import AdjustmentForm
from billing.money import format_usd
from referrals import services
from referrals.models import Commission, Program, Referral, Referrer
from teams.admin import ReadOnlyAdmin


@admin.register(Program)
class ProgramAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "percent_label", "starts_on", "ends_on", "runtime"]
    list_filter = ["kind"]
    fields = ["kind", "name", "rate", "starts_on", "ends_on", "min_template_runtime"]

    @admin.display(description="Template minimum runtime")
    def runtime(self, obj: Program) -> str:
        return str(obj.min_template_runtime) if obj.kind == "templates" else "—"

    def has_delete_permission(self, request, obj=None) -> bool:
        # Commissions point at their program; end a program instead of deleting it.
        return False

    def save_model(self, request, obj, form, change) -> None:
        services.save_program(program=obj, actor=request.user, changed=form.changed_data)


@admin.register(Referral)
class ReferralAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "referrer", "referred_user", "team", "code"]
    search_fields = ["referrer__email", "referred_user__email", "code", "public_id"]
    list_select_related = ["referrer", "referred_user", "team"]
    date_hierarchy = "created_at"


@admin.register(Commission)
class CommissionAdmin(ReadOnlyAdmin):
    list_display = ["earned_at", "earner", "kind", "spend_usd", "amount_usd", "team", "key"]
    spend_usd = money_column("spend", "Spend", 4)
    amount_usd = money_column("amount", "Commission", 4)
    list_filter = ["kind", "program"]
    search_fields = ["earner__email", "key", "public_id", "template_name"]
    list_select_related = ["earner", "team"]
    date_hierarchy = "earned_at"


@admin.register(Referrer)
class ReferrerAdmin(admin.ModelAdmin):
    list_display = ["user", "payout_team", "earned"]
    search_fields = ["user__email"]
    list_select_related = ["user", "payout_team"]
    fields = ["user", "payout_team", "earned", "adjust_link"]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(earned_total=Sum("user__commissions__amount"))

    @admin.display(description="Earned in total", ordering="earned_total")
    def earned(self, obj: Referrer) -> str:
        return format_usd(obj.earned_total or 0, 4)

    @admin.display(description="Correct commissions")
    def adjust_link(self, obj: Referrer) -> str:
        url = reverse("admin:referrals_referrer_adjust", args=[obj.pk])
        return format_html('<a class="button" href="{}">Post a commission adjustment…</a>', url)

    def get_urls(self):
        extra = [
            path(
                "<int:pk>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="referrals_referrer_adjust",
            )
        ]
        return extra + super().get_urls()

    def adjust_view(self, request, pk: int):
        referrer = get_object_or_404(Referrer.objects.select_related("user"), pk=pk)
        if not request.user.has_perm("billing.change_billingaccount"):
            return redirect("admin:index")
        form = AdjustmentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                commission = services.adjust_commissions(
                    user=referrer.user,
                    amount=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                    actor=request.user,
                )
            except (ValueError, services.ReferralError) as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(
                    request,
                    f"Posted {format_usd(commission.amount, 4)} to {commission.team}.",
                    messages.SUCCESS,
                )
                return redirect("admin:referrals_referrer_change", referrer.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Adjust the commissions of {referrer.user}",
            "referrer": referrer,
            "payout_team": services.payout_team(referrer.user),
            "form": form,
            "opts": self.model._meta,
        }
        return render(request, "admin/referrals/adjust.html", context)
