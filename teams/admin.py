"""Staff screens for accounts and teams. Changes that the console audits go through the same
services here (with the staff member as the actor); API key secrets are never shown, and audit
events are read-only."""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.core.exceptions import ValidationError
from django.forms import ModelForm
from django.urls import reverse
from django.utils.html import format_html

from teams import services
from teams.models import ApiKey, AuditEvent, Invite, Membership, Role, Team, User


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records nobody edits by hand (audit events, ledger rows, payments): view only."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class MembershipOfUserInline(admin.TabularInline):
    model = Membership
    fields = ("team", "role", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserEditForm
    add_form = UserCreationForm
    ordering = ("email",)
    list_display = ("email", "name", "is_active", "is_staff", "date_joined", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser", "date_joined")
    search_fields = ("email", "name", "referral_code")
    readonly_fields = ("date_joined", "last_login", "referral_code")
    inlines = [MembershipOfUserInline]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("name", "referral_code")}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Dates", {"fields": ("date_joined", "last_login")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "usable_password", "password1", "password2"),
            },
        ),
    )

    def get_inlines(self, request, obj):
        return self.inlines if obj else []

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            # Like a signup: every user has a personal account.
            services.create_personal_team(user=obj)


class MemberInline(admin.TabularInline):
    """Read-only: role changes and removals go through the membership screen, which keeps the
    last-admin rule and writes the audit log."""

    model = Membership
    fields = ("user", "role", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "is_personal", "member_count", "created_at", "converted_at")
    list_filter = ("is_personal", "created_at")
    search_fields = ("name", "slug", "memberships__user__email")
    readonly_fields = ("slug", "is_personal", "created_at", "converted_at", "audit_link")
    fields = ("name", *readonly_fields)
    inlines = [MemberInline]

    def get_queryset(self, request):
        from django.db.models import Count

        return super().get_queryset(request).annotate(_members=Count("memberships"))

    @admin.display(description="members", ordering="_members")
    def member_count(self, team: Team) -> int:
        return team._members

    @admin.display(description="audit log")
    def audit_link(self, team: Team) -> str:
        url = reverse("admin:teams_auditevent_changelist") + f"?team__id__exact={team.pk}"
        return format_html('<a href="{}">Events of this team</a>', url)

    def has_add_permission(self, request) -> bool:
        # Teams come from signups (and conversions), never from nothing.
        return False

    def save_model(self, request, obj, form, change) -> None:
        if change and "name" in form.changed_data:
            services.rename_team(team=obj, actor=request.user, name=obj.name)


class MembershipForm(ModelForm):
    class Meta:
        model = Membership
        fields = ("user", "team", "role")

    def clean(self):
        data = super().clean()
        instance = self.instance
        if instance.pk and "role" in self.changed_data and instance.role == Role.ADMIN:
            admins = Membership.objects.admins().filter(team_id=instance.team_id)
            if not admins.exclude(pk=instance.pk).exists():
                raise ValidationError(services.LAST_ADMIN_MESSAGE)
        return data


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    form = MembershipForm
    list_display = ("user", "team", "role", "created_at")
    list_filter = ("role", "team__is_personal")
    search_fields = ("user__email", "team__name", "team__slug")
    list_select_related = ("user", "team")
    autocomplete_fields = ("user", "team")

    def get_readonly_fields(self, request, obj=None):
        return ("user", "team", "public_id", "created_at") if obj else ()

    def save_model(self, request, obj, form, change) -> None:
        if change:
            services.change_role(membership=obj, actor=request.user, role=obj.role)
        else:
            services.add_member(team=obj.team, user=obj.user, role=obj.role, actor=request.user)

    def delete_model(self, request, obj) -> None:
        try:
            services.remove_member(membership=obj, actor=request.user)
        except services.TeamError as error:
            messages.error(request, str(error))

    def get_actions(self, request):
        # Bulk delete would skip the last-admin rule and the audit log.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    list_display = ("public_id", "team", "role", "status", "created_by", "created_at", "expires_at")
    list_filter = ("role", "created_at", "expires_at")
    search_fields = ("public_id", "team__name", "team__slug", "created_by__email")
    list_select_related = ("team", "created_by")
    exclude = ("token",)
    readonly_fields = [
        "public_id",
        "team",
        "role",
        "created_by",
        "created_at",
        "expires_at",
        "accepted_by",
        "accepted_at",
        "revoked_at",
    ]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Revoke selected invites")
    def revoke(self, request, queryset) -> None:
        revoked = 0
        for invite in queryset:
            if invite.is_usable:
                services.revoke_invite(invite=invite, actor=request.user)
                revoked += 1
        messages.success(request, f"Revoked {revoked} invite(s).")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """No secrets here: only the prefix. Staff can disable, enable or revoke a leaked key."""

    list_display = (
        "name",
        "prefix",
        "team",
        "permission",
        "is_enabled",
        "created_by",
        "pod_public_id",
        "last_used_at",
    )
    list_filter = ("permission", "is_enabled", "created_at", "last_used_at")
    search_fields = (
        "name",
        "prefix",
        "public_id",
        "team__name",
        "team__slug",
        "created_by__email",
        "pod_public_id",
    )
    list_select_related = ("team", "created_by")
    exclude = ("key_hash",)
    readonly_fields = [
        "public_id",
        "team",
        "name",
        "permission",
        "prefix",
        "is_enabled",
        "created_by",
        "pod_public_id",
        "created_at",
        "last_used_at",
    ]
    actions = ["disable", "enable"]

    def has_add_permission(self, request) -> bool:
        # Keys are made in the console or with `manage.py create_api_key`, which show the secret.
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def delete_model(self, request, obj) -> None:
        services.revoke_api_key(key=obj, actor=request.user)

    def _set_enabled(self, request, queryset, enabled: bool) -> None:
        for key in queryset:
            services.set_api_key_enabled(key=key, actor=request.user, enabled=enabled)
        state = "enabled" if enabled else "disabled"
        messages.success(request, f"{queryset.count()} key(s) {state}.")

    @admin.action(description="Disable selected keys")
    def disable(self, request, queryset) -> None:
        self._set_enabled(request, queryset, False)

    @admin.action(description="Enable selected keys")
    def enable(self, request, queryset) -> None:
        self._set_enabled(request, queryset, True)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "actor_label",
        "team_name",
        "action",
        "resource_type",
        "resource_id",
        "ip",
    )
    list_filter = ("action", "resource_type", "created_at")
    search_fields = ("actor_label", "team_name", "action", "resource_id", "team__slug")
    date_hierarchy = "created_at"
    list_select_related = ("team",)
