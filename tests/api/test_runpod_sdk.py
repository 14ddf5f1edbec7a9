"""The official runpod SDK (1.12.0, unmodified) against a live server on PostgreSQL: every call
a team's scripts make for pods, GPU types, templates, the user and registry auth, checked
against the console's rows. Pods really run (process runtime, Celery eager in the server).

The SDK runs in a child process, so RUNPOD_API_BASE_URL / RUNPOD_ENDPOINT_BASE_URL are set
before `import runpod` exactly as README's recipe says, and HOME is empty (no
~/.runpod/config.toml). The child evaluates one SDK expression per line and answers in JSON."""

import os
import tempfile
from collections.abc import Iterator

import pytest

from pods.models import Pod, PodTemplate, RegistryCredential
from teams.models import AuditEvent
from tests.api.test_api_keys import make_key
from tests.pods.conftest import pods_settings, reap  # noqa: F401 (fixtures)
from tests.pods.factories import catalogue, fund
from tests.sdk_driver import Sdk, sdk_process

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sdk(live_server, team, alice) -> Iterator[Sdk]:
    _, secret = make_key(team, alice)
    with tempfile.TemporaryDirectory(prefix="sdk-home-") as home:
        env = {"PATH": os.environ["PATH"], "HOME": home}
        with sdk_process(live_server.url, secret, env) as sdk:
            yield sdk


@pytest.fixture
def parts(team):
    fund(team)
    return catalogue()


def test_gpu_types(sdk, parts):
    gpus = sdk.call("runpod.get_gpus()")
    assert {gpu["id"] for gpu in gpus} == {"NVIDIA A40", "NVIDIA GeForce RTX 4090"}
    gpu = sdk.call('runpod.get_gpu("NVIDIA A40")')
    assert (gpu["securePrice"], gpu["communityPrice"], gpu["maxGpuCount"]) == (0.79, 0.47, 4)
    assert gpu["lowestPrice"] == {"minimumBidPrice": 0.28, "uninterruptablePrice": 0.79}
    missing = sdk.answer('runpod.get_gpu("NVIDIA H100")')
    assert missing["error"] == "ValueError"


@pytest.mark.usefixtures("reap")
def test_gpu_pod_lifecycle(sdk, parts, alice):
    created = sdk.call(
        'runpod.create_pod("sdk gpu", "python:3.11-slim", "NVIDIA A40", gpu_count=1, '
        'volume_in_gb=1, container_disk_in_gb=5, docker_args="exec sleep 600", '
        'ports="8888/http, 22/tcp", env={"A": "1", "B": "x y"}, data_center_id="EU-RO-1")'
    )
    pod = Pod.objects.get(public_id=created["id"])
    assert created["env"] == ["A=1", "B=x y"] and created["machineId"] == pod.machine.public_id
    assert (pod.status, pod.gpu_count, pod.image) == ("running", 1, "python:3.11-slim")
    assert pod.env == [{"key": "A", "value": "1"}, {"key": "B", "value": "x y"}]
    assert AuditEvent.objects.filter(action="pod.deployed", actor=alice).count() == 1

    [listed] = sdk.call("runpod.get_pods()")
    assert listed["id"] == pod.public_id and listed["desiredStatus"] == "RUNNING"
    assert listed["ports"] == "8888/http,22/tcp" and listed["machine"]["gpuDisplayName"] == "A40"
    one = sdk.call(f'runpod.get_pod("{pod.public_id}")')
    ports = {(p["privatePort"], p["type"]) for p in one["runtime"]["ports"]}
    assert ports == {(8888, "http"), (22, "tcp")} and one["costPerHr"] > 0.79

    assert sdk.call(f'runpod.stop_pod("{pod.public_id}")')["desiredStatus"] == "EXITED"
    pod.refresh_from_db()
    assert pod.status == Pod.Status.EXITED
    resumed = sdk.call(f'runpod.resume_pod("{pod.public_id}", 1)')
    pod.refresh_from_db()
    assert resumed["desiredStatus"] == "RUNNING" and pod.status == Pod.Status.RUNNING
    assert sdk.call(f'runpod.terminate_pod("{pod.public_id}")') is None
    pod.refresh_from_db()
    assert pod.status == Pod.Status.TERMINATED
    assert sdk.call("runpod.get_pods()") == []
    actions = AuditEvent.objects.filter(actor=alice, resource_id=pod.public_id)
    assert {"pod.stopped", "pod.started", "pod.terminated"} <= set(
        actions.values_list("action", flat=True)
    )


@pytest.mark.usefixtures("reap")
def test_cpu_pod(sdk, parts):
    """The SDK sends deployCpuPod with templateId "runpod-ubuntu" by default."""
    created = sdk.call(
        'runpod.create_pod("sdk cpu", "python:3.11-slim", instance_id="cpu3c-2-4", '
        'container_disk_in_gb=5, docker_args="exec sleep 600")'
    )
    pod = Pod.objects.get(public_id=created["id"])
    assert (pod.cpu_instance_id, pod.gpu_type_id, pod.status) == ("cpu3c-2-4", None, "running")
    assert pod.machine == parts["cpu_machine"]
    assert sdk.call(f'runpod.terminate_pod("{pod.public_id}")') is None


def test_a_refused_deploy_is_a_query_error_and_creates_nothing(sdk, parts):
    answer = sdk.answer(
        'runpod.create_pod("bad", "python:3.11-slim", "NVIDIA A40", env={"LD_PRELOAD": "/x"})'
    )
    assert answer["error"] == "QueryError" and "LD_PRELOAD" in answer["message"]
    assert not Pod.objects.exists()


def test_template_user_and_registry_auth(sdk, team, alice):
    template = sdk.call(
        'runpod.create_template("sdk tpl", "ubuntu:22.04", docker_start_cmd="sleep 1", '
        'ports="8888/http", env={"A": "1"}, container_disk_in_gb=7)'
    )
    row = PodTemplate.objects.get(public_id=template["id"], team=team)
    assert (row.image, row.start_command, row.container_disk_gb) == ("ubuntu:22.04", "sleep 1", 7)
    assert row.env == [{"key": "A", "value": "1"}] and template["ports"] == "8888/http"

    user = sdk.call("runpod.get_user()")
    assert user == {"id": str(alice.pk), "pubKey": "", "networkVolumes": []}

    auth = sdk.call('runpod.create_container_registry_auth("hub", "me", "secret-1")')
    credential = RegistryCredential.objects.get(public_id=auth["id"], team=team)
    assert (credential.name, credential.username) == ("hub", "me")
    updated = sdk.call(f'runpod.update_container_registry_auth("{auth["id"]}", "me2", "s2")')
    credential.refresh_from_db()
    assert updated == auth and credential.username == "me2"
    sdk.call(f'runpod.delete_container_registry_auth("{auth["id"]}")')
    assert not RegistryCredential.objects.exists()
