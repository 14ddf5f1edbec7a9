"""RunPod's REST API v1 at /v1/ as an attacker holding a key of their own team: every path
with another team's ids is 404 and changes nothing, the team is the key's whatever `?team=`
says, a pod's own key saves no template or registry login, a browser session still needs its
CSRF token, and hostile ids and bodies (NUL bytes, huge numbers, deep JSON) are refusals,
never 500s."""

import json

import pytest
from django.test import Client

from pods.connect.services import save_registry_credential
from pods.models import NetworkVolume, Pod, PodTemplate, RegistryCredential
from serverless.models import Endpoint
from teams.models import AuditEvent, Membership, Role, Team
from teams.services import issue_pod_api_key
from tests.api.test_api_keys import bearer, make_key
from tests.api.test_runpod_rest_endpoints import call
from tests.conftest import make_user
from tests.pods.factories import catalogue, stopped_pod
from tests.serverless.factories import an_endpoint


@pytest.fixture
def victim(db):
    """Another team with a pod, an endpoint, a volume, a template and a registry login."""
    parts = catalogue()
    owner = make_user("victim@example.com")
    team = Team.objects.create(name="Victim", slug="victim-co", is_personal=False)
    Membership.objects.create(user=owner, team=team, role=Role.ADMIN)
    credential = save_registry_credential(
        actor=owner, team=team, name="hub", registry="docker.io", username="u", password="p"
    )
    return {
        "team": team,
        "pods": stopped_pod(team, parts["machine"], status=Pod.Status.RUNNING).public_id,
        "endpoints": an_endpoint(team).public_id,
        "networkvolumes": NetworkVolume.objects.create(
            team=team, name="v", size_gb=10, data_center=parts["dc"]
        ).public_id,
        "templates": PodTemplate.objects.create(team=team, name="t", image="ubuntu").public_id,
        "containerregistryauth": credential.public_id,
    }


@pytest.fixture
def attacker(team, alice) -> str:
    return make_key(team, alice)[1]


PATHS = {
    "pods": ["", "/update", "/start", "/stop", "/restart", "/reset"],
    "endpoints": ["", "/update"],
    "networkvolumes": ["", "/update"],
    "templates": ["", "/update"],
    "containerregistryauth": [""],
}


def test_every_path_with_another_teams_id_is_404(client, victim, attacker):
    events = AuditEvent.objects.count()
    for resource, suffixes in PATHS.items():
        for suffix in suffixes:
            methods = ["POST"] if suffix else ["GET", "PATCH", "DELETE"]
            if resource == "containerregistryauth":
                methods = ["GET", "DELETE"]
            for method in methods:
                path = f"/{resource}/{victim[resource]}{suffix}"
                response = call(client, method, path, attacker, {"name": "pwned", "size": 99})
                assert response.status_code == 404, (method, path, response.content)
        for query in ("", "?team=victim-co"):
            assert call(client, "GET", f"/{resource}{query}", attacker).json() == []
    assert AuditEvent.objects.count() == events
    assert Pod.objects.get().status == Pod.Status.RUNNING
    assert Endpoint.objects.get().name == "echo"
    assert NetworkVolume.objects.get().size_gb == 10
    assert PodTemplate.objects.get(public_id=victim["templates"]).name == "t"
    assert RegistryCredential.objects.count() == 1


def test_the_key_team_wins_over_a_team_parameter(client, victim, attacker):
    path = f"/pods/{victim['pods']}?team=victim-co"
    assert call(client, "GET", path, attacker).status_code == 404
    assert call(client, "POST", "/templates?team=victim-co", attacker, {"name": "x"}).status_code
    assert not PodTemplate.objects.filter(name="x").exists()


def test_hostile_ids_are_404_never_500(client, team, attacker, victim):
    for resource in PATHS:
        for bad in ("%00", "a%00b", "x" * 5000, "%27%20OR%201=1--"):
            response = call(client, "GET", f"/{resource}/{bad}", attacker)
            assert response.status_code == 404, (resource, bad)
    for param in ("name=%00", "gpuTypeId=%00", "id=a%00", "dataCenterId=%00"):
        assert call(client, "GET", f"/pods?{param}", attacker).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "workersMax": 10**30},
        {"name": "\x00"},
        {"name": "x" * 100_000},
        {"gpuIds": "\x00"},
        {"name": {"nested": [1] * 1000}},
        {"networkVolumeIds": [{"networkVolumeId": "x"}]},
    ],
)
def test_hostile_endpoint_bodies_are_refused(client, team, attacker, body):
    catalogue()
    endpoint = an_endpoint(team)
    response = call(client, "PATCH", f"/endpoints/{endpoint.public_id}", attacker, body)
    assert response.status_code == 400, response.content
    assert response.json()["error"]
    endpoint.refresh_from_db()
    assert (endpoint.name, endpoint.version) == ("echo", 1)


def test_deeply_nested_json_is_a_400(client, team, attacker):
    deep = "[" * 100_000 + "]" * 100_000
    response = client.post("/v1/pods", deep, content_type="application/json", **bearer(attacker))
    assert response.status_code == 400


def test_a_pods_own_key_saves_no_template_or_registry_login(client, team):
    catalogue()
    _, secret = issue_pod_api_key(team=team, pod_public_id="somepod")
    template = {"name": "t", "imageName": "ubuntu:22.04"}
    assert call(client, "POST", "/templates", secret, template).status_code == 403
    login = {"name": "n", "username": "u", "password": "p"}
    assert call(client, "POST", "/containerregistryauth", secret, login).status_code == 403
    assert not PodTemplate.objects.exists() and not RegistryCredential.objects.exists()


def test_a_browser_session_still_needs_its_csrf_token(team, alice):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    body = json.dumps({"name": "t", "imageName": "ubuntu:22.04"})
    response = browser.post("/v1/templates?team=acme", body, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]
    assert not PodTemplate.objects.exists()
    assert browser.get("/v1/templates?team=acme").status_code == 200
