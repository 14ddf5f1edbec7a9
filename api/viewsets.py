"""The base class of every team-scoped API viewset. It fails closed: an action missing from
`capabilities` is refused, and querysets are always narrowed to the request's team.

It also names the request's API key in every audit event written while it runs, and honours
the Idempotency-Key header on POST (api.idempotency)."""

from django.db.models import QuerySet
from rest_framework import viewsets
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response

from api import idempotency
from api.access import api_membership, request_api_key
from teams.audit import current_api_key


class TeamScopedViewSet(viewsets.GenericViewSet):
    """Subclasses set `queryset` (a model with a `team` foreign key, or set `team_field`) and
    `capabilities = {"list": "use", "create": "deploy", ...}` for every action they expose."""

    capabilities: dict[str, str] = {}
    team_field = "team"
    lookup_field = "public_id"

    def dispatch(self, request, *args, **kwargs):
        self.idempotent_row = None
        token = current_api_key.set(None)
        try:
            response = super().dispatch(request, *args, **kwargs)
        except BaseException:
            if self.idempotent_row is not None:
                self.idempotent_row.delete()  # a crash is no answer: let the client retry
            raise
        finally:
            current_api_key.reset(token)
        if self.idempotent_row is not None:
            idempotency.settle(self.idempotent_row, response)
        return response

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        capability = self.capabilities.get(self.action or "")
        if capability is None:
            # Unknown or unlisted actions (including OPTIONS metadata) are refused, never opened.
            raise PermissionDenied("This action is not available.")
        self.membership = api_membership(request, capability)
        self.team = self.membership.team
        key = request_api_key(request)
        current_api_key.set(key.public_id if key else None)
        self._honour_idempotency_key(request)

    def _honour_idempotency_key(self, request) -> None:
        key = idempotency.request_key(request)
        if key is None:
            return
        claimed = idempotency.claim(self.team, key, request)
        if isinstance(claimed, Response):
            # Answer with the stored response instead of running the action again: DRF
            # dispatches to the attribute named after the method (as_view binds actions so).
            setattr(self, request.method.lower(), lambda *args, **kwargs: claimed)
        else:
            self.idempotent_row = claimed

    def get_queryset(self) -> QuerySet:
        return super().get_queryset().filter(**{self.team_field: self.team})

    def get_object(self):
        # PostgreSQL refuses a NUL byte in any text comparison (a 500): such an id names
        # nothing, so it gets the same 404 as an id of another team's object.
        if "\x00" in str(self.kwargs.get(self.lookup_url_kwarg or self.lookup_field, "")):
            raise NotFound("Not found.")
        return super().get_object()
