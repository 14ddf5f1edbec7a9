"""A network volume on the process runtime: mounted into two running pods on two machines of
its data centre at once, kept when a pod goes, and not deletable while a pod uses it. (The
docker runtime's side is in test_docker_runtime.py.)"""

import pytest
from django.urls import reverse

from pods import services
from pods.lifecycle import backend_for
from pods.models import CloudType, NetworkVolume, Pod
from pods.runtime.base import network_volume_dir
from tests.conftest import login
from tests.pods.factories import deploy_request, fund
from tests.waiting import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("reap")]

WRITER = 'echo "written by $RUNPOD_POD_ID" >> /data/shared.txt; exec sleep 600'
READER = (
    "while [ ! -s /data/shared.txt ]; do sleep 0.05; done; "
    'cat /data/shared.txt; echo "answered by $RUNPOD_POD_ID" >> /data/shared.txt; exec sleep 600'
)


def deploy(team, alice, parts, volume, command: str, **overrides) -> Pod:
    request = deploy_request(
        parts["a40"],
        network_volume=volume,
        volume_mount_path="/data",
        start_command=command,
        **overrides,
    )
    pod = services.deploy_pod(actor=alice, team=team, request=request)
    pod.refresh_from_db()
    assert pod.status == Pod.Status.RUNNING, pod.status_reason
    return pod


def shell_output(pod: Pod, command: str) -> str:
    session = backend_for(pod).open_shell(pod.runtime_handle, command=("/bin/sh", "-c", command))
    output = b""
    try:
        while True:
            chunk = session.read(timeout=0.2)
            output += chunk
            if not chunk and session.closed:
                break
    finally:
        session.close()
    return output.decode()


def test_it_shares_one_network_volume_between_two_running_pods(team, alice, parts):
    fund(team)
    volume = services.create_network_volume(
        actor=alice, team=team, name="datasets", size_gb=10, data_center=parts["dc"]
    )
    writer = deploy(team, alice, parts, volume, WRITER)
    reader = deploy(
        team, alice, parts, volume, READER, gpu_type=parts["rtx"], cloud_type=CloudType.COMMUNITY
    )
    assert writer.machine != reader.machine
    assert writer.machine.data_center == reader.machine.data_center
    log = backend_for(reader).read_logs
    wait_for(lambda: f"written by {writer.public_id}" in log(reader.runtime_handle).text)
    seen = wait_for(lambda: "answered" in (text := shell_output(writer, "cat /data/*")) and text)
    assert f"answered by {reader.public_id}" in seen  # the writer reads what the reader wrote

    client = login(alice)
    client.post(reverse("pod_terminate", args=[team.slug, writer.public_id]))
    assert Pod.objects.get(pk=writer.pk).status == Pod.Status.TERMINATED
    shared = network_volume_dir(volume.public_id) / "shared.txt"
    assert f"answered by {reader.public_id}" in shared.read_text()  # terminating kept it

    response = client.post(reverse("network_volume_delete", args=[team.slug, volume.public_id]))
    assert response.status_code == 302
    assert NetworkVolume.objects.filter(pk=volume.pk).exists()  # the reader still uses it
    messages = client.get(reverse("storage", args=[team.slug])).content.decode()
    assert "This volume is attached to test pod. Terminate those pods first." in messages

    client.post(reverse("pod_terminate", args=[team.slug, reader.public_id]))
    client.post(reverse("network_volume_delete", args=[team.slug, volume.public_id]))
    assert not NetworkVolume.objects.filter(pk=volume.pk).exists()
    assert not network_volume_dir(volume.public_id).exists()


def test_it_keeps_the_data_when_a_pod_stops_and_starts_on_it(team, alice, parts):
    fund(team)
    volume = services.create_network_volume(
        actor=alice, team=team, name="home", size_gb=10, data_center=parts["dc"]
    )
    pod = deploy(team, alice, parts, volume, WRITER)
    shared = network_volume_dir(volume.public_id) / "shared.txt"
    wait_for(lambda: shared.exists() and shared.read_text())
    services.stop_pod(actor=alice, pod=pod)
    with shared.open("a") as data:
        data.write("kept across a stop\n")
    services.start_pod(actor=alice, pod=pod)
    pod.refresh_from_db()
    assert pod.status == Pod.Status.RUNNING
    wait_for(lambda: shared.read_text().count("written by") == 2)  # mounted again, appended to
    assert "kept across a stop" in shared.read_text()
