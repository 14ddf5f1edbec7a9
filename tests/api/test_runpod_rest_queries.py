"""Odd query values never make /v1/ fail: every GET route of RunPod's REST API (lists and a
detail of each resource, with usage to sum) is driven with unicode digits, huge numbers, NUL
bytes, impossible dates and long strings in every query parameter it reads; none may answer
5xx. The helpers are tests/test_query_bounds.py's, which leaves /v1/ to this file."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given

from pods.metering import meter
from pods.models import NetworkVolume, PodTemplate
from tests.api.test_api_keys import bearer, make_key
from tests.pods.factories import catalogue, posted_by, stopped_pod
from tests.referrals.conftest import gpu_machine, running_pod
from tests.serverless.factories import an_endpoint
from tests.test_query_bounds import EXAMPLES, bounded, queries

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
POD_FILTERS = [
    "computeType",
    "name",
    "gpuTypeId",
    "dataCenterId",
    "desiredStatus",
    "id",
    "imageName",
    "templateId",
    "networkVolumeId",
    "includeMachine",
    "includeNetworkVolume",
    "endpointId",
]
BILLING = ["startTime", "endTime", "bucketSize", "grouping", "podId", "gpuTypeId", "endpointId"]


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def paths(team) -> dict[str, list[str]]:
    """Each GET path with the parameters it reads, over a team with one of everything."""
    parts = catalogue()
    pod = stopped_pod(team, parts["machine"])
    endpoint = an_endpoint(team)
    volume = NetworkVolume.objects.create(team=team, name="v", size_gb=1, data_center=parts["dc"])
    template = PodTemplate.objects.create(team=team, name="t", image="ubuntu")
    running_pod(team, gpu_machine("5.00"), since=T0)
    meter(until=posted_by(T0 + timedelta(hours=2), team))
    includes = ["includeTemplate", "includeWorkers"]
    templates = ["includeRunpodTemplates", "includePublicTemplates"]
    return {
        "/v1/pods": POD_FILTERS,
        f"/v1/pods/{pod.public_id}": POD_FILTERS,
        "/v1/endpoints": includes,
        f"/v1/endpoints/{endpoint.public_id}": includes,
        "/v1/templates": templates,
        f"/v1/templates/{template.public_id}": templates,
        "/v1/networkvolumes": ["size"],
        f"/v1/networkvolumes/{volume.public_id}": ["size"],
        "/v1/containerregistryauth": ["name"],
        "/v1/billing/pods": BILLING,
        "/v1/billing/endpoints": BILLING,
        "/v1/billing/networkvolumes": BILLING,
    }


def drive(client, path: str, names: list[str], headers: dict) -> None:
    @bounded(EXAMPLES * 3)
    @given(query=queries(names))
    def run(query: dict) -> None:
        response = client.get(path, query, **headers)
        assert response.status_code < 500, (path, query, response.status_code)

    run()


def test_no_v1_route_fails_on_odd_query_values(client, team, alice, paths):
    headers = bearer(make_key(team, alice)[1])
    for path, names in paths.items():
        drive(client, path, names, headers)


@pytest.mark.parametrize(
    "query",
    [
        {"startTime": "2026-02-30T00:00:00Z"},
        {"endTime": "0001-01-01T00:00:00Z"},
        {"startTime": "0001-01-01T00:00:00Z", "bucketSize": "year"},
        {"endTime": "9999-12-31T23:59:59Z", "startTime": "9999-12-01T00:00:00Z"},
        {"startTime": "2026-11-02T10:00:00+99:00"},
    ],
)
def test_impossible_times_are_refused_or_answered(client, team, alice, query):
    response = client.get("/v1/billing/pods", query, **bearer(make_key(team, alice)[1]))
    assert response.status_code in (200, 400), response.content
