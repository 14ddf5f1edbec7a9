"""Odd query values never make the server fail or loop: every console GET page (the role
matrix's routes, plus the pages outside a team) and the API's lists are driven, as a team
admin with a pod, with unicode digits, huge and negative numbers, empty and long strings in
every query parameter the views read; none may answer 5xx. The wizard's own counts get
exact checks first (the requests that answered 500 or looped 200,000 times)."""

from __future__ import annotations

import re
import time

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from api.pagination import MAX_LIMIT, BoundedLimitOffsetPagination
from billing.forms import LedgerFilterForm
from pods.forms import MAX_ENV_ROWS, DeployForm
from pods.models import Machine, Pod
from teams.forms import AuditFilterForm
from teams.services import create_api_key
from tests.conftest import login
from tests.pods.factories import catalogue, fund, stopped_pod
from tests.test_role_matrix import ROUTES

# The names each view reads from its query string (grep request.GET, query_params and the
# forms bound to them); COMMON are read on every page (pagination, partial renders, the
# referral cookie's middleware, the sign-in hand-off).
COMMON = ["page", "partial", "zero_gpus", "next", "ref"]
WIZARD = [*DeployForm.base_fields, "action", "env_rows", "env_key_0", "env_value_0", "env_key_1"]
READS = {
    "pod_deploy": WIZARD,
    "billing_ledger": list(LedgerFilterForm.base_fields),
    "billing_ledger_csv": list(LedgerFilterForm.base_fields),
    "audit_log": list(AuditFilterForm.base_fields),
    "audit_log_csv": list(AuditFilterForm.base_fields),
}
ODD_STRINGS = ["", " ", "²", "³²", "٣", "１２", "߁", "Ⅻ", "-1", "-0", "0", "+1", "1.5", "1e9"]
ODD_STRINGS += ["NaN", "inf", "-Infinity", "0x10", " 7 ", "9" * 20, "9" * 30, "9" * 5000]
ODD_STRINGS += ["\x00", "%", "../..", "'", "null", "[]", "2026-02-30", "0001-01-01"]
ODD_STRINGS += ["9999-12-31", "99999-01-01", "remove_env_²", "remove_env_99999999999", "x" * 3000]
NUMBERS = st.integers(min_value=-(10**40), max_value=10**40).map(str)
HUGE = st.integers(min_value=2**63 - 1, max_value=10**40).map(str)  # past PostgreSQL's bigint
# What str.isdigit() or int() take that a bounded field must not: superscripts, fractions,
# circled, Roman, Arabic-Indic, fullwidth and Devanagari digits, mixed with ASCII ones.
NUMBER_LIKE = st.text(st.sampled_from("0123456789²³¹½①Ⅻ٣１५߁-+.e "), min_size=1, max_size=25)
UNICODE_DIGITS = st.text(st.characters(categories=["Nd", "No", "Nl"]), min_size=1, max_size=6)
ODD = st.one_of(
    st.sampled_from(ODD_STRINGS),
    NUMBER_LIKE,
    NUMBERS,
    HUGE,
    UNICODE_DIGITS,
    st.text(max_size=200),
    st.builds("remove_env_{}".format, st.one_of(NUMBER_LIKE, NUMBERS)),
)
# Each page is driven this many times; the wizard, which reads the most, more.
EXAMPLES, WIZARD_EXAMPLES = 8, 60


def queries(names: list[str]):
    """Query dicts over `names`, about half of them odd each time."""
    return st.dictionaries(st.sampled_from(names), ODD, max_size=max(len(names) // 2, 3))


def bounded(examples: int):
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,  # no .hypothesis folder in the checkout
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def assert_no_server_error(client, url: str, query: dict) -> None:
    response = client.get(url, query)
    assert response.status_code < 500, (url, query, response.status_code)


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """The cast's passwords hashed cheaply: this module sets up ~70 tests on two cores."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin(alice, team):
    """alice, admin of acme, whose team has funds and a stopped pod."""
    fund(team)
    return login(alice)


@pytest.fixture
def wizard_url(team) -> str:
    catalogue()
    return reverse("pod_deploy", args=[team.slug])


# The wizard's counts, exactly -------------------------------------------------------------


def env_row_names(html: str) -> set[str]:
    return set(re.findall(r'name="(env_key_\d+)"', html))


def test_a_huge_row_count_renders_at_most_the_cap_and_returns_quickly(admin, wizard_url):
    began = time.monotonic()
    response = admin.get(wizard_url, {"action": "remove_env_0", "env_rows": "200000"})
    took = time.monotonic() - began

    assert response.status_code == 200
    assert len(env_row_names(response.content.decode())) == MAX_ENV_ROWS - 1
    assert took < 5


def test_the_add_button_stops_at_fifty_rows(admin, wizard_url):
    html = admin.post(wizard_url, {"action": "add_env", "env_rows": "50"}).content.decode()

    assert len(env_row_names(html)) == MAX_ENV_ROWS
    # The button stays in the page, hidden, for the browser to show again when a row goes.
    assert re.search(r'data-testid="env-rows-full" data-env-full>', html)
    assert re.search(r'value="add_env"[^>]* hidden>', html)


@pytest.mark.parametrize(
    "query",
    [
        {"env_rows": "²"},
        {"min_vram": "²"},
        {"action": "remove_env_²", "env_rows": "2"},
        {"action": "remove_env_5", "env_rows": "2"},
        {"env_rows": "-3"},
        {"env_rows": "9" * 5000},
        {"http_ports": "²"},
        {"container_disk_gb": "²", "volume_gb": "9" * 30},
        # PostgreSQL refuses a NUL byte in any text comparison: lookups must not reach it.
        {"template": "\x00"},
        {"data_center": "EU\x00", "cloud_type": "\x00"},
        {"gpu_type": "\x00", "network_volume": "\x00", "cpu_instance": "\x00"},
    ],
    ids=[
        *("rows", "vram", "remove-index", "remove-beyond", "negative", "5000-digits", "port"),
        *("disk", "nul-template", "nul-filters", "nul-choices"),
    ],
)
def test_odd_wizard_counts_are_ignored_or_refused_with_a_message(admin, wizard_url, query):
    response = admin.get(wizard_url, query)

    assert response.status_code == 200
    assert 1 <= len(env_row_names(response.content.decode())) <= MAX_ENV_ROWS


def test_a_deploy_with_an_odd_vram_filter_says_why_it_is_refused(admin, wizard_url):
    response = admin.post(wizard_url, {"action": "deploy", "min_vram": "²"})

    assert response.status_code == 400
    assert 'data-error-for="min_vram">Enter a whole number.' in response.content.decode()


@pytest.mark.parametrize("limit", ["99999999999999999999", "²", "-1", "0", "9" * 5000])
def test_the_api_clamps_or_ignores_an_odd_limit(admin, alice, team, limit):
    create_api_key(team=team, actor=alice, name="one", permission="read_only")
    query = {"team": team.slug, "limit": limit}
    response = admin.get(reverse("api-key-list"), query)

    assert response.status_code == 200
    assert len(response.json()["results"]) == 1
    past_the_end = admin.get(reverse("api-key-list"), {**query, "offset": "9" * 20})
    assert past_the_end.json()["results"] == []


def test_a_huge_limit_is_cut_to_the_maximum_page():
    request = Request(APIRequestFactory().get("/", {"limit": "99999999999999999999"}))

    assert BoundedLimitOffsetPagination().get_limit(request) == MAX_LIMIT == 200


# Every page, odd values in every parameter ------------------------------------------------


def ensure_pod(team) -> None:
    """A pod on the team's pages, whether or not the route's own kwargs made one."""
    if not Pod.objects.filter(team=team).exists():
        machine = Machine.objects.first() or catalogue()["machine"]
        stopped_pod(team, machine)


GET_ROUTES = [route for route in ROUTES if "GET" in route.methods]


@pytest.mark.parametrize("route", GET_ROUTES, ids=[route.name for route in GET_ROUTES])
def test_no_team_page_fails_on_odd_query_values(admin, team, route):
    url = reverse(route.name, kwargs=route.kwargs_for(team))
    ensure_pod(team)
    examples = WIZARD_EXAMPLES if route.name == "pod_deploy" else EXAMPLES

    @bounded(examples)
    @given(query=queries(COMMON + READS.get(route.name, [])))
    def drive(query: dict) -> None:
        assert_no_server_error(admin, url, query)

    drive()


def outside_url_names(resolver=None, prefix: str = "") -> dict[str, bool]:
    """URL names outside /t/<team>/, /admin/, /api/ and /v1/ (RunPod's REST API, driven in
    tests/api/test_runpod_rest_queries.py): name -> whether it takes arguments."""
    names = {}
    for entry in (resolver or get_resolver()).url_patterns:
        pattern = prefix + str(entry.pattern)
        if pattern.startswith(("admin/", "api/", "v1/", "t/<slug:team>/")):
            continue
        if isinstance(entry, URLResolver):
            names |= outside_url_names(entry, pattern)
        elif isinstance(entry, URLPattern) and entry.name:
            names[entry.name] = "<" in pattern
    return names


# The pages outside a team that take arguments, with values that name nothing (their query
# string is what is under test).
SERVERLESS_ENDPOINT_ROUTES = ("run", "runsync", "purge-queue", "health")
SERVERLESS_JOB_ROUTES = ("status", "stream", "cancel", "retry")
WITH_ARGUMENTS = [
    ("account_confirm_email", {"key": "no-such-key"}),
    ("account_reset_password_from_key", {"uidb36": "1", "key": "no-such-key"}),
    ("invite_accept", {"token": "no-such-invite"}),
    ("proxy_auth", {"target": "nosuchpod-8080"}),
    *[(f"v2-{name}", {"endpoint_id": "nosuchendpoint"}) for name in SERVERLESS_ENDPOINT_ROUTES],
    *[(f"v2-{name}", {"endpoint_id": "no", "job_id": "no"}) for name in SERVERLESS_JOB_ROUTES],
    ("v2-ping", {"endpoint_id": "nosuch", "worker_id": "nosuch"}),
    *[
        (f"v2-{name}", {"endpoint_id": "nosuch", "worker_id": "nosuch", "job_id": "nosuch"})
        for name in ("job-done", "job-stream")
    ],
]
PLAIN = sorted(name for name, takes_arguments in outside_url_names().items() if not takes_arguments)
OUTSIDE = [(name, {}) for name in PLAIN] + WITH_ARGUMENTS


@pytest.mark.parametrize(("name", "kwargs"), OUTSIDE, ids=[name for name, _ in OUTSIDE])
def test_no_page_outside_a_team_fails_on_odd_query_values(admin, name, kwargs):
    url = reverse(name, kwargs=kwargs)

    @bounded(EXAMPLES)
    @given(query=queries(COMMON))
    def drive(query: dict) -> None:
        assert_no_server_error(admin, url, query)

    drive()


def test_every_page_outside_a_team_is_driven():
    """A new URL with arguments outside /t/<team>/ must be added to WITH_ARGUMENTS."""
    with_arguments = {
        name for name, takes_arguments in outside_url_names().items() if takes_arguments
    }
    assert with_arguments == {name for name, _ in WITH_ARGUMENTS}


@pytest.mark.parametrize("name", ["api-key-list", "api-me"])
def test_no_api_list_fails_on_odd_query_values(admin, alice, team, name):
    url = reverse(name)
    create_api_key(team=team, actor=alice, name="one", permission="read_only")  # a page to cut

    paging = st.fixed_dictionaries({"limit": ODD}, optional={"offset": ODD})

    @bounded(EXAMPLES * 3)
    @given(paging=paging, who=queries(["team", "api_key"]))
    def drive(paging: dict, who: dict) -> None:
        # Mostly the admin's own team, so odd paging reaches the query; sometimes odd keys.
        assert_no_server_error(admin, url, {"team": team.slug, **who, **paging})

    drive()
