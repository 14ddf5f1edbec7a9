"""/v1/pods as runpodctl 2.7.2 calls it (`internal/api/pods.go`: ListPods with its filters,
GetPod, CreatePod with the PodCreateRequest `pod create --compute-type CPU` sends, UpdatePod,
Start/Stop/Restart/ResetPod, which decode a Pod from the answer, and DeletePod). Answers are
decoded with runpodctl's Pod struct; every action goes through pods.services (audited);
refused input deploys nothing; outsiders get 404, Basic members and read-only keys 403."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from pods.models import NetworkVolume, Pod
from serverless.models import Worker
from teams.models import ApiKey, AuditEvent, Membership, Role, Team
from tests.api.runpodctl_structs import POD, decode
from tests.api.test_api_keys import make_key
from tests.api.test_runpod_rest_endpoints import call, role_secret
from tests.pods.factories import fund, stopped_pod
from tests.serverless.factories import an_endpoint

A40, RTX = "NVIDIA A40", "NVIDIA GeForce RTX 4090"
# cmd/pod/create.go createPodREST: `runpodctl pod create --compute-type cpu --image
# ubuntu:22.04 --name cpu --ports 8888/http,22/tcp --env '{"A":"1"}'` (omitempty fields).
RUNPODCTL_CPU_CREATE = {
    "name": "cpu",
    "imageName": "ubuntu:22.04",
    "computeType": "CPU",
    "containerDiskInGb": 20,
    "volumeMountPath": "/workspace",
    "ports": ["8888/http", "22/tcp"],
    "env": {"A": "1"},
    "cloudType": "SECURE",
}


def running_pod(team, parts, **fields) -> Pod:
    fields.setdefault("started_at", timezone.now())
    return stopped_pod(team, parts["machine"], status=Pod.Status.RUNNING, **fields)


# Reading ------------------------------------------------------------------------------------


def test_it_lists_the_teams_pods_as_a_bare_array_runpodctl_decodes(client, parts, team, secret):
    pod = running_pod(
        team,
        parts,
        name="train",
        env=[{"key": "A", "value": "1"}],
        ports=[{"port": 8888, "protocol": "http"}, {"port": 22, "protocol": "tcp"}],
    )
    stopped_pod(team, parts["machine"], status=Pod.Status.TERMINATED)
    worker_pod = stopped_pod(team, parts["machine"], kind=Pod.Kind.WORKER)
    Worker.objects.create(
        endpoint=an_endpoint(team), secret_hash="w" * 64, version=1, pod=worker_pod
    )
    response = call(client, "GET", "/pods", secret)
    assert response.status_code == 200
    [listed] = decode(response.content, POD, many=True)
    assert listed == {
        "id": pod.public_id,
        "name": "train",
        "desiredStatus": "RUNNING",
        "createdAt": pod.created_at.isoformat(),
        "lastStatusChange": listed["lastStatusChange"],
        "uptimeSeconds": listed["uptimeSeconds"],
        "imageName": "python:3.11-slim",
        "gpuTypeId": A40,
        "gpuCount": 1,
        "volumeInGb": 1,
        "containerDiskInGb": 5,
        "memoryInGb": 32,
        "vcpuCount": 8,
        "volumeMountPath": "/workspace",
        "ports": ["8888/http", "22/tcp"],
        "costPerHr": float(pod.price().total),
        "env": {"A": "1"},
    }
    assert response.json()[0]["image"] == "python:3.11-slim"  # the spec's name
    assert "machine" not in response.json()[0]


def test_it_filters_the_list_as_runpodctl_asks(client, parts, team, secret):
    gpu = running_pod(team, parts, name="gpu")
    cpu = stopped_pod(
        team,
        parts["cpu_machine"],
        name="cpu",
        gpu_type=None,
        gpu_count=0,
        cpu_instance=parts["cpu"],
    )
    rtx = stopped_pod(team, parts["rtx_machine"], name="rtx")

    def ids(query: str) -> list[str]:
        response = call(client, "GET", f"/pods?{query}", secret)
        assert response.status_code == 200, response.content
        return [p["id"] for p in decode(response.content, POD, many=True)]

    assert ids("computeType=CPU") == [cpu.public_id]
    assert ids("computeType=GPU") == [gpu.public_id, rtx.public_id]
    assert ids("name=rtx") == [rtx.public_id]
    assert ids(f"gpuTypeId={A40}&gpuTypeId={RTX}") == [gpu.public_id, rtx.public_id]
    assert ids(f"gpuTypeId={RTX}") == [rtx.public_id]
    assert ids("dataCenterId=US-TX-3") == []
    assert ids("desiredStatus=RUNNING") == [gpu.public_id]
    assert call(client, "GET", "/pods?endpointId=x", secret).status_code == 400


def test_it_gets_a_pod_with_its_machine_and_volume_when_asked(client, parts, team, secret):
    volume = NetworkVolume.objects.create(team=team, name="v", size_gb=10, data_center=parts["dc"])
    pod = running_pod(team, parts, network_volume=volume)
    path = f"/pods/{pod.public_id}?includeMachine=true&includeNetworkVolume=true"
    response = call(client, "GET", path, secret)
    found = decode(response.content, POD)
    assert found["machine"]["location"] == "EU-RO-1"
    assert response.json()["networkVolume"] == {
        "id": volume.public_id,
        "name": "v",
        "size": 10,
        "dataCenterId": "EU-RO-1",
    }


def test_the_list_reads_a_fixed_number_of_queries(client, parts, team, secret):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            path = "/pods?includeMachine=true&includeNetworkVolume=true"
            assert call(client, "GET", path, secret).status_code == 200
        return len(queries)

    running_pod(team, parts)
    count()  # the key's first use records last_used_at
    one = count()
    for _ in range(5):
        running_pod(team, parts)
        stopped_pod(team, parts["cpu_machine"], gpu_type=None, cpu_instance=parts["cpu"])
    assert count() == one <= 3  # key, membership, pods with their rows


# Creating -----------------------------------------------------------------------------------


def test_it_creates_a_cpu_pod_from_runpodctls_request(client, parts, team, secret, alice):
    fund(team)
    response = call(client, "POST", "/pods", secret, RUNPODCTL_CPU_CREATE)
    assert response.status_code == 201, response.content
    created = decode(response.content, POD)
    pod = Pod.objects.get()
    assert created["id"] == pod.public_id
    assert (created["imageName"], created["ports"], created["env"]) == (
        "ubuntu:22.04",
        ["8888/http", "22/tcp"],
        {"A": "1"},
    )
    assert (pod.gpu_type, pod.cpu_instance_id, pod.container_disk_gb) == (None, "cpu3c-2-4", 20)
    assert pod.env == [{"key": "A", "value": "1"}]
    assert AuditEvent.objects.get(action="pod.deployed").actor == alice


def test_it_creates_a_gpu_pod_from_a_pod_create_input(client, parts, team, secret):
    fund(team)
    body = {
        "name": "gpu",
        "imageName": "runpod/pytorch:2.1",
        "gpuTypeIds": [RTX],
        "gpuCount": 2,
        "cloudType": "COMMUNITY",
        "dataCenterIds": ["EU-RO-1"],
        "volumeInGb": 10,
        "dockerStartCmd": ["python", "-m", "http.server"],
    }
    response = call(client, "POST", "/pods", secret, body)
    assert response.status_code == 201, response.content
    pod = Pod.objects.get()
    assert (pod.gpu_type_id, pod.gpu_count, pod.cloud_type) == (RTX, 2, "COMMUNITY")
    assert pod.start_command == "python -m http.server"
    assert response.json()["dockerStartCmd"] == ["python", "-m", "http.server"]


def test_it_tries_the_gpu_types_in_order(client, parts, team, secret):
    fund(team)
    body = {"imageName": "ubuntu:22.04", "gpuTypeIds": [RTX, A40], "gpuCount": 3}
    response = call(client, "POST", "/pods", secret, body)  # 3 GPUs: only the A40 box has room
    assert response.status_code == 201, response.content
    assert Pod.objects.get().gpu_type_id == A40


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"ports": ["8888/udp"]}, "ports"),
        ({"gpuTypeIds": ["NVIDIA Z9"]}, "gpu"),
        ({"env": ["A=1"]}, "env"),
        ({"gpuCount": "1"}, "gpuCount"),
        ({"interruptible": True}, "interruptible"),
        ({"computeType": "TPU"}, "computeType"),
        ({"cloudType": "ALL"}, "cloudType"),
        ({"gpuTypeId": A40}, "gpuTypeId"),
        ({"templateId": "nosuchtemplate"}, "templateId"),
        ({"imageName": "Not An Image"}, "image"),
    ],
)
def test_it_refuses_bad_input_by_name_and_deploys_nothing(
    client, parts, team, secret, body, message
):
    fund(team)
    body = {"imageName": "ubuntu:22.04", "gpuTypeIds": [A40], **body}
    response = call(client, "POST", "/pods", secret, body)
    assert response.status_code == 400, response.content
    assert message in response.json()["error"]
    assert not Pod.objects.exists()
    assert not AuditEvent.objects.filter(action="pod.deployed").exists()


def test_without_funds_the_deploy_is_refused(client, parts, team, secret):
    response = call(client, "POST", "/pods", secret, RUNPODCTL_CPU_CREATE)
    assert response.status_code == 400
    assert response.json()["error"]
    assert not Pod.objects.exists()


# Actions ------------------------------------------------------------------------------------


def test_stop_start_restart_and_reset_answer_the_pod(client, parts, team, secret):
    fund(team)
    pod = running_pod(team, parts)
    stopped = call(client, "POST", f"/pods/{pod.public_id}/stop", secret)
    assert stopped.status_code == 200, stopped.content
    assert decode(stopped.content, POD)["desiredStatus"] == "EXITED"
    Pod.objects.filter(pk=pod.pk).update(status=Pod.Status.EXITED)
    started = call(client, "POST", f"/pods/{pod.public_id}/start", secret)
    assert started.status_code == 200, started.content
    assert decode(started.content, POD)["desiredStatus"] == "RUNNING"
    for verb in ("restart", "reset"):
        Pod.objects.filter(pk=pod.pk).update(status=Pod.Status.RUNNING, next_status="")
        answer = call(client, "POST", f"/pods/{pod.public_id}/{verb}", secret)
        assert answer.status_code == 200, answer.content
        assert decode(answer.content, POD)["id"] == pod.public_id
    actions = AuditEvent.objects.filter(resource_id=pod.public_id).values_list("action", flat=True)
    assert sorted(actions) == ["pod.restarted", "pod.restarted", "pod.started", "pod.stopped"]


def test_an_action_the_pod_cannot_take_is_a_400(client, parts, team, secret):
    pod = running_pod(team, parts)
    response = call(client, "POST", f"/pods/{pod.public_id}/start", secret)
    assert response.status_code == 400
    assert "cannot be started" in response.json()["error"]
    assert Pod.objects.get().status == Pod.Status.RUNNING


def test_patch_renames_and_refuses_what_cannot_change(client, parts, team, secret):
    pod = running_pod(team, parts, name="old")
    path = f"/pods/{pod.public_id}"
    # runpodctl pod update --name new --image <the same image> (PodUpdateRequest)
    same = {"name": "new", "imageName": "python:3.11-slim"}
    response = call(client, "PATCH", path, secret, same)
    assert response.status_code == 200, response.content
    assert decode(response.content, POD)["name"] == "new"
    assert AuditEvent.objects.filter(action="pod.renamed").count() == 1
    refused = call(client, "POST", f"{path}/update", secret, {"name": "x", "volumeInGb": 50})
    assert refused.status_code == 400
    assert "volumeInGb" in refused.json()["error"]
    assert Pod.objects.get().name == "new"


def test_delete_terminates_the_pod(client, parts, team, secret):
    pod = running_pod(team, parts)
    response = call(client, "DELETE", f"/pods/{pod.public_id}", secret)
    assert response.status_code == 204
    pod.refresh_from_db()
    assert pod.next_status == Pod.Status.TERMINATED
    assert AuditEvent.objects.filter(action="pod.terminated").count() == 1


# Access -------------------------------------------------------------------------------------

VERBS = [
    ("GET", ""),
    ("PATCH", ""),
    ("DELETE", ""),
    ("POST", "/stop"),
    ("POST", "/start"),
    ("POST", "/restart"),
    ("POST", "/reset"),
    ("POST", "/update"),
]


def test_another_teams_pod_is_not_found(client, parts, team, charlie):
    pod = running_pod(team, parts)
    other = Team.objects.create(name="Other", slug="other", is_personal=False)
    Membership.objects.create(user=charlie, team=other, role=Role.ADMIN)
    outsider = make_key(other, charlie)[1]
    assert call(client, "GET", "/pods", outsider).json() == []
    for method, suffix in VERBS:
        response = call(client, method, f"/pods/{pod.public_id}{suffix}", outsider, {"name": "x"})
        assert response.status_code == 404, (method, suffix)
    assert Pod.objects.get().status == Pod.Status.RUNNING
    assert not AuditEvent.objects.filter(resource_id=pod.public_id).exists()


@pytest.mark.parametrize("who", ["basic", "read-only"])
def test_basic_members_and_read_only_keys_read_but_cannot_act(client, parts, team, alice, who):
    pod = running_pod(team, parts, name="old")
    secret = (
        role_secret(team, Role.BASIC)
        if who == "basic"
        else make_key(team, alice, ApiKey.Permission.READ_ONLY)[1]
    )
    assert call(client, "GET", "/pods", secret).status_code == 200
    assert call(client, "GET", f"/pods/{pod.public_id}", secret).status_code == 200
    for method, suffix in VERBS[1:]:
        response = call(client, method, f"/pods/{pod.public_id}{suffix}", secret, {"name": "x"})
        assert response.status_code == 403, (method, suffix)
    assert call(client, "POST", "/pods", secret, RUNPODCTL_CPU_CREATE).status_code == 403
    assert Pod.objects.get().name == "old"
    assert not AuditEvent.objects.filter(resource_id=pod.public_id).exists()
