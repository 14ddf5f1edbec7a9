"""/graphql through Django's test client on PostgreSQL: the three ways of sending a key, roles,
outsiders and read-only keys, refused input creating nothing, money as floats, and every
document runpod-python 1.12.0 (runpod-api.md 2.2) and runpodctl 2.7.2 send for pods, GPUs,
templates and the user validating against our schema, which
is a subset of the reference schema with its exact names and types."""

import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from graphql import build_schema, parse, validate

from api.graphql.resolvers import CAPABILITY
from api.graphql.view import SCHEMA_PATH, schema
from pods.models import Pod, PodTemplate, RegistryCredential
from teams.models import ApiKey, AuditEvent, Membership, Role
from tests.api.runpodctl_documents import RUNPODCTL_DOCUMENTS
from tests.api.test_api_keys import make_key
from tests.conftest import make_user
from tests.pods.conftest import pods_settings, reap  # noqa: F401 (fixtures)
from tests.pods.factories import fund, stopped_pod

REFERENCE = Path("/work/shared/reference/runpod-schema.graphql")
POD_FIELDS = (
    "id containerDiskInGb costPerHr desiredStatus dockerArgs dockerId env gpuCount imageName "
    "lastStatusChange machineId memoryInGb name podType port ports uptimeSeconds vcpuCount "
    "volumeInGb volumeMountPath runtime { ports { ip isIpPublic privatePort publicPort type } } "
    "machine { gpuDisplayName }"
)
# The documents runpod-python 1.12.0 sends, as its code builds them (runpod-api.md 2.2).
SDK_DOCUMENTS = [
    "query GpuTypes { gpuTypes { id displayName memoryInGb } }",
    'query GpuTypes { gpuTypes(input: {id: "NVIDIA A40"}) { maxGpuCount id displayName '
    "manufacturer memoryInGb cudaCores secureCloud communityCloud securePrice communityPrice "
    "oneMonthPrice threeMonthPrice oneWeekPrice communitySpotPrice secureSpotPrice "
    "lowestPrice(input: {gpuCount: 1}) { minimumBidPrice uninterruptablePrice } } }",
    f"query myPods {{ myself {{ pods {{ {POD_FIELDS} }} }} }}",
    f'query pod {{ pod(input: {{podId: "abc"}}) {{ {POD_FIELDS} }} }}',
    'mutation { podFindAndDeployOnDemand( input: { name: "my pod", imageName: '
    '"runpod/pytorch:2.1", cloudType: ALL, startSsh: true, gpuTypeId: "NVIDIA A40", '
    "supportPublicIp: true, gpuCount: 1, volumeInGb: 20, minVcpuCount: 1, minMemoryInGb: 1, "
    'allowedCudaVersions: ["12.4", "12.5"], dataCenterId: "EU-RO-1", dockerArgs: "", '
    'countryCode: "US", containerDiskInGb: 10, ports: "8888/http,22/tcp", volumeMountPath: '
    '"/runpod-volume", env: [{ key: "A", value: "1" }, { key: "B", value: "x y" }], '
    'networkVolumeId: "nv1", minDownload: 10, minUpload: 10 } ) '
    "{ id imageName env machineId machine { podHostId } } }",
    'mutation { deployCpuPod( input: { name: "cpu", imageName: "ubuntu", cloudType: SECURE, '
    'startSsh: true, instanceId: "cpu3c-2-4", dataCenterId: null, dockerArgs: "", '
    'containerDiskInGb: 10, volumeMountPath: "/runpod-volume", templateId: "runpod-ubuntu" } ) '
    "{ id imageName env machineId machine { podHostId } } }",
    'mutation { podStop(input: { podId: "abc" }) { id desiredStatus } }',
    'mutation { podResume(input: { podId: "abc", gpuCount: 1 }) '
    "{ id desiredStatus imageName env machineId machine { podHostId } } }",
    'mutation { podTerminate(input: { podId: "abc" }) }',
    'mutation { saveTemplate( input: { name: "t", imageName: "ubuntu", dockerArgs: "", '
    'containerDiskInGb: 10, volumeInGb: 0, volumeMountPath: "/w", ports: "", '
    'env: [{ key: "A", value: "1" }], isServerless: false, containerRegistryAuthId : "", '
    'startSsh: true, isPublic: false, readme: "" } ) { id name imageName dockerArgs '
    "containerDiskInGb volumeInGb volumeMountPath ports env { key value } isServerless } }",
    'mutation SaveRegistryAuth { saveRegistryAuth(input: {name: "n", username: "u", '
    'password: "p"}) { id name } }',
    'mutation UpdateRegistryAuth { updateRegistryAuth(input: {id: "x", username: "u", '
    'password: "p"}) { id name } }',
    'mutation DeleteRegistryAuth { deleteRegistryAuth(registryAuthId: "x") }',
    "query myself { myself { id pubKey networkVolumes { id name size dataCenterId } } }",
]


@pytest.mark.parametrize("document", SDK_DOCUMENTS)
def test_every_sdk_document_validates_against_our_schema(document):
    assert validate(schema, parse(document)) == []


@pytest.mark.parametrize("document", RUNPODCTL_DOCUMENTS)
def test_every_runpodctl_document_validates_against_our_schema(document):
    """runpodctl's pod, GPU, data centre, template, volume and user documents (its variables
    are exercised in tests/api/test_graphql_runpodctl.py)."""
    assert validate(schema, parse(document)) == []


def test_our_schema_is_a_subset_of_the_reference_schema():
    ours = build_schema(SCHEMA_PATH.read_text())
    reference = build_schema(REFERENCE.read_text())
    for name, kind in ours.type_map.items():
        if name.startswith("__"):
            continue
        assert name in reference.type_map, name
        for field, definition in getattr(kind, "fields", {}).items():
            theirs = reference.type_map[name].fields[field]
            assert str(definition.type) == str(theirs.type), (name, field)
            for arg, arg_def in getattr(definition, "args", {}).items():
                assert str(arg_def.type) == str(theirs.args[arg].type), (name, field, arg)


def test_every_root_field_names_its_capability():
    fields = set(schema.query_type.fields) | set(schema.mutation_type.fields)
    assert fields == set(CAPABILITY)


def post(body, *, secret: str | None = None, how: str = "bearer", **extra):
    url, headers = "/graphql", {}
    if how == "bearer" and secret:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    elif how == "raw":
        headers["HTTP_AUTHORIZATION"] = secret
    elif how == "query":
        url = f"/graphql?api_key={secret}"
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return Client().post(url, data, content_type="application/json", **headers, **extra)


def gql(document: str, secret: str, **kwargs) -> dict:
    response = post({"query": document}, secret=secret, **kwargs)
    assert response.status_code == 200, response.content
    return response.json()


def error_code(result: dict) -> str:
    return result["errors"][0]["extensions"]["code"]


@pytest.fixture
def alice_secret(team, alice) -> str:
    return make_key(team, alice)[1]


def member_secret(team, role: str, permission=ApiKey.Permission.READ_WRITE) -> str:
    user = make_user(f"{role}-{permission}@example.com")
    Membership.objects.create(user=user, team=team, role=role)
    return make_key(team, user, permission)[1]


@pytest.mark.parametrize("how", ["bearer", "raw", "query"])
def test_the_three_ways_of_sending_a_key(alice_secret, how):
    result = gql("{ myself { id email } }", alice_secret, how=how)
    assert result == {
        "data": {"myself": {"id": result["data"]["myself"]["id"], "email": "alice@example.com"}}
    }


def test_a_wrong_key_is_401_and_no_key_is_401(db):
    assert post({"query": "{ myself { id } }"}, secret="rpa_nope").status_code == 401
    assert post({"query": "{ myself { id } }"}).status_code == 401


def test_errors_come_in_the_errors_array_with_200(alice_secret):
    for body in ["not json", "[1]", json.dumps({"query": 5}), json.dumps({"query": "{ nope }"})]:
        response = post(body, secret=alice_secret)
        assert response.status_code == 200
        assert response.json()["errors"][0]["message"]


def test_it_answers_without_a_csrf_token(alice_secret):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/graphql",
        json.dumps({"query": "{ myself { email } }"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {alice_secret}",
    )
    assert response.json()["data"]["myself"]["email"] == "alice@example.com"


def test_a_session_without_a_csrf_token_is_refused(team, alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(
        "/graphql?team=acme", json.dumps({"query": "{ myself { email } }"}), "application/json"
    )
    assert response.status_code == 403


def test_gpu_types_carry_prices_as_floats_and_free_capacity(parts, alice_secret):
    document = (
        '{ gpuTypes(input: {id: "NVIDIA A40"}) { id securePrice communityPrice maxGpuCount '
        "secureCloud communityCloud lowestPrice(input: {gpuCount: 4}) { minimumBidPrice "
        "uninterruptablePrice stockStatus minVcpu minMemory } } }"
    )
    [gpu] = gql(document, alice_secret)["data"]["gpuTypes"]
    assert gpu["securePrice"] == float(Decimal("0.79")) and gpu["maxGpuCount"] == 4
    assert (gpu["secureCloud"], gpu["communityCloud"]) == (True, False)
    lowest = gpu["lowestPrice"]
    assert lowest["uninterruptablePrice"] == 0.79 and lowest["minimumBidPrice"] == 0.28
    assert (lowest["minVcpu"], lowest["minMemory"], lowest["stockStatus"]) == (32, 128, "Medium")
    five = document.replace("gpuCount: 4", "gpuCount: 5")
    assert gql(five, alice_secret)["data"]["gpuTypes"][0]["lowestPrice"]["stockStatus"] is None
    missing = '{ gpuTypes(input: {id: "NVIDIA H100"}) { id } }'
    assert gql(missing, alice_secret)["data"]["gpuTypes"] == []


def deploy_document(**fields) -> str:
    values = {
        "name": '"gql pod"',
        "imageName": '"python:3.11-slim"',
        "cloudType": "ALL",
        "gpuTypeId": '"NVIDIA A40"',
        "gpuCount": "1",
        "volumeInGb": "1",
        "containerDiskInGb": "5",
        "dockerArgs": '"exec sleep 600"',
        "ports": '"8888/http,22/tcp"',
        "env": '[{ key: "A", value: "1" }]',
    }
    values.update(fields)
    literal = ", ".join(f"{k}: {v}" for k, v in values.items() if v is not None)
    return f"mutation {{ podFindAndDeployOnDemand(input: {{ {literal} }}) {{ id env }} }}"


@pytest.mark.parametrize(
    "fields",
    [
        {"env": '[{ key: "LD_PRELOAD", value: "/x.so" }]'},
        {"env": '[{ key: "1BAD", value: "x" }]'},
        {"ports": '"8888/udp"'},
        {"ports": '"99999/http"'},
        {"gpuTypeId": '"NVIDIA H100"'},
        {"gpuCount": "9"},
        {"imageName": '"Not An Image"'},
        {"volumeMountPath": '"/etc"'},
        {"containerDiskInGb": "0"},
        {"templateId": '"nosuchtemplate"'},
        {"name": '"a\\u0000b"'},
    ],
)
def test_bad_deploy_input_is_an_error_and_creates_nothing(parts, team, alice_secret, fields):
    fund(team)
    result = gql(deploy_document(**fields), alice_secret)
    assert result["data"]["podFindAndDeployOnDemand"] is None
    assert error_code(result) == "BAD_USER_INPUT", result
    assert not Pod.objects.exists()
    assert not AuditEvent.objects.filter(action="pod.deployed").exists()


def test_without_funds_the_deploy_is_refused(parts, team, alice_secret):
    result = gql(deploy_document(), alice_secret)
    assert error_code(result) == "BAD_USER_INPUT" and not Pod.objects.exists()


@pytest.mark.parametrize("role", [Role.BASIC, Role.BILLING])
def test_roles_without_deploy_cannot_deploy(parts, team, role):
    fund(team)
    result = gql(deploy_document(), member_secret(team, role))
    assert error_code(result) == "FORBIDDEN" and not Pod.objects.exists()


def test_a_read_only_key_queries_but_never_mutates(parts, team):
    fund(team)
    secret = member_secret(team, Role.ADMIN, ApiKey.Permission.READ_ONLY)
    assert gql("{ myself { pods { id } } }", secret)["data"]["myself"]["pods"] == []
    for document in [
        deploy_document(),
        'mutation { saveTemplate(input: { name: "t", imageName: "ubuntu" }) { id } }',
        'mutation { saveRegistryAuth(input: {name: "n", username: "u", password: "p"}) { id } }',
    ]:
        result = gql(document, secret)
        assert error_code(result) == "FORBIDDEN", result
        assert "read-only" in result["errors"][0]["message"]
    assert not (Pod.objects.exists() or PodTemplate.objects.filter(team=team).exists())
    assert not RegistryCredential.objects.exists()


def test_billing_sees_balance_but_not_pods(team):
    fund(team, "25")
    secret = member_secret(team, Role.BILLING)
    result = gql("{ myself { clientBalance currentSpendPerHr } }", secret)
    assert result["data"]["myself"] == {"clientBalance": 25.0, "currentSpendPerHr": 0.0}
    result = gql("{ myself { pods { id } } }", secret)
    assert error_code(result) == "FORBIDDEN"


@pytest.mark.usefixtures("reap")
def test_deploy_stop_and_terminate_through_the_services(
    parts, team, alice, alice_secret, django_capture_on_commit_callbacks
):
    """The pod really runs (process runtime, Celery eager, on-commit work executed)."""
    fund(team)
    with django_capture_on_commit_callbacks(execute=True):
        result = gql(deploy_document(), alice_secret)
    assert "errors" not in result, result
    pod = Pod.objects.get(public_id=result["data"]["podFindAndDeployOnDemand"]["id"])
    assert result["data"]["podFindAndDeployOnDemand"]["env"] == ["A=1"]
    assert (pod.gpu_type_id, pod.cloud_type, pod.status) == ("NVIDIA A40", "SECURE", "running")
    assert pod.ports == [{"port": 8888, "protocol": "http"}, {"port": 22, "protocol": "tcp"}]
    event = AuditEvent.objects.get(action="pod.deployed", resource_id=pod.public_id)
    assert event.actor == alice
    fields = "desiredStatus runtime { ports { privatePort type } }"
    query = f'{{ pod(input: {{podId: "{pod.public_id}"}}) {{ {fields} }} }}'
    seen = gql(query, alice_secret)["data"]["pod"]
    assert seen["desiredStatus"] == "RUNNING"
    assert {(p["privatePort"], p["type"]) for p in seen["runtime"]["ports"]} == {
        (8888, "http"),
        (22, "tcp"),
    }
    stop = f'mutation {{ podStop(input: {{ podId: "{pod.public_id}" }}) {{ id desiredStatus }} }}'
    with django_capture_on_commit_callbacks(execute=True):
        assert gql(stop, alice_secret)["data"]["podStop"]["desiredStatus"] == "EXITED"
    pod.refresh_from_db()
    assert pod.status == Pod.Status.EXITED
    terminate = f'mutation {{ podTerminate(input: {{ podId: "{pod.public_id}" }}) }}'
    with django_capture_on_commit_callbacks(execute=True):
        assert gql(terminate, alice_secret) == {"data": {"podTerminate": None}}
    pod.refresh_from_db()
    assert pod.status == Pod.Status.TERMINATED
    assert AuditEvent.objects.filter(action="pod.terminated", actor=alice).exists()


def test_an_outsider_finds_no_pod_of_another_team(parts, team, alice, charlie):
    fund(team)
    pod_id = gql(deploy_document(), make_key(team, alice)[1])["data"]
    pod_id = pod_id["podFindAndDeployOnDemand"]["id"]
    outsider = make_key(charlie.memberships.get().team, charlie)[1]
    for document in [
        f'{{ pod(input: {{podId: "{pod_id}"}}) {{ id }} }}',
        f'mutation {{ podStop(input: {{ podId: "{pod_id}" }}) {{ id }} }}',
        f'mutation {{ podTerminate(input: {{ podId: "{pod_id}" }}) }}',
    ]:
        assert error_code(gql(document, outsider)) == "NOT_FOUND"
    assert gql("{ myself { pods { id } } }", outsider)["data"]["myself"]["pods"] == []
    assert Pod.objects.get(public_id=pod_id).status != Pod.Status.TERMINATED


def test_templates_and_registry_auth(team, alice, alice_secret, charlie):
    document = (
        'mutation { saveTemplate(input: { name: "Tpl", imageName: "ubuntu:22.04", dockerArgs: '
        '"sleep 1", containerDiskInGb: 7, volumeInGb: 3, ports: "8888/http,22/tcp", env: '
        '[{ key: "A", value: "b" }], isServerless: false, isPublic: false, readme: "" }) '
        "{ id name imageName ports env { key value } containerDiskInGb } }"
    )
    saved = gql(document, alice_secret)["data"]["saveTemplate"]
    template = PodTemplate.objects.get(public_id=saved["id"], team=team)
    assert (template.image, template.start_command, template.container_disk_gb) == (
        "ubuntu:22.04",
        "sleep 1",
        7,
    )
    assert saved["ports"] == "8888/http,22/tcp" and saved["env"] == [{"key": "A", "value": "b"}]
    save = (
        'mutation { saveRegistryAuth(input: {name: "hub", username: "u", password: "p1"}) '
        "{ id name } }"
    )
    auth = gql(save, alice_secret)["data"]["saveRegistryAuth"]
    credential = RegistryCredential.objects.get(public_id=auth["id"], team=team)
    assert gql(save, alice_secret)["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    update = (
        f'mutation {{ updateRegistryAuth(input: {{id: "{auth["id"]}", username: "u2", '
        'password: "p2"}) { id name } }'
    )
    outsider = make_key(charlie.memberships.get().team, charlie)[1]
    assert error_code(gql(update, outsider)) == "NOT_FOUND"
    assert gql(update, alice_secret)["data"]["updateRegistryAuth"] == auth
    credential.refresh_from_db()
    assert credential.username == "u2" and "p2" not in credential.password_encrypted
    delete = f'mutation {{ deleteRegistryAuth(registryAuthId: "{auth["id"]}") }}'
    assert error_code(gql(delete, outsider)) == "NOT_FOUND"
    assert gql(delete, alice_secret) == {"data": {"deleteRegistryAuth": None}}
    assert not RegistryCredential.objects.exists()
    actions = set(AuditEvent.objects.filter(actor=alice).values_list("action", flat=True))
    assert {"template.created", "registry_credential.created"} <= actions
    assert {"registry_credential.updated", "registry_credential.deleted"} <= actions


def test_the_pod_list_runs_the_same_queries_for_2_pods_as_for_12(parts, team, alice_secret):
    document = f"query myPods {{ myself {{ pods {{ {POD_FIELDS} }} }} }}"
    counts = []
    for total in (2, 12):
        while Pod.objects.count() < total:
            stopped_pod(team, parts["machine"])
        gql(document, alice_secret)  # warm: the key's last_used_at write happens once
        with CaptureQueriesContext(connection) as queries:
            assert len(gql(document, alice_secret)["data"]["myself"]["pods"]) == total
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 8, counts
