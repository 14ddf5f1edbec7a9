from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from billing.admin import MONEY_WIDGET
from pods.lifecycle import STUCK_AFTER, stuck
from pods.models import (
    CpuInstanceType,
    DataCenter,
    GpuType,
    Machine,
    NetworkVolume,
    Pod,
    PodEvent,
    PodTemplate,
)
from pods.runtime import RuntimeFailure, get_backend
from pods.runtime.process import bwrap_works


@admin.register(GpuType)
class GpuTypeAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "display_name",
        "memory_gb",
        "secure_price",
        "community_price",
        "min_bid",
        "serverless_price",
    ]
    list_editable = ["secure_price", "community_price", "min_bid", "serverless_price"]
    formfield_overrides = MONEY_WIDGET
    list_filter = ["manufacturer", "is_active"]
    search_fields = ["id", "display_name"]


@admin.register(CpuInstanceType)
class CpuInstanceTypeAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "vcpu", "memory_gb", "price", "serverless_price"]
    list_editable = ["price", "serverless_price"]
    formfield_overrides = MONEY_WIDGET


@admin.register(DataCenter)
class DataCenterAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "country"]


class MachineChangeListForm(forms.ModelForm):
    """A hosted machine is listed by its review (hosting: burn-in, then public), never by a
    checkbox on the list, which would skip the review."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.host_team_id and "is_listed" in self.fields:
            self.fields["is_listed"].disabled = True


@admin.register(Machine)
class MachineAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "data_center",
        "cloud_type",
        "gpu_type",
        "gpu_count",
        "free_gpus_display",
        "runtime",
        "is_listed",
        "is_online",
    ]
    list_filter = ["data_center", "cloud_type", "runtime", "is_listed", "is_online"]
    list_editable = ["is_listed", "is_online"]
    search_fields = ["name", "public_id"]
    readonly_fields = ["public_id"]
    actions = ["test_connection"]

    def get_changelist_form(self, request, **kwargs):
        return super().get_changelist_form(request, form=MachineChangeListForm, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.host_team_id:
            return [*self.readonly_fields, "is_listed", "burn_in", "host_team"]
        return self.readonly_fields

    def get_queryset(self, request):
        return super().get_queryset(request).with_capacity().select_related("gpu_type")

    @admin.action(description="Test the connection to the machine's runtime")
    def test_connection(self, request, queryset) -> None:
        for machine in queryset:
            level, text = connection_report(machine)
            self.message_user(request, f"{machine.name}: {text}", level)

    @admin.display(description="free GPUs", ordering="free_gpus")
    def free_gpus_display(self, machine: Machine) -> int:
        return machine.free_gpus


def connection_report(machine: Machine) -> tuple[int, str]:
    """(message level, text) for the admin's "test connection" action."""
    try:
        backend = get_backend(machine.runtime, machine.runtime_settings)
        if machine.runtime == "process":
            sandbox = "bubblewrap sandbox" if bwrap_works() else "no sandbox (bubblewrap missing)"
            return messages.SUCCESS, f"process runtime: pods run on the console's host, {sandbox}."
        info = backend.test_connection()
    except RuntimeFailure as error:
        return messages.ERROR, f"connection failed: {error}"
    details = ", ".join(f"{key} {value}" for key, value in info.items() if value)
    return messages.SUCCESS, f"connected to the {machine.runtime} engine ({details})."


@admin.register(PodTemplate)
class PodTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "image", "runtimes", "is_public", "is_serverless"]
    list_filter = ["is_public", "is_serverless"]
    search_fields = ["name", "image", "public_id"]


@admin.register(NetworkVolume)
class NetworkVolumeAdmin(admin.ModelAdmin):
    list_display = ["name", "public_id", "team", "size_gb", "data_center"]
    search_fields = ["name", "public_id", "team__name"]


class PodEventInline(admin.TabularInline):
    model = PodEvent
    extra = 0
    readonly_fields = ["created_at", "status", "message", "actor"]
    can_delete = False


class StuckFilter(admin.SimpleListFilter):
    """Pods whose start or stop has not finished within STUCK_AFTER: the reconciler keeps
    retrying them; staff look at their machine."""

    title = "stuck"
    parameter_name = "stuck"

    def lookups(self, request, model_admin):
        return [("yes", f"Starting or stopping for over {int(STUCK_AFTER.total_seconds())} s")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return stuck(queryset, timezone.now())
        return queryset


@admin.register(Pod)
class PodAdmin(admin.ModelAdmin):
    # Lifecycle changes go through pods.services (runtime, audit); the admin only looks.
    list_display = [
        "public_id",
        "name",
        "team",
        "status",
        "status_changed_at",
        "gpu_type",
        "gpu_count",
        "machine",
    ]
    list_filter = [StuckFilter, "status", "cloud_type", "pricing"]
    search_fields = ["public_id", "name", "team__name"]
    inlines = [PodEventInline]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False
