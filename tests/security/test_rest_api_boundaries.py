"""The REST API as an attacker holding a key of their own team: other teams' pods, volumes,
templates, members, invites, registry logins and SSH keys stay out of reach (404, or refused as
a field, never used), the team is the key's whatever `?team=` says, a dev cannot promote
themselves, a pod's own key sees no members and plants no SSH key or registry login, a registry
password is stored nowhere in clear, and hostile ids and bodies (NUL bytes, huge numbers and
strings) are refusals, never 500s."""

import json

import pytest
from rest_framework.test import APIClient

from api.models import IdempotentRequest
from pods.connect.services import add_ssh_key, save_registry_credential
from pods.models import NetworkVolume, Pod, PodTemplate, RegistryCredential, SshKey
from teams.models import AuditEvent, Invite, Membership, Role
from teams.services import create_invite, issue_pod_api_key
from tests.api.helpers import key_client
from tests.api.matrix import PUBLIC_KEY
from tests.conftest import make_user
from tests.pods.factories import catalogue, fund, stopped_pod

DEPLOY = {"gpu_type": "NVIDIA A40", "gpu_count": 1, "image": "python:3.11-slim"}
REGISTRY_LOGIN = {"username": "bot", "password": "hunter2-registry-secret"}


@pytest.fixture
def parts(db):
    return catalogue()


@pytest.fixture
def victim(charlie, parts):
    """charlie's team, with a pod, a network volume and a private template."""
    team = charlie.memberships.get().team
    fund(team)
    return {
        "team": team,
        "pod": stopped_pod(team, parts["machine"]),
        "volume": NetworkVolume.objects.create(
            team=team, name="secret", size_gb=10, data_center=parts["dc"]
        ),
        "template": PodTemplate.objects.create(
            team=team, name="private", image="victim/secret:1", env=[{"key": "T", "value": "s"}]
        ),
    }


@pytest.fixture
def attacker(team, alice, parts):
    fund(team)
    return key_client(team, alice)[0]


def test_another_teams_objects_are_404(attacker, victim):
    pod, volume, template = victim["pod"], victim["volume"], victim["template"]
    events = AuditEvent.objects.filter(team=victim["team"]).count()
    for method, url in [
        ("get", f"/api/v1/pods/{pod.public_id}/"),
        ("post", f"/api/v1/pods/{pod.public_id}/start/"),
        ("post", f"/api/v1/pods/{pod.public_id}/terminate/"),
        ("get", f"/api/v1/network-volumes/{volume.public_id}/"),
        ("delete", f"/api/v1/network-volumes/{volume.public_id}/"),
        ("get", f"/api/v1/templates/{template.public_id}/"),
    ]:
        assert getattr(attacker, method)(url).status_code == 404, url
    pod.refresh_from_db()
    assert pod.status == Pod.Status.EXITED and NetworkVolume.objects.filter(pk=volume.pk).exists()
    assert AuditEvent.objects.filter(team=victim["team"]).count() == events


def test_the_key_decides_the_team_not_the_query(attacker, victim):
    body = attacker.get(f"/api/v1/pods/?team={victim['team'].slug}").json()
    assert body["count"] == 0
    response = attacker.post(f"/api/v1/pods/?team={victim['team'].slug}", DEPLOY, format="json")
    assert response.status_code == 201
    assert Pod.objects.get(public_id=response.json()["id"]).team != victim["team"]


def test_another_teams_volume_or_private_template_is_never_used(attacker, victim):
    response = attacker.post(
        "/api/v1/pods/", {**DEPLOY, "network_volume": victim["volume"].public_id}, format="json"
    )
    assert response.status_code == 400 and "network_volume" in response.json()["errors"]
    response = attacker.post(
        "/api/v1/pods/", {**DEPLOY, "template": victim["template"].public_id}, format="json"
    )
    assert response.status_code == 400 and "template" in response.json()["errors"]
    assert not Pod.objects.exclude(team=victim["team"]).exists()


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/pods/%00/",
        "/api/v1/pods/a%00b/stop/",
        "/api/v1/network-volumes/%00/",
        "/api/v1/templates/%00/",
        "/api/v1/gpu-types/%00/",
        "/api/v1/data-centers/%00/",
        "/api/v1/pods/?status=%00",
        "/api/v1/gpu-types/?data_center=%00&cloud_type=%00",
        "/api/v1/pods/?limit=99999999999999999999&offset=99999999999999999999",
        "/api/v1/billing/ledger/?limit=-1&offset=%00",
    ],
)
def test_hostile_ids_and_parameters_are_refusals_not_errors(attacker, url):
    method = "post" if url.endswith("/stop/") else "get"
    response = getattr(attacker, method)(url)
    assert response.status_code < 500, response.content
    if response.status_code >= 400:
        assert set(response.json()) == {"code", "message", "errors"}


@pytest.mark.parametrize(
    "change",
    [
        {"template": "\x00"},
        {"network_volume": "\x00"},
        {"data_center": "\x00"},
        {"gpu_type": "\x00"},
        {"name": "\x00"},
        {"env": [{"key": "A\x00", "value": "x"}]},
        {"gpu_count": 10**30},
        {"http_ports": [10**30]},
        {"env": [{"key": f"K{i}", "value": "v"} for i in range(51)]},
    ],
)
def test_hostile_deploy_bodies_create_nothing(attacker, change):
    response = attacker.post("/api/v1/pods/", {**DEPLOY, **change}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"
    assert not Pod.objects.exists()


# Members, invites, SSH keys and registry credentials -----------------------------------------


@pytest.fixture
def victim_team(victim, charlie):
    """charlie's team with a second member, a pending invite and a registry login."""
    team = victim["team"]
    team.is_personal = False
    team.save(update_fields=["is_personal"])
    other = make_user("dana@example.com")
    return {
        "team": team,
        "member": Membership.objects.create(team=team, user=other, role=Role.BASIC),
        "invite": create_invite(team=team, actor=charlie, role=Role.ADMIN),
        "credential": save_registry_credential(
            actor=charlie, team=team, name="c", registry="ghcr.io", username="u", password="pw"
        ),
        "ssh_key": add_ssh_key(actor=charlie, team=team, name="", public_key=PUBLIC_KEY),
    }


def test_another_teams_members_invites_credentials_and_keys_are_404(attacker, victim_team):
    events = AuditEvent.objects.count()
    member, invite = victim_team["member"], victim_team["invite"]
    credential, ssh_key = victim_team["credential"], victim_team["ssh_key"]
    for method, url, body in [
        ("get", f"/api/v1/members/{member.public_id}/", None),
        ("patch", f"/api/v1/members/{member.public_id}/", {"role": "admin"}),
        ("delete", f"/api/v1/members/{member.public_id}/", None),
        ("get", f"/api/v1/invites/{invite.public_id}/", None),
        ("delete", f"/api/v1/invites/{invite.public_id}/", None),
        ("get", f"/api/v1/registry-credentials/{credential.public_id}/", None),
        ("put", f"/api/v1/registry-credentials/{credential.public_id}/", REGISTRY_LOGIN),
        ("delete", f"/api/v1/registry-credentials/{credential.public_id}/", None),
        ("get", f"/api/v1/ssh-keys/{ssh_key.public_id}/", None),
        ("delete", f"/api/v1/ssh-keys/{ssh_key.public_id}/", None),
    ]:
        response = getattr(attacker, method)(url, body, format="json")
        assert response.status_code == 404, (method, url)
    member.refresh_from_db()
    invite.refresh_from_db()
    assert member.role == Role.BASIC and invite.status == "pending"
    assert RegistryCredential.objects.filter(pk=credential.pk, username="u").exists()
    assert SshKey.objects.filter(pk=ssh_key.pk).exists()
    assert AuditEvent.objects.count() == events


def test_a_dev_cannot_make_themselves_admin_or_invite_an_admin(team, bob):
    dev = key_client(team, bob)[0]
    own = Membership.objects.get(team=team, user=bob)
    assert (
        dev.patch(f"/api/v1/members/{own.public_id}/", {"role": "admin"}, format="json").status_code
        == 403
    )
    assert dev.post("/api/v1/invites/", {"role": "admin"}, format="json").status_code == 403
    own.refresh_from_db()
    assert own.role == Role.DEV and not Invite.objects.exists()


def test_a_pods_key_sees_no_members_and_plants_no_ssh_key_or_registry_login(team):
    _, secret = issue_pod_api_key(team=team, pod_public_id="hostilepod")
    pod = APIClient()
    pod.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert pod.get("/api/v1/members/").status_code == 403
    assert (
        pod.post("/api/v1/ssh-keys/", {"public_key": PUBLIC_KEY}, format="json").status_code == 403
    )
    response = pod.post(
        "/api/v1/registry-credentials/", {**REGISTRY_LOGIN, "name": "x"}, format="json"
    )
    assert response.status_code == 403
    assert not SshKey.objects.exists() and not RegistryCredential.objects.exists()


def test_a_registry_password_is_kept_nowhere_in_clear(attacker, team):
    body = {**REGISTRY_LOGIN, "name": "n", "registry": "docker.io"}
    response = attacker.post(
        "/api/v1/registry-credentials/", body, format="json", HTTP_IDEMPOTENCY_KEY="r1"
    )
    assert response.status_code == 201
    replay = attacker.post(
        "/api/v1/registry-credentials/", body, format="json", HTTP_IDEMPOTENCY_KEY="r1"
    )
    stored = IdempotentRequest.objects.get(key="r1").response
    for text in (response.content.decode(), replay.content.decode(), json.dumps(stored)):
        assert REGISTRY_LOGIN["password"] not in text
    credential = RegistryCredential.objects.get(team=team)
    assert REGISTRY_LOGIN["password"] not in credential.password_encrypted
    event = AuditEvent.objects.get(action="registry_credential.created")
    assert REGISTRY_LOGIN["password"] not in json.dumps(event.details)


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/members/%00/",
        "/api/v1/members/?role=%00",
        "/api/v1/invites/%00/",
        "/api/v1/invites/?role=admin%00",
        "/api/v1/ssh-keys/%00/",
        "/api/v1/registry-credentials/%00/",
    ],
)
def test_hostile_ids_of_team_resources_are_refusals_not_errors(attacker, url):
    response = attacker.get(url)
    assert 400 <= response.status_code < 500, response.content
    assert set(response.json()) == {"code", "message", "errors"}


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/api/v1/ssh-keys/", {"public_key": "ssh-ed25519 AAAA\x00"}),
        ("/api/v1/ssh-keys/", {"public_key": "ssh-ed25519 " + "A" * 1_000_000}),
        ("/api/v1/ssh-keys/", {"public_key": f"{PUBLIC_KEY}\n{PUBLIC_KEY}"}),
        ("/api/v1/ssh-keys/", {"public_key": "-----BEGIN OPENSSH PRIVATE KEY-----"}),
        ("/api/v1/registry-credentials/", {**REGISTRY_LOGIN, "name": "a\x00"}),
        ("/api/v1/registry-credentials/", {**REGISTRY_LOGIN, "name": "n", "password": "p" * 5000}),
        ("/api/v1/registry-credentials/", {**REGISTRY_LOGIN, "name": "n", "registry": "x/../\x00"}),
        ("/api/v1/invites/", {"role": ["admin"]}),
    ],
)
def test_hostile_bodies_for_team_resources_save_nothing(attacker, url, body):
    response = attacker.post(url, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"
    assert not (SshKey.objects.exists() or RegistryCredential.objects.exists())
    assert not Invite.objects.exists()
