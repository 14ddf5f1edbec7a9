"""The one way to write an audit event. The request's IP comes from a context variable set by
AuditContextMiddleware, so service functions need not carry the request around."""

from contextvars import ContextVar

from teams.models import AuditEvent, Team

current_ip: ContextVar[str | None] = ContextVar("audit_ip", default=None)


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
    actor = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    return AuditEvent.objects.create(
        team=team,
        team_name=team.name if team else "",
        actor=actor,
        actor_label=actor.email if actor else "system",
        action=action,
        resource_type=resource_type,
        resource_id=str(resource_id),
        ip=current_ip.get(),
        details=details or {},
    )
