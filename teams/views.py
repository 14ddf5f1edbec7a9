"""Team pages: members, invites, settings, API keys and the audit log. Each view is an access
check (team_view), then a form or a service, then a redirect or a render."""

import csv
import json
from collections.abc import Iterator

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.core.paginator import Paginator
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from teams import services
from teams.access import team_view
from teams.forms import (
    ROLE_HELP,
    ApiKeyForm,
    AuditFilterForm,
    ConvertTeamForm,
    InviteForm,
    RoleForm,
    TeamSettingsForm,
)
from teams.models import ApiKey, AuditEvent, Invite, Membership, Role

NEW_KEY_SESSION = "new_api_key"


def _members_url(request) -> str:
    return reverse("members", args=[request.team.slug])


def _fail(request, error: services.TeamError) -> None:
    messages.error(request, str(error))


@team_view("member")
def members(request):
    team = request.team
    is_admin = request.membership.can("admin")
    admin_count = Membership.objects.admins().filter(team=team).count()
    invites = []
    if is_admin:
        invites = list(Invite.objects.pending().filter(team=team).select_related("created_by"))
        for invite in invites:
            invite.link = request.build_absolute_uri(invite.get_absolute_url())
    context = {
        "members": Membership.objects.filter(team=team)
        .select_related("user")
        .order_by("user__email"),
        "admin_count": admin_count,
        "sole_admin": request.membership.role == Role.ADMIN and admin_count == 1,
        "invites": invites,
        "invite_form": InviteForm(),
        "roles": Role.choices,
        "role_help": [(label, ROLE_HELP[value]) for value, label in Role.choices],
        "is_admin": is_admin,
        "invite_valid_days": settings.INVITE_VALID_DAYS,
    }
    return render(request, "teams/members.html", context)


@team_view("admin")
def convert_team(request):
    if not request.team.is_personal:
        messages.info(request, f"{request.team.name} is already a team account.")
        return redirect("members", request.team.slug)
    form = ConvertTeamForm(request.POST or None, initial={"name": ""})
    if request.method == "POST" and form.is_valid():
        try:
            team = services.convert_to_team(
                team=request.team, actor=request.user, name=form.cleaned_data["name"]
            )
        except services.TeamError as error:
            _fail(request, error)
        else:
            messages.success(
                request, f"{team.name} is now a team account. Invite your colleagues below."
            )
            return redirect("members", team.slug)
    return render(request, "teams/convert.html", {"form": form})


def _member(request, member_id: str) -> Membership:
    return get_object_or_404(
        Membership.objects.select_related("user", "team"), team=request.team, public_id=member_id
    )


@require_POST
@team_view("admin")
def change_role(request, member_id: str):
    membership = _member(request, member_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles.")
        return redirect(_members_url(request))
    try:
        updated = services.change_role(
            membership=membership, actor=request.user, role=form.cleaned_data["role"]
        )
    except services.TeamError as error:
        _fail(request, error)
    else:
        messages.success(request, f"{updated.user.email} is now {updated.get_role_display()}.")
    return redirect(_members_url(request))


@require_POST
@team_view("admin")
def remove_member(request, member_id: str):
    membership = _member(request, member_id)
    if membership.user_id == request.user.id:
        messages.error(request, "To leave the team yourself, use “Leave team”.")
        return redirect(_members_url(request))
    try:
        services.remove_member(membership=membership, actor=request.user)
    except services.TeamError as error:
        _fail(request, error)
    else:
        messages.success(request, f"{membership.user.email} was removed from {request.team.name}.")
    return redirect(_members_url(request))


@require_POST
@team_view("member")
def leave_team(request):
    try:
        services.leave_team(membership=request.membership)
    except services.TeamError as error:
        _fail(request, error)
        return redirect(_members_url(request))
    request.session.pop("team", None)
    messages.success(request, f"You left {request.team.name}.")
    return redirect("home")


@require_POST
@team_view("admin")
def create_invite(request):
    form = InviteForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a role for the invite.")
        return redirect(_members_url(request))
    try:
        invite = services.create_invite(
            team=request.team, actor=request.user, role=form.cleaned_data["role"]
        )
    except services.TeamError as error:
        _fail(request, error)
        return redirect(_members_url(request))
    messages.success(
        request,
        f"Invite link for a {invite.get_role_display()} member created. Copy it from "
        "“Pending invites” and send it to your colleague.",
    )
    return redirect(_members_url(request) + "#invites")


@require_POST
@team_view("admin")
def revoke_invite(request, invite_id: str):
    invite = get_object_or_404(Invite, team=request.team, public_id=invite_id)
    try:
        services.revoke_invite(invite=invite, actor=request.user)
    except services.TeamError as error:
        _fail(request, error)
    else:
        messages.success(request, "Invite revoked. The link no longer works.")
    return redirect(_members_url(request) + "#invites")


def invite_accept(request, token: str):
    """Public: anyone with the link sees the team and the role; signed-in users can join."""
    invite = Invite.objects.select_related("team", "created_by").filter(token=token).first()
    if invite is None or not invite.is_usable:
        status = 404 if invite is None else 410
        return render(request, "teams/invite_invalid.html", {"invite": invite}, status=status)
    if request.method == "POST" and request.user.is_authenticated:
        try:
            membership = services.accept_invite(token=token, user=request.user)
        except services.TeamError as error:
            _fail(request, error)
        else:
            request.session["team"] = membership.team.slug
            messages.success(
                request,
                f"Welcome to {membership.team.name}! You joined as "
                f"{membership.get_role_display()}.",
            )
            return redirect("dashboard", membership.team.slug)
    already_member = request.user.is_authenticated and (
        Membership.objects.filter(team=invite.team, user=request.user).first()
    )
    next_query = urlencode({REDIRECT_FIELD_NAME: request.path})
    context = {
        "invite": invite,
        "role_help": ROLE_HELP[invite.role],
        "already_member": already_member,
        "signup_url": f"{reverse('account_signup')}?{next_query}",
        "login_url": f"{reverse('account_login')}?{next_query}",
    }
    return render(request, "teams/invite_accept.html", context)


@team_view("admin")
def team_settings(request):
    form = TeamSettingsForm(request.POST or None, initial={"name": request.team.name})
    if request.method == "POST" and form.is_valid():
        team = services.rename_team(
            team=request.team, actor=request.user, name=form.cleaned_data["name"]
        )
        messages.success(request, f"Team name saved: {team.name}.")
        return redirect("settings", team.slug)
    context = {
        "form": form,
        "key_count": ApiKey.objects.for_team(request.team).count(),
        "member_count": Membership.objects.filter(team=request.team).count(),
    }
    return render(request, "teams/settings.html", context)


@team_view("admin")
def api_keys(request):
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        key, secret = services.create_api_key(
            team=request.team,
            actor=request.user,
            name=form.cleaned_data["name"],
            permission=form.cleaned_data["permission"],
        )
        # Kept in the session for exactly one page view, so a reload does not show it again.
        request.session[NEW_KEY_SESSION] = {"id": key.public_id, "secret": secret}
        messages.success(request, f"API key “{key.name}” created. Copy it now.")
        return redirect("api_keys", request.team.slug)
    new_key = request.session.pop(NEW_KEY_SESSION, None)
    keys = ApiKey.objects.for_team(request.team).select_related("created_by")
    context = {"form": form, "keys": keys, "new_key": new_key}
    return render(request, "teams/api_keys.html", context)


def _api_key(request, key_id: str) -> ApiKey:
    return get_object_or_404(ApiKey.objects.for_team(request.team), public_id=key_id)


@require_POST
@team_view("admin")
def api_key_toggle(request, key_id: str):
    key = _api_key(request, key_id)
    key = services.set_api_key_enabled(key=key, actor=request.user, enabled=not key.is_enabled)
    state = "enabled" if key.is_enabled else "disabled: requests using it are refused"
    messages.success(request, f"API key “{key.name}” {state}.")
    return redirect("api_keys", request.team.slug)


@require_POST
@team_view("admin")
def api_key_revoke(request, key_id: str):
    key = _api_key(request, key_id)
    services.revoke_api_key(key=key, actor=request.user)
    messages.success(request, f"API key “{key.name}” revoked and deleted.")
    return redirect("api_keys", request.team.slug)


def _filtered_events(request) -> tuple[AuditFilterForm, object]:
    events = AuditEvent.objects.for_team(request.team)
    form = AuditFilterForm(request.GET, events=events)
    return form, form.filter(events)


@team_view("admin")
def audit_log(request):
    form, events = _filtered_events(request)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "query": query.urlencode(),
        "csv_url": reverse("audit_log_csv", args=[request.team.slug]) + "?" + query.urlencode(),
    }
    return render(request, "teams/audit_log.html", context)


CSV_COLUMNS = ["time", "actor", "action", "resource_type", "resource_id", "ip", "details"]


def _csv_safe(value: str) -> str:
    # Spreadsheet apps run cells starting with these characters as formulas.
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


def _csv_rows(events) -> Iterator[list[str]]:
    yield CSV_COLUMNS
    for event in events.iterator(chunk_size=2000):
        row = [
            event.created_at.isoformat(),
            event.actor_label,
            event.action,
            event.resource_type,
            event.resource_id,
            event.ip or "",
            json.dumps(event.details, sort_keys=True) if event.details else "",
        ]
        yield [_csv_safe(cell) for cell in row]


class _Echo:
    def write(self, value: str) -> str:
        return value


@team_view("admin")
def audit_log_csv(request) -> HttpResponse:
    form, events = _filtered_events(request)
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in _csv_rows(events)), content_type="text/csv"
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    filename = f"audit-{request.team.slug}-{stamp}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
