"""/v1/endpoints as runpodctl 2.7.2 calls it (`internal/api/endpoints.go`: ListEndpoints,
GetEndpoint, UpdateEndpoint with EndpointUpdateRequest, DeleteEndpoint) and RunPod's
EndpointCreateInput for POST. Answers are decoded with runpodctl's Endpoint struct
(tests/api/runpodctl_structs.py); writes go through serverless.services (audited, version
raised); refused input changes nothing; outsiders get 404, Basic members and read-only keys
403 on writes; the list's query count does not grow with the number of endpoints."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from serverless.models import Endpoint, Worker
from teams.models import ApiKey, AuditEvent, Membership, Role, Team
from tests.api.runpodctl_structs import ENDPOINT, POD, TEMPLATE, decode
from tests.api.test_api_keys import bearer, make_key
from tests.conftest import make_user
from tests.pods.factories import stopped_pod
from tests.serverless.factories import an_endpoint, serverless_template

A40 = "NVIDIA A40"


@pytest.fixture
def template(team):
    return serverless_template(team)


def call(client, method: str, path: str, secret: str, body=None):
    """As runpodctl's Client.request: Bearer key, a JSON body (or none), no trailing slash."""
    data = json.dumps(body) if body is not None else ""
    return client.generic(
        method, f"/v1{path}", data, content_type="application/json", **bearer(secret)
    )


def role_secret(team, role: str) -> str:
    user = make_user(f"{role}@rest.example.com")
    Membership.objects.create(user=user, team=team, role=role)
    return make_key(team, user)[1]


# Reading ------------------------------------------------------------------------------------


def test_it_lists_endpoints_as_a_bare_array_runpodctl_decodes(client, parts, team, secret):
    first = an_endpoint(team, name="first", idle_timeout=7)
    second = an_endpoint(team, name="second", funded=False)
    response = call(client, "GET", "/endpoints", secret)
    assert response.status_code == 200
    listed = decode(response.content, ENDPOINT, many=True)
    assert [e["id"] for e in listed] == [first.public_id, second.public_id]
    assert listed[0] == {
        "id": first.public_id,
        "name": "first",
        "templateId": first.template.public_id,
        "gpuIds": "AMPERE_48",  # the A40 is the whole of its pool in this catalogue
        "instanceIds": [],
        "networkVolumeId": None,
        "networkVolumeIds": [],
        "idleTimeout": 7,
        "scalerType": "QUEUE_DELAY",
        "scalerValue": first.scaler_value,
        "workersMin": 0,
        "workersMax": first.workers_max,
        "gpuCount": 1,
        "minCudaVersion": None,
        "flashboot": False,
        "computeType": "GPU",
        "executionTimeoutMs": first.execution_timeout * 1000,
    }
    assert response.json()[0]["gpuTypeIds"] == [A40]  # the spec's name for them


def test_it_includes_the_template_and_workers_when_asked(client, parts, team, secret):
    endpoint = an_endpoint(team)
    pod = stopped_pod(team, parts["machine"], name="worker pod")
    Worker.objects.create(endpoint=endpoint, secret_hash="x" * 64, version=1, pod=pod)
    plain = call(client, "GET", f"/endpoints/{endpoint.public_id}", secret).json()
    assert "template" not in plain and "workers" not in plain
    path = f"/endpoints/{endpoint.public_id}?includeTemplate=true&includeWorkers=true"
    response = call(client, "GET", path, secret)
    found = decode(response.content, ENDPOINT)
    assert decode(json.dumps(found["template"]), TEMPLATE)["id"] == endpoint.template.public_id
    assert found["template"]["isServerless"] is True
    [worker] = found["workers"]
    assert decode(json.dumps(worker), POD)["id"] == pod.public_id
    assert worker["endpointId"] == endpoint.public_id


def test_the_list_reads_a_fixed_number_of_queries(client, parts, team, secret):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            path = "/endpoints?includeTemplate=true&includeWorkers=true"
            assert call(client, "GET", path, secret).status_code == 200
        return len(queries)

    def grow() -> None:
        endpoint = an_endpoint(team, funded=False)
        pod = stopped_pod(team, parts["machine"])
        Worker.objects.create(
            endpoint=endpoint, secret_hash=pod.public_id * 4 + "x" * 8, version=1, pod=pod
        )

    grow()
    count()  # the key's first use records last_used_at
    one = count()
    for _ in range(4):
        grow()
    assert count() == one <= 6  # key, membership, endpoints, GPU types, workers with pods


def test_another_teams_endpoint_is_not_found(client, parts, team, charlie):
    endpoint = an_endpoint(team)
    other = Team.objects.create(name="Other", slug="other", is_personal=False)
    Membership.objects.create(user=charlie, team=other, role=Role.ADMIN)
    outsider = make_key(other, charlie)[1]
    assert call(client, "GET", "/endpoints", outsider).json() == []
    for method in ("GET", "PATCH", "DELETE"):
        response = call(client, method, f"/endpoints/{endpoint.public_id}", outsider, {})
        assert response.status_code == 404
        assert "not found" in response.json()["error"]
    assert Endpoint.objects.filter(pk=endpoint.pk).exists()


# Creating -----------------------------------------------------------------------------------


def test_it_creates_an_endpoint_from_an_endpoint_create_input(
    client, parts, team, template, secret
):
    body = {
        "name": "rest",
        "templateId": template.public_id,
        "computeType": "GPU",
        "gpuTypeIds": [A40],
        "gpuCount": 1,
        "workersMin": 0,
        "workersMax": 2,
        "idleTimeout": 9,
        "scalerType": "REQUEST_COUNT",
        "scalerValue": 3,
        "executionTimeoutMs": 600000,
        "flashboot": False,
    }
    response = call(client, "POST", "/endpoints", secret, body)
    assert response.status_code == 201, response.content
    created = decode(response.content, ENDPOINT)
    endpoint = Endpoint.objects.get()
    assert created["id"] == endpoint.public_id
    assert (endpoint.name, endpoint.gpu_type_ids, endpoint.workers_max) == ("rest", [A40], 2)
    assert (endpoint.idle_timeout, endpoint.scaler_type, endpoint.scaler_value) == (
        9,
        "REQUEST_COUNT",
        3,
    )
    assert endpoint.execution_timeout == 600
    event = AuditEvent.objects.get(action="endpoint.created")
    assert event.resource_id == endpoint.public_id


def test_it_takes_runpodctls_gpu_pools_in_gpu_ids(client, parts, team, template, secret):
    body = {"name": "pools", "templateId": template.public_id, "gpuIds": "AMPERE_48"}
    response = call(client, "POST", "/endpoints", secret, body)
    assert response.status_code == 201, response.content
    assert Endpoint.objects.get().gpu_type_ids == [A40]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "x", "gpuTypeIds": [A40]}, "templateId"),
        ({"name": "x", "templateId": "nope", "gpuTypeIds": [A40]}, "templateId"),
        ({"name": "x", "templateId": "T", "gpuTypeIds": ["NVIDIA Z9"]}, "gpuIds"),
        ({"name": "x", "templateId": "T", "gpuTypeIds": [A40], "workersMax": "3"}, "workersMax"),
        ({"name": "x", "templateId": "T", "gpuTypeIds": [A40], "workerMax": 3}, "workerMax"),
        ({"name": "x", "templateId": "T", "gpuTypeIds": [A40], "workersMax": -1}, "workersMax"),
        (
            {"name": "x", "templateId": "T", "gpuTypeIds": [A40], "dataCenterIds": ["EU-RO-1"]},
            "dataCenterIds",
        ),
        ({"name": "x", "templateId": "T", "gpuTypeIds": [A40], "env": {"A": "1"}}, "env"),
        ({"name": "x", "templateId": "T", "computeType": "TPU"}, "computeType"),
    ],
)
def test_it_refuses_bad_input_by_name_and_creates_nothing(
    client, parts, team, template, secret, body, message
):
    body = {**body, "templateId": template.public_id} if body.get("templateId") == "T" else body
    response = call(client, "POST", "/endpoints", secret, body)
    assert response.status_code == 400, response.content
    assert message in response.json()["error"]
    assert response.json()["status"] == 400
    assert not Endpoint.objects.exists()


def test_a_body_that_is_no_object_is_refused(client, parts, team, secret):
    response = client.post(
        "/v1/endpoints", "[1]", content_type="application/json", **bearer(secret)
    )
    assert response.status_code == 400
    assert "JSON object" in response.json()["error"]
    broken = client.post("/v1/endpoints", "{", content_type="application/json", **bearer(secret))
    assert broken.status_code == 400
    assert broken.json()["error"]


# Updating and deleting ----------------------------------------------------------------------


@pytest.mark.parametrize("how", [("PATCH", ""), ("POST", "/update")])
def test_it_updates_with_runpodctls_endpoint_update_request(client, parts, team, secret, how):
    endpoint = an_endpoint(team, name="old")
    method, suffix = how
    # runpodctl serverless update --name new --workers-max 4 --idle-timeout 11
    #   --scale-by requests --scale-threshold 2 (EndpointUpdateRequest, omitempty fields)
    body = {
        "name": "new",
        "workersMax": 4,
        "idleTimeout": 11,
        "scalerType": "REQUEST_COUNT",
        "scalerValue": 2,
    }
    response = call(client, method, f"/endpoints/{endpoint.public_id}{suffix}", secret, body)
    assert response.status_code == 200, response.content
    updated = decode(response.content, ENDPOINT)
    assert (updated["name"], updated["workersMax"], updated["idleTimeout"]) == ("new", 4, 11)
    endpoint.refresh_from_db()
    assert (endpoint.name, endpoint.workers_max, endpoint.scaler_type) == (
        "new",
        4,
        "REQUEST_COUNT",
    )
    assert endpoint.version == 2
    assert endpoint.gpu_type_ids == [A40]  # what the request left out is kept
    assert AuditEvent.objects.filter(action="endpoint.updated").count() == 1


def test_a_refused_update_changes_nothing(client, parts, team, secret):
    endpoint = an_endpoint(team, name="old")
    body = {"name": "new", "workersMin": 5, "workersMax": 1}
    response = call(client, "PATCH", f"/endpoints/{endpoint.public_id}", secret, body)
    assert response.status_code == 400
    assert "workers" in response.json()["error"].lower()
    endpoint.refresh_from_db()
    assert (endpoint.name, endpoint.version) == ("old", 1)
    assert not AuditEvent.objects.filter(action="endpoint.updated").exists()


def test_it_deletes_an_endpoint(client, parts, team, secret):
    endpoint = an_endpoint(team)
    response = call(client, "DELETE", f"/endpoints/{endpoint.public_id}", secret)
    assert response.status_code == 204
    assert not Endpoint.objects.exists()
    assert AuditEvent.objects.get(action="endpoint.deleted").resource_id == endpoint.public_id


# Access -------------------------------------------------------------------------------------


def test_a_basic_member_reads_but_cannot_write(client, parts, team, template):
    endpoint = an_endpoint(team, name="old")
    basic = role_secret(team, Role.BASIC)
    assert call(client, "GET", "/endpoints", basic).status_code == 200
    assert call(client, "GET", f"/endpoints/{endpoint.public_id}", basic).status_code == 200
    body = {"name": "x", "templateId": template.public_id, "gpuTypeIds": [A40]}
    refused = [
        call(client, "POST", "/endpoints", basic, body),
        call(client, "PATCH", f"/endpoints/{endpoint.public_id}", basic, {"name": "new"}),
        call(client, "DELETE", f"/endpoints/{endpoint.public_id}", basic),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert "deploy" in refused[0].json()["error"]
    assert Endpoint.objects.get().name == "old"


def test_a_billing_member_cannot_read_endpoints(client, parts, team):
    assert call(client, "GET", "/endpoints", role_secret(team, Role.BILLING)).status_code == 403


def test_a_read_only_key_reads_but_cannot_write(client, parts, team, alice, template):
    endpoint = an_endpoint(team, name="old")
    secret = make_key(team, alice, ApiKey.Permission.READ_ONLY)[1]
    assert call(client, "GET", "/endpoints", secret).status_code == 200
    body = {"name": "x", "templateId": template.public_id, "gpuTypeIds": [A40]}
    assert call(client, "POST", "/endpoints", secret, body).status_code == 403
    response = call(client, "PATCH", f"/endpoints/{endpoint.public_id}", secret, {"name": "n"})
    assert response.status_code == 403
    assert "read-only" in response.json()["error"]
    assert Endpoint.objects.get().name == "old"


def test_no_key_or_a_wrong_key_is_refused(client, parts, team):
    assert client.get("/v1/endpoints").status_code in (401, 403)
    response = call(client, "GET", "/endpoints", "rpa_wrong")
    assert response.status_code == 401
    assert response.json()["error"] == "Invalid API key."
