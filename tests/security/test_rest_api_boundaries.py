"""The REST API as an attacker holding a key of their own team: other teams' pods, volumes and
templates stay out of reach (404, or refused as a field, never used), the team is the key's
whatever `?team=` says, and hostile ids (NUL bytes, huge numbers) are refusals, never 500s."""

import pytest

from pods.models import NetworkVolume, Pod, PodTemplate
from teams.models import AuditEvent
from tests.api.helpers import key_client
from tests.pods.factories import catalogue, fund, stopped_pod

DEPLOY = {"gpu_type": "NVIDIA A40", "gpu_count": 1, "image": "python:3.11-slim"}


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
