"""schemathesis against /api/v1/schema/: every REST operation, called in-process through the
WSGI app on PostgreSQL with a real read-write key of a seeded, funded team, must never answer
5xx nor send a response its schema does not describe.

The run is bounded (a few examples an operation, a deadline, no stateful phase) so it fits in
about a minute here. Deploys are real service calls, but inside the test's transaction: the
runtime start is scheduled on commit, which never comes, so no pod process starts."""

from collections.abc import Iterator

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from pods.models import NetworkVolume
from teams.models import Membership, Role, Team, User
from tests.api.test_api_keys import make_key
from tests.pods.factories import catalogue, fund, http_template, stopped_pod

# Fuzzed cases per operation (42 operations): the whole run stays near a minute here. A run
# with 40 cases each, the coverage phase on and random seeds (11 min) found nothing more.
MAX_EXAMPLES = 6
CHECKS = [not_a_server_error, response_schema_conformance]


# Loaded at collection (pytest-django has set Django up by then); schemathesis's lazy
# from_fixture loader does not run under pytest 9.2 (it sets Node._nodeid, gone there).
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", WSGIHandler())
# Random fuzzing only: the coverage phase's boundary cases are hundreds a deploy (minutes here).
schema.config.phases.coverage.enabled = False


@pytest.fixture
def fuzz_key(db) -> Iterator[str]:
    """A read-write key of a funded team, with a pod, a template and a network volume, so the
    lists answer real rows for the schema check. Its admin has no password: hashing one for
    each of ~40 operations was most of the run's time."""
    user = User.objects.create_user(email="fuzz@example.com")
    team = Team.objects.create(name="Fuzz", slug="fuzz", is_personal=False)
    Membership.objects.create(user=user, team=team, role=Role.ADMIN)
    parts = catalogue()
    fund(team)
    stopped_pod(team, parts["machine"])
    http_template(team)
    NetworkVolume.objects.create(team=team, name="data", size_gb=10, data_center=parts["dc"])
    # WSGIHandler closes the database connection when a request ends, which would end the
    # test's transaction; Django's test client disconnects the same receiver for that reason.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield make_key(team, user)[1]
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=2000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same cases every run: a failure in CI reproduces locally
    database=None,  # no .hypothesis/ directory in the checkout
)
def test_no_server_errors_and_no_responses_outside_the_schema(case, fuzz_key):
    case.call_and_validate(headers={"Authorization": f"Bearer {fuzz_key}"}, checks=CHECKS)


def test_a_pods_missing_template_and_network_volume_are_nullable_in_the_schema():
    """What the run found first: both are null for most pods, and the schema said string."""
    pod = schema.raw_schema["components"]["schemas"]["Pod"]["properties"]
    assert pod["template"]["nullable"] and pod["network_volume"]["nullable"]
