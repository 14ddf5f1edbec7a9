"""The API's one access helper: which team a request acts on, and with which role.

With an API key the team is the key's team, and the key acts with its creator's *current* role
there: demoting the creator narrows the key (a creator who leaves the team takes their keys
with them). A pod's own key acts with POD_KEY_ROLE in the pod's team.
With a browser session the team comes from `?team=<slug>`, else from the team last opened in
the console. Outsiders get 404 (a team's existence is not revealed), members whose role lacks
the capability get 403: the same answers as teams.access gives the console.
"""

from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request

from teams.access import CAPABILITIES, role_can
from teams.models import POD_KEY_ROLE, ApiKey, Membership


def request_api_key(request: Request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


def _membership_for_key(key: ApiKey) -> Membership:
    if key.is_pod_key:
        # Not a stored membership: the access a pod's key has, as the one shape callers read.
        return Membership(team=key.team, role=POD_KEY_ROLE)
    found = Membership.objects.filter(team_id=key.team_id, user_id=key.created_by_id)[:1]
    membership = next(iter(found), None)  # not first(): its ORDER BY costs CPU to build
    if membership is None:
        raise PermissionDenied(
            "The person who created this API key is no longer a member of its team."
        )
    # The key's own team and creator, which authentication fetched: not joined in again.
    membership.team, membership.user = key.team, key.created_by
    return membership


def _membership_for_session(request: Request) -> Membership:
    slug = request.query_params.get("team") or request.session.get("team")
    if not slug:
        raise NotFound("Say which team: add ?team=<slug> or use an API key.")
    membership = (
        Membership.objects.select_related("team", "user")
        .filter(team__slug=slug, user=request.user)
        .first()
    )
    if membership is None:
        raise NotFound("No such team.")
    return membership


def api_membership(request: Request, capability: str) -> Membership:
    """The membership a request acts with, if it grants `capability`; else 404 or 403."""
    if capability not in CAPABILITIES:
        raise ValueError(f"Unknown capability {capability!r}")
    if not request.user or not request.user.is_authenticated:
        raise NotFound("No such team.")
    key = request_api_key(request)
    membership = _membership_for_key(key) if key else _membership_for_session(request)
    if not role_can(membership.role, capability):
        raise PermissionDenied(
            f"This needs the {capability} capability; the role "
            f"{membership.get_role_display()} does not have it."
        )
    return membership
