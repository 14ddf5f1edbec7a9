"""The role matrix test's data: one Route per team-scoped URL name, declared by each app's test
package in `tests/<app>/matrix.py` as `ROUTES = [Route(...), ...]`.

A Route says which capability (teams.access.CAPABILITIES) the view needs, which HTTP methods to
try, and how to build its URL kwargs (beyond `team`) for a given team: `make_kwargs(team)` may
create the objects it needs (a pod, an invite, ...) and returns the kwargs dict.
"""

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Route:
    name: str
    capability: str
    methods: tuple[str, ...] = ("GET",)
    make_kwargs: Callable | None = None
    data: dict = field(default_factory=dict)

    def kwargs_for(self, team) -> dict:
        kwargs = {"team": team.slug}
        if self.make_kwargs:
            kwargs.update(self.make_kwargs(team))
        return kwargs


@dataclass(frozen=True)
class ApiRoute:
    """One REST API action: URL name and HTTP method. The API finds the team from the key (or,
    with a browser session, from `?team=<slug>`); the matrix test uses a session."""

    name: str
    method: str
    capability: str
    make_kwargs: Callable | None = None
    data: dict = field(default_factory=dict)

    def kwargs_for(self, team) -> dict:
        return self.make_kwargs(team) if self.make_kwargs else {}


@dataclass(frozen=True)
class GraphqlOp:
    """One root field of /graphql (a query or mutation): `document(team)` builds the document
    to send, creating what it names. The matrix test posts it with a session and ?team=."""

    field: str
    capability: str
    document: Callable


# URL names that are not team-scoped pages, with the reason they are outside the matrix.
EXEMPT: dict[str, str] = {
    "home": "the public front page; redirects a signed-in user to their own team",
    "healthz": "public health check",
}
