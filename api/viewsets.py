"""The base class of every team-scoped API viewset. It fails closed: an action missing from
`capabilities` is refused, and querysets are always narrowed to the request's team."""

from django.db.models import QuerySet
from rest_framework import viewsets
from rest_framework.exceptions import PermissionDenied

from api.access import api_membership


class TeamScopedViewSet(viewsets.GenericViewSet):
    """Subclasses set `queryset` (a model with a `team` foreign key, or set `team_field`) and
    `capabilities = {"list": "use", "create": "deploy", ...}` for every action they expose."""

    capabilities: dict[str, str] = {}
    team_field = "team"
    lookup_field = "public_id"

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        capability = self.capabilities.get(self.action or "")
        if capability is None:
            # Unknown or unlisted actions (including OPTIONS metadata) are refused, never opened.
            raise PermissionDenied("This action is not available.")
        self.membership = api_membership(request, capability)
        self.team = self.membership.team

    def get_queryset(self) -> QuerySet:
        return super().get_queryset().filter(**{self.team_field: self.team})
