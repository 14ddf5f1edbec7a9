"""Staff screens for hosting: vetting (host flag, KYC) and machine review go through
hosting.services, so each change is audited with the staff member as the actor."""

from django.contrib import admin, messages

from hosting import services
from hosting.models import Downtime, HostAccount, HostedMachine, Maintenance, Payout


@admin.register(HostAccount)
class HostAccountAdmin(admin.ModelAdmin):
    list_display = ["team", "is_host", "kyc_status", "kyc_checked_by", "kyc_checked_at"]
    list_filter = ["is_host", "kyc_status"]
    search_fields = ["team__name", "team__slug"]
    readonly_fields = ["is_host", "kyc_status", "kyc_checked_by", "kyc_checked_at", "created_at"]
    autocomplete_fields = ["team"]
    actions = ["grant", "withdraw", "kyc_verified", "kyc_rejected"]

    def save_model(self, request, obj, form, change) -> None:
        services.open_host_account(actor=request.user, account=obj)

    def _each(self, request, queryset, **kwargs) -> None:
        for account in queryset:
            if "is_host" in kwargs:
                services.set_host(actor=request.user, team=account.team, is_host=kwargs["is_host"])
            else:
                services.set_kyc(actor=request.user, team=account.team, status=kwargs["kyc"])
        self.message_user(request, f"{queryset.count()} host account(s) updated.", messages.SUCCESS)

    @admin.action(description="Grant hosting (vetted by hand)")
    def grant(self, request, queryset) -> None:
        self._each(request, queryset, is_host=True)

    @admin.action(description="Withdraw hosting")
    def withdraw(self, request, queryset) -> None:
        self._each(request, queryset, is_host=False)

    @admin.action(description="Record KYC as verified")
    def kyc_verified(self, request, queryset) -> None:
        self._each(request, queryset, kyc=HostAccount.Kyc.VERIFIED)

    @admin.action(description="Record KYC as rejected")
    def kyc_rejected(self, request, queryset) -> None:
        self._each(request, queryset, kyc=HostAccount.Kyc.REJECTED)


class MaintenanceInline(admin.TabularInline):
    model = Maintenance
    extra = 0
    can_delete = False
    fields = ["starts_at", "ends_at", "immediate", "reason", "unlisted_at", "relisted_at"]
    readonly_fields = fields


@admin.register(HostedMachine)
class HostedMachineAdmin(admin.ModelAdmin):
    list_display = [
        "machine",
        "team",
        "state",
        "reliability",
        "frequent_maintenance",
        "last_heartbeat_at",
    ]
    list_filter = ["state"]
    search_fields = ["machine__name", "machine__public_id", "team__slug"]
    readonly_fields = [f.name for f in HostedMachine._meta.fields]
    inlines = [MaintenanceInline]
    actions = ["approve", "list_publicly", "reject"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Reliability %")
    def reliability(self, obj) -> str:
        return str(obj.machine.reliability)

    @admin.display(description="Frequent maintenance", boolean=True)
    def frequent_maintenance(self, obj) -> bool:
        return services.is_frequent(obj)

    def _each(self, request, queryset, step) -> None:
        for hosted in queryset:
            try:
                step(actor=request.user, hosted=hosted)
            except services.HostingError as error:
                self.message_user(request, f"{hosted}: {error}", messages.ERROR)

    @admin.action(description="Approve: start burn-in (host team only)")
    def approve(self, request, queryset) -> None:
        self._each(request, queryset, services.start_burn_in)

    @admin.action(description="Burn-in passed: list publicly")
    def list_publicly(self, request, queryset) -> None:
        self._each(request, queryset, services.list_publicly)

    @admin.action(description="Reject")
    def reject(self, request, queryset) -> None:
        self._each(request, queryset, services.reject)


@admin.register(Downtime)
class DowntimeAdmin(admin.ModelAdmin):
    list_display = ["machine", "started_at", "ended_at"]
    readonly_fields = ["machine", "started_at", "ended_at", "public_id"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Payout)
class PayoutAdmin(admin.ModelAdmin):
    """Payouts are recorded, never edited or deleted (a correction is a new row)."""

    list_display = ["team", "month", "amount", "reference", "recorded_by", "created_at"]
    fields = ["team", "month", "amount", "reference"]
    autocomplete_fields = ["team"]

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        services.record_payout(actor=request.user, payout=obj)
