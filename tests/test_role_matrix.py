"""For every team-scoped view, each role, an outsider and an anonymous user get the expected
answer. A new URL under /t/<team>/ without a Route fails test_every_team_view_has_a_route."""

import importlib
import json
import pkgutil

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

import tests
from api.graphql.resolvers import CAPABILITY as GRAPHQL_CAPABILITY
from api.graphql.view import schema as graphql_schema
from teams.access import role_can
from teams.models import Membership, Role, Team
from tests.api.graphql_matrix import GRAPHQL_OPERATIONS
from tests.conftest import make_user
from tests.role_matrix import ApiRoute, GraphqlOp, Route

ACTORS = ["anonymous", "outsider", *[r.value for r in Role]]


def load_routes(name: str) -> list:
    routes = []
    for module in pkgutil.iter_modules(tests.__path__):
        if not module.ispkg:
            continue
        try:
            matrix = importlib.import_module(f"tests.{module.name}.matrix")
        except ModuleNotFoundError:
            continue
        routes.extend(getattr(matrix, name, []))
    return routes


ROUTES: list[Route] = load_routes("ROUTES")
API_ROUTES: list[ApiRoute] = load_routes("API_ROUTES")


def team_url_names(resolver=None, inside_team=False) -> set[str]:
    names = set()
    for entry in (resolver or get_resolver()).url_patterns:
        in_team = inside_team or "<slug:team>" in str(entry.pattern)
        if isinstance(entry, URLResolver):
            names |= team_url_names(entry, in_team)
        elif isinstance(entry, URLPattern) and in_team and entry.name:
            names.add(entry.name)
    return names


def test_every_team_view_has_a_route():
    missing = team_url_names() - {route.name for route in ROUTES}
    assert not missing, f"Add these URL names to a tests/<app>/matrix.py: {sorted(missing)}"


def test_routes_name_real_capabilities():
    for route in ROUTES:
        role_can("admin", route.capability)  # raises on an unknown capability


def client_for(actor: str, team: Team) -> Client:
    client = Client()
    if actor == "anonymous":
        return client
    user = make_user(f"{actor}@matrix.example.com")
    if actor != "outsider":
        Membership.objects.create(user=user, team=team, role=actor)
    client.force_login(user)
    return client


def expected(actor: str, capability: str) -> str:
    if actor == "anonymous":
        return "login"
    if actor == "outsider":
        return "404"
    return "allowed" if role_can(actor, capability) else "403"


def assert_answer(status: int, want: str, *, login: tuple[int, ...]) -> None:
    if want == "login":
        assert status in login
    elif want in ("404", "403"):
        assert status == int(want)
    else:
        assert status not in (401, 403, 404, 405), status
        assert status < 500


CASES = [
    pytest.param(route, method, actor, id=f"{route.name}-{method}-{actor}")
    for route in ROUTES
    for method in route.methods
    for actor in ACTORS
]


@pytest.mark.parametrize(("route", "method", "actor"), CASES)
def test_role_matrix(db, route: Route, method: str, actor: str):
    team = Team.objects.create(name="Matrix", slug="matrix", is_personal=False)
    owner = make_user("owner@matrix.example.com")
    Membership.objects.create(user=owner, team=team, role=Role.ADMIN)
    url = reverse(route.name, kwargs=route.kwargs_for(team))
    client = client_for(actor, team)
    response = getattr(client, method.lower())(url, route.data)
    if expected(actor, route.capability) == "login" and response.status_code == 302:
        assert "/accounts/login/" in response["Location"]
    assert_answer(response.status_code, expected(actor, route.capability), login=(302, 401, 403))


def api_actions(resolver=None) -> set[tuple[str, str]]:
    """(url name, HTTP method) of every REST API action under /api/ and /v1/ (RunPod's)."""
    actions = set()
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            if resolver is not None or str(entry.pattern).startswith(("api/", "v1/")):
                actions |= api_actions(entry)
        elif resolver is not None and entry.name:
            view = entry.callback
            methods = getattr(view, "actions", None) or {
                method: method for method in view.cls.http_method_names
            }
            actions |= {(entry.name, m.upper()) for m in methods if m not in ("options", "head")}
    return actions


def test_every_api_action_has_a_route():
    declared = {(route.name, route.method) for route in API_ROUTES}
    missing = api_actions() - declared
    assert not missing, f"Add these API actions to a tests/<app>/matrix.py: {sorted(missing)}"


API_CASES = [
    pytest.param(route, actor, id=f"{route.name}-{route.method}-{actor}")
    for route in API_ROUTES
    for actor in ACTORS
]


@pytest.mark.parametrize(("route", "actor"), API_CASES)
def test_api_role_matrix(db, route: ApiRoute, actor: str):
    team = Team.objects.create(name="Matrix", slug="matrix", is_personal=False)
    owner = make_user("owner@matrix.example.com")
    Membership.objects.create(user=owner, team=team, role=Role.ADMIN)
    client = client_for(actor, team)  # first: some objects belong to the acting member
    url = reverse(route.name, kwargs=route.kwargs_for(team)) + f"?team={team.slug}"
    response = client.generic(
        route.method, url, json.dumps(route.data), content_type="application/json"
    )
    assert_answer(response.status_code, expected(actor, route.capability), login=(401, 403))


# /graphql: every root field (query or mutation) of the schema, each actor, through a session
# with ?team= (the matrix's way in; API keys act with their creator's role, tests/api/).
# Refusals are GraphQL errors with HTTP 200: NOT_FOUND for outsiders, FORBIDDEN for roles.
GRAPHQL_CASES = [
    pytest.param(op, actor, id=f"graphql-{op.field}-{actor}")
    for op in GRAPHQL_OPERATIONS
    for actor in ACTORS
]


def test_every_graphql_operation_has_a_route():
    fields = set(graphql_schema.query_type.fields) | set(graphql_schema.mutation_type.fields)
    declared = {op.field for op in GRAPHQL_OPERATIONS}
    assert fields == declared, f"Add these to tests/api/graphql_matrix.py: {fields - declared}"
    assert all(op.capability == GRAPHQL_CAPABILITY[op.field] for op in GRAPHQL_OPERATIONS)


@pytest.mark.parametrize(("op", "actor"), GRAPHQL_CASES)
def test_graphql_role_matrix(db, op: GraphqlOp, actor: str):
    team = Team.objects.create(name="Matrix", slug="matrix", is_personal=False)
    owner = make_user("owner@matrix.example.com")
    Membership.objects.create(user=owner, team=team, role=Role.ADMIN)
    document = op.document(team)
    response = client_for(actor, team).post(
        f"/graphql?team={team.slug}", {"query": document}, content_type="application/json"
    )
    want = expected(actor, op.capability)
    if want == "login":
        assert response.status_code in (401, 403)
        return
    assert response.status_code == 200
    codes = [e.get("extensions", {}).get("code") for e in response.json().get("errors", [])]
    if want == "404":
        assert codes == ["NOT_FOUND"], response.json()
    elif want == "403":
        assert codes == ["FORBIDDEN"], response.json()
    else:
        assert not {"NOT_FOUND", "FORBIDDEN", "INTERNAL_SERVER_ERROR"} & set(codes), codes
