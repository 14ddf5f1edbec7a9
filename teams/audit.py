"""The one way to write an audit event. The request's IP comes from a context variable set by
AuditContextMiddleware, so service functions need not carry the request around."""

from contextvars import ContextVar

from teams.models import AuditEvent, Team, User

current_ip: ContextVar[str | None] = ContextVar("audit_ip", default=None)
# The public id of the API key a request authenticated with (set by api.viewsets), so every
# event a service writes during an API call names the key that did it.
current_api_key: ContextVar[str | None] = ContextVar("audit_api_key", default=None)


def record(
    *,
    actor,
    team: Team | None,
    action: str,
    resource_type: str,
    resource_id: str | int = "",
    details: dict | None = None,
) -> AuditEvent:
    """Append one audit event. Call it inside the service's transaction."""
    user, label = _actor(actor)
    details = dict(details or {})
    if current_api_key.get():
        details.setdefault("api_key", current_api_key.get())
    return AuditEvent.objects.create(
        team=team,
        team_name=team.name if team else "",
        actor=user,
        actor_label=label,
        action=action,
        resource_type=resource_type,
        resource_id=str(resource_id),
        ip=current_ip.get(),
        details=details,
    )


def _actor(actor) -> tuple[User | None, str]:
    """Who to link and how to name them: a person, a principal that is no user (a pod acting
    with its own API key: "pod <id>"), or the system."""
    if actor is None or not getattr(actor, "is_authenticated", False):
        return None, "system"
    if isinstance(actor, User):
        return actor, actor.email
    return None, str(actor)
