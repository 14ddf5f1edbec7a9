"""Pods, GPU types, data centres, templates and network volumes over the REST API, with real
API keys on PostgreSQL: deploys go through the wizard's validation and pods.services, every
change is audited with the key, other teams' rows are 404 and read-only keys cannot write."""

from decimal import Decimal

import pytest

from pods.models import NetworkVolume, Pod, PodTemplate
from teams.models import AuditEvent
from tests.api.helpers import key_client
from tests.pods.factories import fund, stopped_pod

DEPLOY = {
    "gpu_type": "NVIDIA A40",
    "gpu_count": 2,
    "name": "api pod",
    "image": "python:3.11-slim",
    "container_disk_gb": 5,
    "volume_gb": 1,
    "env": [{"key": "MODEL", "value": "llama"}],
    "http_ports": [8888],
    "tcp_ports": [22],
}


@pytest.fixture
def api(team, alice, parts):
    fund(team)
    client, key_id = key_client(team, alice)
    client.key_id = key_id
    return client


def test_deploy_creates_the_pod_through_the_service_and_audits_the_key(api, team):
    response = api.post("/api/v1/pods/", DEPLOY, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    pod = Pod.objects.get(public_id=body["id"])
    assert pod.team == team and pod.gpu_count == 2 and pod.status == Pod.Status.CREATED
    assert pod.env == [{"key": "MODEL", "value": "llama"}]
    assert {p["port"] for p in pod.ports} == {8888, 22}
    assert body["gpu_type"] == "NVIDIA A40" and body["data_center"] == "EU-RO-1"
    assert Decimal(body["price_per_hour"]) == pod.price().total
    event = AuditEvent.objects.get(action="pod.deployed", resource_id=pod.public_id)
    assert event.details["api_key"] == api.key_id


BAD_DEPLOYS = [
    ({"image": "Not An Image"}, "image"),
    ({"gpu_type": "NVIDIA H9000"}, "gpu_type"),
    ({"gpu_count": 9}, "gpu_count"),
    ({"volume_mount_path": "/etc"}, "volume_mount_path"),
    ({"http_ports": [70000]}, "http_ports"),
    ({"http_ports": [22], "tcp_ports": [22]}, "tcp_ports"),
    ({"env": [{"key": "1BAD", "value": "x"}]}, "env"),
    ({"pricing": "spot", "bid_per_gpu": "0.01"}, "bid_per_gpu"),
    ({"compute": "cpu", "gpu_type": ""}, "cpu_instance"),
    ({"container_disk_gb": 0}, "container_disk_gb"),
    ({"network_volume": "nope"}, "network_volume"),
]


@pytest.mark.parametrize(("change", "field"), BAD_DEPLOYS)
def test_bad_deploys_name_the_field_and_create_nothing(api, change, field):
    response = api.post("/api/v1/pods/", {**DEPLOY, **change}, format="json")
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["code"] == "invalid" and field in body["errors"], body
    assert not Pod.objects.exists()
    assert not AuditEvent.objects.filter(action="pod.deployed").exists()


def test_a_deploy_without_funds_is_refused(team, alice, parts):
    client, _ = key_client(team, alice)
    response = client.post("/api/v1/pods/", DEPLOY, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["non_field_errors"]
    assert not Pod.objects.exists()


def test_a_template_prefills_the_deploy(api, team):
    template = PodTemplate.objects.create(
        team=team, name="Mine", image="ubuntu:22.04", env=[{"key": "A", "value": "1"}]
    )
    body = {"gpu_type": "NVIDIA A40", "gpu_count": 1, "template": template.public_id}
    response = api.post("/api/v1/pods/", body, format="json")
    assert response.status_code == 201, response.json()
    pod = Pod.objects.get(public_id=response.json()["id"])
    assert pod.image == "ubuntu:22.04" and pod.template == template
    assert pod.env == [{"key": "A", "value": "1"}]


def test_stop_start_terminate_go_through_the_services(api, team, parts):
    pod = stopped_pod(team, parts["machine"])
    assert api.post(f"/api/v1/pods/{pod.public_id}/stop/").status_code == 400  # already stopped
    response = api.post(f"/api/v1/pods/{pod.public_id}/start/")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == Pod.Status.STARTING
    response = api.post(f"/api/v1/pods/{pod.public_id}/stop/")
    assert response.json()["status"] == Pod.Status.STOPPING
    response = api.post(f"/api/v1/pods/{pod.public_id}/terminate/")
    assert response.status_code == 200
    actions = AuditEvent.objects.filter(resource_id=pod.public_id).values_list("action", "details")
    assert [a for a, _ in actions.order_by("id")] == [
        "pod.started",
        "pod.stopped",
        "pod.terminated",
    ]
    assert all(details["api_key"] == api.key_id for _, details in actions)


def test_list_filters_by_status_and_pages(api, team, parts):
    for status in [Pod.Status.EXITED, Pod.Status.EXITED, Pod.Status.TERMINATED]:
        stopped_pod(team, parts["machine"], status=status)
    body = api.get("/api/v1/pods/?status=EXITED").json()
    assert body["count"] == 2 and {p["status"] for p in body["results"]} == {"exited"}
    assert api.get("/api/v1/pods/?status=exited,terminated").json()["count"] == 3
    assert len(api.get("/api/v1/pods/?limit=1").json()["results"]) == 1
    bad = api.get("/api/v1/pods/?status=BOGUS")
    assert bad.status_code == 400 and "status" in bad.json()["errors"]


def test_other_teams_pods_are_404_and_never_listed(api, charlie, parts):
    theirs = stopped_pod(charlie.memberships.get().team, parts["machine"])
    assert api.get(f"/api/v1/pods/{theirs.public_id}/").status_code == 404
    assert api.post(f"/api/v1/pods/{theirs.public_id}/terminate/").status_code == 404
    assert api.get("/api/v1/pods/").json()["count"] == 0
    theirs.refresh_from_db()
    assert theirs.status == Pod.Status.EXITED


def test_pods_are_addressed_by_public_id_not_pk(api, team, parts):
    pod = stopped_pod(team, parts["machine"])
    assert api.get(f"/api/v1/pods/{pod.pk}/").status_code == 404
    assert api.get(f"/api/v1/pods/{pod.public_id}/").json()["id"] == pod.public_id


def test_read_only_keys_read_but_never_write(team, alice, parts):
    fund(team)
    client, _ = key_client(team, alice, permission="read_only")
    pod = stopped_pod(team, parts["machine"])
    assert client.get("/api/v1/pods/").status_code == 200
    for url in ["/api/v1/pods/", f"/api/v1/pods/{pod.public_id}/start/"]:
        response = client.post(url, DEPLOY, format="json")
        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"
    assert client.delete("/api/v1/network-volumes/x/").status_code == 403
    assert Pod.objects.count() == 1 and Pod.objects.get().status == Pod.Status.EXITED


def test_gpu_types_show_prices_and_free_counts(api, team, parts):
    stopped_pod(team, parts["machine"], status=Pod.Status.RUNNING, gpu_count=3)
    body = api.get("/api/v1/gpu-types/").json()
    a40 = next(g for g in body if g["id"] == "NVIDIA A40")
    assert a40["secure_price"] == "0.790000" or Decimal(a40["secure_price"]) == Decimal("0.79")
    assert isinstance(a40["secure_price"], str)
    assert a40["free"] == 1 and a40["max_per_pod"] == 1
    community = api.get("/api/v1/gpu-types/?cloud_type=COMMUNITY").json()
    assert next(g for g in community if g["id"] == "NVIDIA A40")["free"] == 0
    one = api.get("/api/v1/gpu-types/NVIDIA A40/").json()
    assert one["display_name"] == "A40"
    assert [d["id"] for d in api.get("/api/v1/data-centers/").json()] == ["EU-RO-1", "US-TX-3"]


def test_templates_list_and_create_validated_by_the_template_form(api, team):
    response = api.post(
        "/api/v1/templates/",
        {"name": "Jupyter", "image": "jupyter/base:1", "http_ports": [8888]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    template = PodTemplate.objects.get(public_id=response.json()["id"])
    assert template.team == team and template.ports == [{"port": 8888, "protocol": "http"}]
    assert AuditEvent.objects.filter(resource_id=template.public_id).get().details["api_key"]
    bad = api.post("/api/v1/templates/", {"name": "x", "image": "BAD IMAGE"}, format="json")
    assert bad.status_code == 400 and "image" in bad.json()["errors"]
    assert PodTemplate.objects.count() == 1
    ids = [t["id"] for t in api.get("/api/v1/templates/").json()["results"]]
    assert template.public_id in ids


def test_network_volumes_create_list_delete(api, team, parts):
    body = {"name": "data", "size_gb": 50, "data_center": "EU-RO-1"}
    response = api.post("/api/v1/network-volumes/", body, format="json")
    assert response.status_code == 201, response.json()
    volume_id = response.json()["id"]
    assert api.get("/api/v1/network-volumes/").json()["results"][0]["id"] == volume_id
    bad = api.post("/api/v1/network-volumes/", {**body, "size_gb": 0}, format="json")
    assert bad.status_code == 400 and "size_gb" in bad.json()["errors"]
    assert api.delete(f"/api/v1/network-volumes/{volume_id}/").status_code == 204
    assert not NetworkVolume.objects.exists()
    actions = AuditEvent.objects.filter(resource_id=volume_id).values_list("action", flat=True)
    assert sorted(actions) == ["network_volume.created", "network_volume.deleted"]


def test_a_volume_in_use_is_not_deleted(api, team, parts):
    volume = NetworkVolume.objects.create(team=team, name="v", size_gb=10, data_center=parts["dc"])
    stopped_pod(team, parts["machine"], network_volume=volume)
    response = api.delete(f"/api/v1/network-volumes/{volume.public_id}/")
    assert response.status_code == 400 and "attached" in response.json()["message"]
    assert NetworkVolume.objects.filter(pk=volume.pk).exists()


def pod_key_client(team, parts):
    from rest_framework.test import APIClient

    from pods.lifecycle import issue_api_key

    pod = stopped_pod(team, parts["machine"], status=Pod.Status.RUNNING)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_api_key(pod)}")
    return client, pod


def test_a_pods_own_key_deploys_as_the_pod_but_creates_no_templates(team, parts):
    fund(team)
    client, pod = pod_key_client(team, parts)
    response = client.post("/api/v1/pods/", {**DEPLOY, "gpu_count": 1}, format="json")
    assert response.status_code == 201, response.json()
    child = Pod.objects.get(public_id=response.json()["id"])
    assert child.created_by is None
    event = AuditEvent.objects.get(action="pod.deployed", resource_id=child.public_id)
    assert event.actor_label == f"pod {pod.public_id}" and event.details["api_key"]
    refused = client.post("/api/v1/templates/", {"name": "x", "image": "a:1"}, format="json")
    assert refused.status_code == 403 and not PodTemplate.objects.exists()
    assert client.get("/api/v1/billing/balance/").status_code == 403


def test_the_pod_list_runs_the_same_queries_for_2_pods_as_for_12(api, team, parts):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert api.get("/api/v1/pods/").status_code == 200
        return len(captured)

    queries()  # the key's first use also records last_used_at
    for _ in range(2):
        stopped_pod(team, parts["machine"], status=Pod.Status.RUNNING)
    few = queries()
    for _ in range(10):
        stopped_pod(team, parts["machine"], status=Pod.Status.RUNNING)
    assert queries() == few


def test_env_and_ports_are_shown_with_the_schemas_keys_only(api, team, parts):
    pod = stopped_pod(
        team,
        parts["machine"],
        env=[{"key": "A", "value": "1"}],
        ports=[{"port": 8888, "protocol": "http", "internal": "x"}],
    )
    [row] = api.get("/api/v1/pods/").json()["results"]
    assert row["env"] == [{"key": "A", "value": "1"}] == pod.env
    assert row["ports"] == [{"port": 8888, "protocol": "http"}]
