"""/graphql under attack: what a caller (or a hostile pod holding its own RUNPOD_API_KEY) sends
is attacker input. Alias floods and huge documents are refused before they run, ids and names
with NUL bytes (which PostgreSQL refuses) are answers not 500s, an unexpected failure never
leaks its detail, and a pod's key cannot plant templates, registry logins or SSH keys."""

import json

import pytest
from django.test import Client

from pods.models import PodTemplate, RegistryCredential, SshKey
from teams.models import AuditEvent
from teams.services import issue_pod_api_key
from tests.api.matrix import PUBLIC_KEY as KEY
from tests.api.test_api_keys import make_key
from tests.pods.factories import catalogue, fund

pytestmark = pytest.mark.django_db


def gql(document: str, secret: str) -> dict:
    response = Client().post(
        "/graphql",
        json.dumps({"query": document}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def secret(team, alice) -> str:
    return make_key(team, alice)[1]


def test_an_alias_flood_is_refused_before_it_runs(secret, django_assert_max_num_queries):
    flood = "{ " + " ".join(f"a{i}: myself {{ pods {{ id name }} }}" for i in range(400)) + " }"
    with django_assert_max_num_queries(3):  # the key lookup only; no resolver ran
        result = gql(flood, secret)
    assert "data" not in result or result["data"] is None
    assert "At most 300 fields" in result["errors"][0]["message"]


def test_a_huge_document_is_refused_unparsed(secret):
    result = gql("{ myself { id " + " " * 30_000 + "} }", secret)
    assert "at most 20000 characters" in result["errors"][0]["message"]


@pytest.mark.parametrize(
    "document",
    [
        '{ pod(input: {podId: "a\\u0000b"}) { id } }',
        '{ gpuTypes(input: {id: "x\\u0000"}) { id } }',
        'mutation { podStop(input: {podId: "\\u0000"}) { id } }',
        'mutation { deleteRegistryAuth(registryAuthId: "\\u0000") }',
        'mutation { saveTemplate(input: {id: "\\u0000", name: "x", imageName: "u"}) { id } }',
        'mutation { saveTemplate(input: {name: "a\\u0000", imageName: "ubuntu"}) { id } }',
        'mutation { saveRegistryAuth(input: {name: "\\u0000", username: "u", password: "p"}) '
        "{ id } }",
        'mutation { podFindAndDeployOnDemand(input: {gpuTypeId: "\\u0000", imageName: "u", '
        'templateId: "\\u0000", dataCenterId: "\\u0000", networkVolumeId: "\\u0000"}) { id } }',
        'mutation { deployCpuPod(input: {instanceId: "\\u0000", imageName: "ubuntu", '
        'env: [{key: "A", value: "\\u0000"}]}) { id } }',
        '{ podTemplate(id: "\\u0000") { id } }',
        'mutation { podBidResume(input: {podId: "\\u0000", bidPerGpu: 1, gpuCount: 1}) { id } }',
        'mutation { updateUserSettings(input: {pubKey: "ssh-ed25519 \\u0000"}) { id } }',
    ],
)
def test_nul_bytes_are_refused_not_500s(team, secret, document):
    catalogue()
    fund(team)
    result = gql(document, secret)
    codes = {error.get("extensions", {}).get("code") for error in result.get("errors", [])}
    assert "INTERNAL_SERVER_ERROR" not in codes, result
    assert not PodTemplate.objects.filter(team=team).exists()
    assert not RegistryCredential.objects.exists()


def test_an_unexpected_failure_leaks_no_detail(secret, monkeypatch):
    from api.graphql import wire

    def explode(_gpu):
        raise RuntimeError("password=hunter2 at /srv/secret/path")

    monkeypatch.setattr(wire, "gpu_type", explode)
    catalogue()
    result = gql("{ gpuTypes { id } }", secret)
    assert result["errors"][0]["message"] == "Internal server error."
    assert "hunter2" not in json.dumps(result)


def test_a_pods_own_key_plants_no_template_or_registry_login(team):
    catalogue()
    _, pod_secret = issue_pod_api_key(team=team, pod_public_id="hostilepod0001")
    for document in [
        'mutation { saveTemplate(input: {name: "evil", imageName: "evil/image"}) { id } }',
        'mutation { saveRegistryAuth(input: {name: "hub", username: "u", password: "p"}) { id } }',
    ]:
        result = gql(document, pod_secret)
        assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN", result
    assert not PodTemplate.objects.filter(team=team).exists()
    assert not RegistryCredential.objects.exists()


def test_a_pods_own_key_plants_no_ssh_key_in_anyones_account(team, alice):
    """A person's SSH keys reach every pod they may connect to: a hostile pod rewriting them
    would let its owner into all of that person's pods."""
    _, pod_secret = issue_pod_api_key(team=team, pod_public_id="hostilepod0002")
    result = gql(
        f'mutation {{ updateUserSettings(input: {{pubKey: "{KEY}"}}) {{ id }} }}', pod_secret
    )
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN", result
    assert gql("{ myself { pubKey } }", pod_secret)["data"]["myself"]["pubKey"] == ""
    assert not SshKey.objects.exists()


def test_a_flood_of_ssh_keys_is_refused_whole(team, alice, secret):
    many = "\\n".join([KEY] * 51)
    result = gql(f'mutation {{ updateUserSettings(input: {{pubKey: "{many}"}}) {{ id }} }}', secret)
    assert "at most 50 keys" in result["errors"][0]["message"]
    assert not SshKey.objects.exists()


def test_the_audit_names_the_key_that_acted(team, alice):
    key, secret = make_key(team, alice)
    result = gql(
        'mutation { saveRegistryAuth(input: {name: "hub", username: "u", password: "p"}) { id } }',
        secret,
    )
    event = AuditEvent.objects.get(action="registry_credential.created")
    assert event.actor == alice and event.details["api_key"] == key.public_id
    assert event.resource_id == result["data"]["saveRegistryAuth"]["id"]


def test_a_body_nested_deeper_than_the_decoder_recurses_is_refused_plainly(secret):
    response = Client().post(
        "/graphql",
        "[" * 100_000 + "]" * 100_000,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert response.status_code == 200  # GraphQL's convention: the error is in the body
    assert response.json() == {"errors": [{"message": "Send a JSON object with a `query` string."}]}
