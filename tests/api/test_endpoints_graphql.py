"""Serverless endpoints over /graphql on PostgreSQL: the documents runpod-python 1.12.0 builds
(`create_endpoint`, `get_endpoints`, `update_endpoint_template`) and runpodctl 2.7.2 sends with
variables (`serverless create`, its model-reference round-trip, `serverless update
--template-id`), and the real SDK against a live server. Writes go through
serverless.services (audited, version raised); GPU pools map to our GPU types; refused input
changes nothing; another team's endpoint is not found; roles and read-only keys are refused."""

import os
import tempfile

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from api.graphql import pools
from pods.models import GpuType, NetworkVolume, PodTemplate
from serverless.models import Endpoint
from teams.models import ApiKey, AuditEvent, Role
from teams.services import issue_pod_api_key
from tests.api.runpodctl_documents import RUNPODCTL_DOCUMENTS
from tests.api.test_api_keys import make_key
from tests.api.test_graphql import error_code, gql, member_secret, post
from tests.sdk_driver import sdk_process
from tests.serverless.factories import an_endpoint, serverless_template

A40, RTX = "NVIDIA A40", "NVIDIA GeForce RTX 4090"
# runpod-python's queries/endpoints.py QUERY_ENDPOINT, as sent.
GET_ENDPOINTS = """
query Query {
  myself {
    endpoints {
      aiKey
      gpuIds
      id
      idleTimeout
      name
      networkVolumeId
      locations
      scalerType
      scalerValue
      templateId
      type
      userId
      version
      workersMax
      workersMin
      workersStandby
      gpuCount
      env {
        key
        value
      }
      createdAt
      networkVolume {
        id
        dataCenterId
      }
    }
  }
}
"""


def sdk_create(template_id: str, **fields) -> str:
    """runpod-python's mutations/endpoints.py generate_endpoint_mutation, field for field
    (gpuIds defaults to AMPERE_48, a pool of the test catalogue; the SDK's is AMPERE_16)."""
    values = {
        "name": '"sdk"',
        "templateId": f'"{template_id}"',
        "gpuIds": '"AMPERE_48"',
        "networkVolumeId": '""',
        "locations": '""',
        "idleTimeout": "5",
        "scalerType": '"QUEUE_DELAY"',
        "scalerValue": "4",
        "workersMin": "0",
        "workersMax": "3",
        "gpuCount": "1",
        **fields,
    }
    body = ", ".join(f"{name}: {value}" for name, value in values.items())
    return (
        f"mutation {{ saveEndpoint( input: {{ {body} }} ) {{ id name templateId gpuIds "
        "networkVolumeId locations idleTimeout scalerType scalerValue workersMin workersMax "
        "allowedCudaVersions gpuCount flashBootType } }"
    )


def update_template(endpoint_id: str, template_id: str) -> str:
    return (
        f'mutation {{ updateEndpointTemplate(input: {{templateId: "{template_id}", '
        f'endpointId: "{endpoint_id}"}}) {{ id templateId }} }}'
    )


def runpodctl(needle: str) -> str:
    return next(d for d in RUNPODCTL_DOCUMENTS if needle in d)


@pytest.fixture
def template(team):
    return serverless_template(team)


def data(result: dict, field: str):
    assert "errors" not in result, result
    return result["data"][field]


# Creating, reading, updating ----------------------------------------------------------------


@pytest.mark.django_db
def test_the_sdks_create_endpoint_creates_it_through_the_service(parts, template, secret, alice):
    document = sdk_create(
        template.public_id,
        flashBootType="FLASHBOOT",
        gpuIds='"AMPERE_48,ADA_24"',
        idleTimeout="7",
        scalerType='"REQUEST_COUNT"',
        scalerValue="2",
        workersMax="2",
    )
    saved = data(gql(document, secret), "saveEndpoint")
    endpoint = Endpoint.objects.get()
    assert saved == {
        "id": endpoint.public_id,
        "name": "sdk",
        "templateId": template.public_id,
        "gpuIds": "AMPERE_48,ADA_24",
        "networkVolumeId": None,
        "locations": "",
        "idleTimeout": 7,
        "scalerType": "REQUEST_COUNT",
        "scalerValue": 2,
        "workersMin": 0,
        "workersMax": 2,
        "allowedCudaVersions": None,
        "gpuCount": 1,
        "flashBootType": "OFF",  # FlashBoot is not offered: answered honestly
    }
    assert endpoint.gpu_type_ids == [A40, RTX] and endpoint.created_by == alice
    assert (endpoint.execution_timeout, endpoint.version, endpoint.env) == (600, 1, [])
    event = AuditEvent.objects.get(action="endpoint.created")
    assert event.actor == alice and event.details["api_key"] == ApiKey.objects.get().public_id


@pytest.mark.django_db
def test_get_endpoints_answers_every_field_the_sdk_selects(parts, team, template, secret, alice):
    volume = NetworkVolume.objects.create(team=team, name="v", size_gb=10, data_center=parts["dc"])
    endpoint = an_endpoint(
        team,
        gpu_type_ids=[A40],
        network_volume=volume,
        env=[{"key": "MODEL", "value": "tiny"}],
        created_by=alice,
        workers_min=1,
    )
    cpu = an_endpoint(team, name="cpu", gpu_type_ids=[], cpu_instance=parts["cpu"])
    listed = data(gql(GET_ENDPOINTS, secret), "myself")["endpoints"]
    assert listed[0] == {
        "aiKey": None,
        "gpuIds": "AMPERE_48",
        "id": endpoint.public_id,
        "idleTimeout": 5,
        "name": "echo",
        "networkVolumeId": volume.public_id,
        "locations": "",
        "scalerType": "QUEUE_DELAY",
        "scalerValue": 4,
        "templateId": endpoint.template.public_id,
        "type": "QB",
        "userId": str(alice.pk),
        "version": 1,
        "workersMax": 3,
        "workersMin": 1,
        "workersStandby": None,
        "gpuCount": 1,
        "env": [{"key": "MODEL", "value": "tiny"}],
        "createdAt": endpoint.created_at.isoformat(),
        "networkVolume": {"id": volume.public_id, "dataCenterId": "EU-RO-1"},
    }
    assert (listed[1]["id"], listed[1]["gpuIds"]) == (cpu.public_id, None)


@pytest.mark.django_db
def test_listing_endpoints_takes_the_same_queries_for_one_or_many(parts, team, secret):
    an_endpoint(team, name="first")
    gql(GET_ENDPOINTS, secret)  # the key's first use is recorded once
    with CaptureQueriesContext(connection) as one:
        gql(GET_ENDPOINTS, secret)
    for n in range(5):
        an_endpoint(team, name=f"more {n}")
    with CaptureQueriesContext(connection) as six:
        assert len(data(gql(GET_ENDPOINTS, secret), "myself")["endpoints"]) == 6
    assert len(six) == len(one)


@pytest.mark.django_db
def test_an_update_keeps_what_it_leaves_out_and_makes_workers_stale(parts, team, secret):
    endpoint = an_endpoint(team, gpu_type_ids=[A40], idle_timeout=9, scaler_value=3)
    document = (
        f'mutation {{ saveEndpoint(input: {{id: "{endpoint.public_id}", workersMax: 5, '
        "executionTimeoutMs: 60500}) { id name workersMax idleTimeout scalerValue gpuIds "
        "executionTimeoutMs } }"
    )
    saved = data(gql(document, secret), "saveEndpoint")
    assert saved == {
        "id": endpoint.public_id,
        "name": "echo",
        "workersMax": 5,
        "idleTimeout": 9,
        "scalerValue": 3,
        "gpuIds": "AMPERE_48",
        "executionTimeoutMs": 61_000,  # whole seconds, rounded up
    }
    endpoint.refresh_from_db()
    assert (endpoint.version, endpoint.workers_max, endpoint.execution_timeout) == (2, 5, 61)
    assert AuditEvent.objects.get(action="endpoint.updated").details["version"] == 2


@pytest.mark.django_db
def test_update_endpoint_template_swaps_the_template(parts, team, secret):
    endpoint = an_endpoint(team)
    newer = serverless_template(team)
    saved = data(
        gql(update_template(endpoint.public_id, newer.public_id), secret), "updateEndpointTemplate"
    )
    assert saved == {"id": endpoint.public_id, "templateId": newer.public_id}
    endpoint.refresh_from_db()
    assert (endpoint.template, endpoint.version) == (newer, 2)
    pod_template = PodTemplate.objects.create(team=team, name="pod", image="ubuntu")
    result = gql(update_template(endpoint.public_id, pod_template.public_id), secret)
    assert (
        error_code(result) == "BAD_USER_INPUT"
        and "not a serverless" in result["errors"][0]["message"]
    )
    endpoint.refresh_from_db()
    assert (endpoint.template, endpoint.version) == (newer, 2)


# GPU pools ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_serverless_gpu_pools_list_the_pools_offered_here(parts, secret):
    GpuType.objects.create(
        id="NVIDIA RTX A6000",
        display_name="RTX A6000",
        memory_gb=48,
        secure_price="0.76",
        community_price="0.49",
        min_bid="0.25",
        serverless_price="1.14",
    )
    GpuType.objects.filter(id=A40).update(serverless_price="1.19")
    result = data(gql(runpodctl("serverlessGpuPools"), secret), "serverlessGpuPools")
    # Cheapest serverless price first inside a pool; pools with nothing offered are left out.
    assert result == [
        {"id": "ADA_24", "gpuTypeIds": [RTX]},
        {"id": "AMPERE_48", "gpuTypeIds": ["NVIDIA RTX A6000", A40]},
    ]
    assert pools.gpu_type_ids("ampere_48, ADA_24") == ["NVIDIA RTX A6000", A40, RTX]
    # A whole pool reads back by name; part of one by GPU type id; both save back unchanged.
    assert pools.gpu_ids_text(["NVIDIA RTX A6000", A40, RTX]) == "AMPERE_48,ADA_24"
    assert pools.gpu_ids_text([A40, RTX]) == "NVIDIA A40,ADA_24"
    assert pools.gpu_type_ids("NVIDIA A40,ADA_24") == [A40, RTX]


def test_every_pool_member_is_a_gpu_type_of_one_pool():
    members = [gpu for gpus in pools.POOLS.values() for gpu in gpus]
    assert len(members) == len(set(members))
    assert "AMPERE_16" in pools.POOLS and "BLACKWELL_180" in pools.POOLS


# Refusals ----------------------------------------------------------------------------------

BAD_INPUTS = [
    ({"gpuIds": '"AMPERE_99"'}, "gpuIds: 'AMPERE_99' is not a serverless GPU pool"),
    ({"gpuIds": '"AMPERE_80"'}, "gpuIds: no GPU type of pool AMPERE_80 is offered here"),
    ({"gpuIds": '""'}, "gpuIds: name serverless GPU pools"),
    ({"workersMin": "4", "workersMax": "3"}, "workersMin: Active workers cannot exceed max"),
    ({"workersMax": "0"}, "workersMax: Ensure this value is greater than or equal to 1"),
    ({"idleTimeout": "0"}, "idleTimeout: Ensure this value is greater than or equal to 1"),
    ({"scalerType": '"SOMETIMES"'}, "scalerType: Select a valid choice"),
    ({"gpuCount": "9"}, "gpuCount: Ensure this value is less than or equal to 8"),
    ({"name": '""'}, "name: This field is required"),
    ({"locations": '"EU-RO-1"'}, "locations: pinning an endpoint to data centres"),
    ({"allowedCudaVersions": '"12.4,12.5"'}, "allowedCudaVersions: CUDA version constraints"),
    ({"networkVolumeId": '"nv-nope"'}, "networkVolumeId: no network volume 'nv-nope'"),
    ({"executionTimeoutMs": "100"}, "executionTimeoutMs: milliseconds from 5000"),
    ({"instanceIds": '["cpu3c-2-4"]'}, "Give gpuIds (GPU pools) or instanceIds"),
    ({"templateId": '"nope"'}, "templateId: no template 'nope'"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("fields", "message"), BAD_INPUTS)
def test_refused_input_is_a_clear_error_and_changes_nothing(
    parts, template, secret, fields, message
):
    result = gql(sdk_create(template.public_id, **fields), secret)
    assert error_code(result) == "BAD_USER_INPUT", result
    assert result["errors"][0]["message"].startswith(message), result["errors"][0]["message"]
    assert result["data"] == {"saveEndpoint": None}
    assert not Endpoint.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="endpoint.").exists()


@pytest.mark.django_db
def test_hostile_input_is_refused_not_a_server_error(parts, team, template, secret):
    endpoint = an_endpoint(team)
    create = runpodctl("computeType")
    for fields in [
        {"name": "a\x00b", "templateId": template.public_id, "gpuIds": "AMPERE_48"},
        {"name": "n", "templateId": "x\x00", "gpuIds": "AMPERE_48"},
        {"name": "n", "templateId": template.public_id, "instanceIds": ["cpu\x00", None]},
        {"name": "n", "templateId": template.public_id, "gpuIds": "," * 5000},
        {"name": "n" * 101, "templateId": template.public_id, "gpuIds": "AMPERE_48"},
        {"id": endpoint.public_id, "networkVolumeIds": [None, {"networkVolumeId": "v\x00"}]},
        {"id": "e\x00", "workersMax": 2},
    ]:
        result = ctl(create, secret, {"input": fields})
        assert error_code(result) in ("BAD_USER_INPUT", "NOT_FOUND"), (fields, result)
    assert Endpoint.objects.get() == endpoint
    endpoint.refresh_from_db()
    assert endpoint.version == 1


@pytest.mark.django_db
def test_a_pod_template_and_another_teams_private_template_are_refused(
    parts, team, charlie, secret
):
    theirs = serverless_template(charlie.memberships.get().team)
    pod_template = PodTemplate.objects.create(team=team, name="pod", image="ubuntu")
    for template, message in [(theirs, "no template"), (pod_template, "not a serverless")]:
        result = gql(sdk_create(template.public_id, gpuIds='"AMPERE_48"'), secret)
        assert message in result["errors"][0]["message"]
    assert not Endpoint.objects.exists()


@pytest.mark.django_db
def test_another_teams_endpoint_is_not_found(parts, team, charlie, secret):
    theirs = an_endpoint(charlie.memberships.get().team, name="theirs")
    mine = an_endpoint(team, name="mine")
    save = (
        f'mutation {{ saveEndpoint(input: {{id: "{theirs.public_id}", workersMax: 9}}) {{ id }} }}'
    )
    for document in [save, update_template(theirs.public_id, mine.template.public_id)]:
        result = gql(document, secret)
        assert error_code(result) == "NOT_FOUND", result
    listed = data(gql("{ myself { endpoints { id } } }", secret), "myself")["endpoints"]
    assert listed == [{"id": mine.public_id}]
    theirs.refresh_from_db()
    assert (theirs.workers_max, theirs.version) == (3, 1)


@pytest.mark.django_db
def test_roles_and_read_only_keys(parts, team, template):
    create = sdk_create(template.public_id, gpuIds='"AMPERE_48"')
    basic = member_secret(team, Role.BASIC)
    assert data(gql("{ myself { endpoints { id } } }", basic), "myself") == {"endpoints": []}
    assert error_code(gql(create, basic)) == "FORBIDDEN"
    billing = member_secret(team, Role.BILLING)
    assert error_code(gql("{ myself { endpoints { id } } }", billing)) == "FORBIDDEN"
    read_only = member_secret(team, Role.ADMIN, ApiKey.Permission.READ_ONLY)
    result = gql(create, read_only)
    assert error_code(result) == "FORBIDDEN" and "read-only" in result["errors"][0]["message"]
    assert not Endpoint.objects.exists()


@pytest.mark.django_db
def test_a_pods_own_key_manages_its_teams_endpoints_as_itself(parts, team, template):
    """RUNPOD_API_KEY inside a pod acts with POD_KEY_ROLE (pods, templates, endpoints, jobs):
    what it creates belongs to nobody and is audited as the pod."""
    _, pod_secret = issue_pod_api_key(team=team, pod_public_id="podx")
    saved = data(gql(sdk_create(template.public_id), pod_secret), "saveEndpoint")
    endpoint = Endpoint.objects.get(public_id=saved["id"])
    assert endpoint.created_by is None
    event = AuditEvent.objects.get(action="endpoint.created")
    assert (event.actor, event.actor_label) == (None, "pod podx")


# runpodctl, with its variables -------------------------------------------------------------


def ctl(query: str, secret: str, variables: dict | None = None) -> dict:
    response = post({"query": query, "variables": variables}, secret=secret)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.django_db
def test_runpodctl_serverless_create_gpu_and_cpu(parts, template, secret):
    pools_listed = data(ctl(runpodctl("serverlessGpuPools"), secret), "serverlessGpuPools")
    pool = next(p["id"] for p in pools_listed if A40 in p["gpuTypeIds"])
    create = runpodctl("computeType")
    # EndpointCreateGQLInput as runpodctl marshals it (omitempty: zero ints are left out).
    gpu = {
        "name": "endpoint-k3x9a2mq",
        "templateId": template.public_id,
        "gpuIds": pool,
        "gpuCount": 1,
        "workersMax": 3,
        "executionTimeoutMs": 120000,
        "flashBootType": "FLASHBOOT",
    }
    saved = data(ctl(create, secret, {"input": gpu}), "saveEndpoint")
    assert (saved["gpuIds"], saved["computeType"], saved["instanceIds"]) == ("AMPERE_48", "GPU", [])
    assert (saved["executionTimeoutMs"], saved["networkVolumeIds"]) == (120000, [])
    cpu = {
        "name": "cpu-one",
        "templateId": template.public_id,
        "instanceIds": ["cpu3c-2-4"],
        "workersMax": 3,
        "flashBootType": "OFF",
        "executionTimeoutMs": 0,
    }
    saved = data(ctl(create, secret, {"input": cpu}), "saveEndpoint")
    assert (saved["computeType"], saved["instanceIds"], saved["gpuIds"]) == (
        "CPU",
        ["cpu3c-2-4"],
        None,
    )
    endpoint = Endpoint.objects.get(public_id=saved["id"])
    assert (endpoint.gpu_type_ids, endpoint.cpu_instance_id) == ([], "cpu3c-2-4")
    assert endpoint.execution_timeout == 7 * 24 * 3600  # 0: runpodctl's "no limit"


@pytest.mark.django_db
def test_runpodctl_round_trips_an_endpoint_and_swaps_its_template(parts, team, secret):
    endpoint = an_endpoint(team, gpu_type_ids=[A40], workers_max=4)
    read = data(
        ctl(
            runpodctl("networkVolumeIds { networkVolumeId } idleTimeout"),
            secret,
            {"input": {"id": endpoint.public_id, "modelReferences": []}},
        ),
        "saveEndpoint",
    )
    # UpdateEndpointModels sends the whole config back, with modelReferences changed.
    full = {key: value for key, value in read.items() if value is not None}
    full.update(id=endpoint.public_id, modelReferences=[], networkVolumeIds=[])
    again = data(
        ctl(runpodctl("networkVolumeIds { networkVolumeId } idleTimeout"), secret, {"input": full}),
        "saveEndpoint",
    )
    assert again == {**read}
    endpoint.refresh_from_db()
    assert (endpoint.gpu_type_ids, endpoint.workers_max, endpoint.version) == ([A40], 4, 3)
    newer = serverless_template(team)
    variables = {"input": {"endpointId": endpoint.public_id, "templateId": newer.public_id}}
    swapped = data(
        ctl(runpodctl("updateEndpointTemplate"), secret, variables), "updateEndpointTemplate"
    )
    assert swapped == {"id": endpoint.public_id, "templateId": newer.public_id}
    refused = ctl(
        runpodctl("computeType"),
        secret,
        {
            "input": {
                "id": endpoint.public_id,
                "modelReferences": ["https://huggingface.co/x/y:main"],
            }
        },
    )
    assert "modelReferences" in refused["errors"][0]["message"]


# The real SDK -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_runpod_sdk_creates_lists_and_updates_endpoints(live_server, parts, team, alice):
    _, key = make_key(team, alice)
    with tempfile.TemporaryDirectory(prefix="sdk-home-") as home:
        env = {"PATH": os.environ["PATH"], "HOME": home}
        with sdk_process(live_server.url, key, env) as sdk:
            template = sdk.call(
                'runpod.create_template("worker", "python:3.11-slim", is_serverless=True)'
            )
            assert template["isServerless"] is True
            created = sdk.call(
                f'runpod.create_endpoint("sdk endpoint", "{template["id"]}", '
                'gpu_ids="AMPERE_48", workers_max=2, idle_timeout=8)'
            )
            listed = sdk.call("runpod.get_endpoints()")
            other = sdk.call('runpod.create_template("v2", "python:3.12-slim", is_serverless=True)')
            updated = sdk.call(
                f'runpod.update_endpoint_template("{created["id"]}", "{other["id"]}")'
            )
            refused = sdk.answer(
                f'runpod.create_endpoint("bad", "{template["id"]}", gpu_ids="NOPE_1")'
            )
    endpoint = Endpoint.objects.get(public_id=created["id"])
    assert (created["gpuIds"], created["workersMax"], created["idleTimeout"]) == ("AMPERE_48", 2, 8)
    assert [(e["id"], e["gpuIds"], e["templateId"]) for e in listed] == [
        (endpoint.public_id, "AMPERE_48", template["id"])
    ]
    assert updated == {"id": endpoint.public_id, "templateId": other["id"]}
    assert (endpoint.template.public_id, endpoint.version, endpoint.created_by) == (
        other["id"],
        2,
        alice,
    )
    assert refused["error"] == "QueryError" and "NOPE_1" in refused["message"]
    assert Endpoint.objects.count() == 1
