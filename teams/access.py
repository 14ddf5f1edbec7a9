"""The role matrix (SPEC.md, Accounts and teams), written once as data, and the one helper that
every view, API action and websocket consumer asks.

Outsiders (not a member of the team, or the team does not exist) get 404 so that a team's
existence is not revealed; members whose role lacks the capability get 403.
"""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

from teams.models import Membership, Role

# capability -> roles that have it
CAPABILITIES: dict[str, frozenset[str]] = {
    # Any member: the dashboard, switching teams, leaving a team.
    "member": frozenset({Role.BASIC, Role.BILLING, Role.DEV, Role.ADMIN}),
    # Use the account: see pods, templates, storage and endpoints, and connect to pods.
    "use": frozenset({Role.BASIC, Role.DEV, Role.ADMIN}),
    # Start, stop, create and terminate pods; manage templates, volumes and endpoints.
    "deploy": frozenset({Role.DEV, Role.ADMIN}),
    # See and manage billing: top-ups, payment methods, invoices, usage.
    "billing": frozenset({Role.BILLING, Role.ADMIN}),
    # Account settings, members and their roles, invites, API keys, the audit log.
    "admin": frozenset({Role.ADMIN}),
}


def role_can(role: str, capability: str) -> bool:
    try:
        return role in CAPABILITIES[capability]
    except KeyError:
        raise ValueError(f"Unknown capability {capability!r}") from None


def get_membership(user, team_slug: str, capability: str) -> Membership:
    """The caller's membership of the team, if it grants `capability`: else 404 or 403."""
    if capability not in CAPABILITIES:
        raise ValueError(f"Unknown capability {capability!r}")
    if not user.is_authenticated:
        raise Http404
    membership = (
        Membership.objects.select_related("team").filter(user=user, team__slug=team_slug).first()
    )
    if membership is None:
        raise Http404("No such team.")
    if not role_can(membership.role, capability):
        raise PermissionDenied(f"Your role ({membership.get_role_display()}) cannot do this.")
    return membership


def team_view(capability: str) -> Callable:
    """Decorate a view taking `team` (a slug) in its URL; sets request.team/membership."""

    def decorator(view):
        @wraps(view)
        def wrapper(request: HttpRequest, team: str, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = get_membership(request.user, team, capability)
            request.membership = membership
            request.team = membership.team
            request.session["team"] = team
            return view(request, *args, **kwargs)

        wrapper.capability = capability
        return wrapper

    return decorator
