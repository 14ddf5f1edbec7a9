"""The docker runtime against a real engine: Podman's Docker-compatible API, driven by the docker
SDK exactly as a Docker Engine would be. GPU requests and pull credentials are asserted on the
HTTP requests sent, since this machine has no GPU and no registry."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid

import pytest
import requests
from docker.errors import NotFound

from pods.runtime import MountSpec, PodSpec, PortSpec, RuntimeFailure, get_backend
from pods.runtime import docker as docker_runtime
from pods.runtime.docker import DockerBackend
from tests.pods import podman
from tests.pods.podman import IMAGE, RecordedRequests, wait_for

GIB = 1024**3
# The engine's fixtures, shared with tests/security/test_docker_hardening.py.
podman_url = podman.podman_url
backend = podman.backend


def pod_id() -> str:
    return uuid.uuid4().hex[:14]


def spec(command: str, **overrides) -> PodSpec:
    pod = overrides.pop("pod_id", None) or pod_id()
    mounts = overrides.pop("mounts", (MountSpec(pod, "/workspace", "volume", 1),))
    values = {"image": IMAGE, "env": {}, "mounts": mounts, "working_dir": "/workspace"}
    return PodSpec(pod_id=pod, command=command, **{**values, **overrides})


def run(backend: DockerBackend, pod: str, *argv: str) -> str:
    container = backend.client.containers.get(backend.container_name(pod))
    result = container.exec_run(list(argv))
    return result.output.decode()


def page(url: str) -> str | None:
    try:
        return requests.get(url, timeout=2).text
    except requests.RequestException:
        return None


def full_log(backend: DockerBackend, pod: str) -> str:
    return backend.read_logs({"pod_id": pod}).text


HTTPD = 'mkdir -p /www && echo "hello $GREETING" > /www/index.html && exec httpd -f -p 8080 -h /www'


def test_it_serves_a_declared_port_and_keeps_only_the_volume_across_stop_and_start(backend):
    pod = spec(HTTPD, env={"GREETING": "from the pod"}, ports=(PortSpec(8080, "http"),))
    result = backend.start(pod)
    [mapping] = result.ports
    assert (mapping.private_port, mapping.protocol, mapping.host) == (8080, "http", "127.0.0.1")
    url = f"http://127.0.0.1:{mapping.public_port}/"
    assert wait_for(lambda: page(url)) == "hello from the pod\n"
    run(backend, pod.pod_id, "sh", "-c", "echo kept > /workspace/kept.txt; echo lost > /root/x")

    assert backend.stop(result.handle) == 143  # SIGTERM ended httpd
    assert backend.poll(result.handle).state == "exited"
    again = backend.start(pod)

    assert backend.poll(again.handle).state == "running"
    assert run(backend, pod.pod_id, "cat", "/workspace/kept.txt") == "kept\n"
    assert "No such file" in run(backend, pod.pod_id, "cat", "/root/x")
    assert wait_for(lambda: page(f"http://127.0.0.1:{again.ports[0].public_port}/"))
    backend.delete_pod_data(pod.pod_id, volume_name=pod.pod_id)


def test_it_applies_the_memory_and_cpu_limits_and_reports_usage(backend):
    pod = spec("exec sleep 600", memory_gb=1, vcpu=1)
    result = backend.start(pod)
    host = backend.client.containers.get(result.handle["container_id"]).attrs["HostConfig"]
    run(backend, pod.pod_id, "dd", "if=/dev/zero", "of=/workspace/blob", "bs=1024", "count=200")
    run(backend, pod.pod_id, "dd", "if=/dev/zero", "of=/root/scratch", "bs=1024", "count=300")

    usage = backend.usage(result.handle)

    assert (host["Memory"], host["NanoCpus"]) == (GIB, 1_000_000_000)
    assert usage.memory_bytes > 0
    assert usage.memory_limit_bytes == GIB
    assert usage.processes >= 1
    assert 200 * 1024 <= usage.volume_bytes < 300 * 1024
    assert usage.container_disk_bytes >= 300 * 1024
    backend.delete_pod_data(pod.pod_id, volume_name=pod.pod_id)
    assert backend.usage(result.handle).memory_bytes == 0


def test_it_kills_a_pod_ignoring_sigterm_after_five_seconds(backend):
    pod = spec("trap '' TERM; echo ready; while true; do sleep 1; done")
    result = backend.start(pod)
    wait_for(lambda: "ready" in full_log(backend, pod.pod_id))

    began = time.monotonic()
    exit_code = backend.stop(result.handle, grace_seconds=5)
    took = time.monotonic() - began

    assert 4.5 <= took < 10
    assert exit_code == 137  # SIGKILL
    assert backend.poll(result.handle).state == "exited"
    assert backend.stop(result.handle) == 137  # stopping a stopped pod changes nothing
    backend.delete_pod_data(pod.pod_id, volume_name=pod.pod_id)


def test_it_reports_a_pod_that_ended_by_itself_and_a_lost_one(backend):
    pod = spec("echo bye; exit 3", mounts=())
    result = backend.start(pod)

    assert wait_for(lambda: backend.poll(result.handle).state == "exited")
    assert backend.poll(result.handle).exit_code == 3
    backend.reset_container_disk(pod.pod_id)
    assert backend.poll(result.handle).state == "lost"
    assert full_log(backend, pod.pod_id) == "bye\n"  # kept after the container went


def test_it_terminates_a_pod_removing_its_container_and_volume(backend):
    pod = spec("exec sleep 600")
    result = backend.start(pod)
    volume = backend.volume_name(pod.mounts[0])
    assert backend.client.volumes.get(volume)

    backend.stop(result.handle)
    backend.delete_pod_data(pod.pod_id, volume_name=pod.pod_id)

    with pytest.raises(NotFound):
        backend.client.containers.get(result.handle["container_id"])
    with pytest.raises(NotFound):
        backend.client.volumes.get(volume)
    assert backend.poll(result.handle).state == "lost"
    assert not backend.archive_path(pod.pod_id).exists()


def test_it_shares_a_network_volume_between_pods_and_keeps_it_after_one_is_deleted(backend):
    shared = MountSpec(f"nv{uuid.uuid4().hex[:8]}", "/data", "network_volume", 10)
    writer = spec("exec sleep 600", mounts=(shared,))
    reader = spec("exec sleep 600", mounts=(shared,))
    backend.start(writer)
    backend.start(reader)

    run(backend, writer.pod_id, "sh", "-c", "echo from-writer > /data/note.txt")
    assert run(backend, reader.pod_id, "cat", "/data/note.txt") == "from-writer\n"
    backend.delete_pod_data(writer.pod_id, volume_name=None)

    assert run(backend, reader.pod_id, "cat", "/data/note.txt") == "from-writer\n"
    with pytest.raises(RuntimeFailure, match="delete volume"):
        backend.delete_volume(shared.name)  # the engine refuses while a container uses it
    backend.delete_pod_data(reader.pod_id, volume_name=None)
    assert backend.client.volumes.get(backend.volume_name(shared))
    backend.delete_volume(shared.name)
    with pytest.raises(NotFound):
        backend.client.volumes.get(backend.volume_name(shared))


def created_host_config(recorded: RecordedRequests) -> dict:
    """The container that was created: the last create (a first one, with a disk quota, is
    refused by an engine without quotas until the process has learnt that)."""
    return json.loads(recorded.to("POST", "/containers/create")[-1].body)["HostConfig"]


def test_it_requests_gpus_by_device_id_or_count_and_none_without_gpus(backend):
    by_id = spec("exec sleep 600", mounts=(), gpu_count=2, gpu_device_ids=("GPU-1", "GPU-3"))
    by_count = spec("exec sleep 600", mounts=(), gpu_count=2)
    without = spec("exec sleep 600", mounts=())
    host_configs = []
    for pod in (by_id, by_count, without):
        with RecordedRequests(backend.client.api) as recorded:
            backend.start(pod)  # Podman accepts the request and, having no GPU, ignores it
        host_configs.append(created_host_config(recorded))
        backend.delete_pod_data(pod.pod_id, volume_name=None)

    base = {"Driver": "nvidia", "Capabilities": [["gpu"]], "Options": {}}
    assert host_configs[0]["DeviceRequests"] == [
        {**base, "Count": 0, "DeviceIDs": ["GPU-1", "GPU-3"]}
    ]
    assert host_configs[1]["DeviceRequests"] == [{**base, "Count": 2, "DeviceIDs": []}]
    assert "DeviceRequests" not in host_configs[2]


def test_it_creates_every_pod_container_confined(backend):
    pod = spec(HTTPD, ports=(PortSpec(8080, "http"),), gpu_count=1)
    with RecordedRequests(backend.client.api) as recorded:
        backend.start(pod)
    host = created_host_config(recorded)
    backend.delete_pod_data(pod.pod_id, volume_name=pod.pod_id)

    assert host["CapDrop"] == ["ALL"]
    assert sorted(host["CapAdd"]) == sorted(docker_runtime.POD_CAPABILITIES)
    assert "NET_RAW" not in host["CapAdd"] and "SYS_ADMIN" not in host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["PidsLimit"] == 4096
    assert (host["NetworkMode"], host["IpcMode"], host["CgroupnsMode"]) == (
        "bridge",
        "private",
        "private",
    )
    assert not host.get("Privileged")
    assert not host.get("PidMode") and not host.get("UsernsMode")  # private, never the host's
    assert not host.get("Binds") and not host.get("Devices")  # no host path, no host device
    assert {m["Type"] for m in host["Mounts"]} == {"volume"}
    assert host["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert [r["Driver"] for r in host["DeviceRequests"]] == ["nvidia"]  # GPUs only this way


def test_it_passes_the_machine_runtime_pids_limit_and_network(backend):
    settings = {**backend.settings, "runtime": "nvidia", "pids_limit": 64, "network": "podman"}
    tuned = get_backend("docker", settings)
    pod = spec("exec sleep 600", mounts=())
    with RecordedRequests(tuned.client.api) as recorded:
        tuned.start(pod)  # Podman's Docker API takes Runtime and leaves its own runtime in use
    host = created_host_config(recorded)
    tuned.delete_pod_data(pod.pod_id, volume_name=None)

    assert (host["Runtime"], host["PidsLimit"], host["NetworkMode"]) == ("nvidia", 64, "podman")


def test_it_sends_a_podman_user_namespace_mode(backend):
    remapped = get_backend("docker", {**backend.settings, "userns_mode": "auto"})
    pod = spec("exec sleep 600", mounts=())
    with RecordedRequests(remapped.client.api) as recorded:
        try:
            remapped.start(pod)
        except RuntimeFailure as error:
            # Podman needs /etc/subuid ranges for its `containers` user (this machine has none).
            assert "create the container" in str(error)
        else:
            uid_map = run(remapped, pod.pod_id, "cat", "/proc/self/uid_map").split()
            assert uid_map[:2] != ["0", "0"]  # the pod's root is not the host's
    remapped.delete_pod_data(pod.pod_id, volume_name=None)

    creates = recorded.to("POST", "/containers/create")
    assert creates  # with and without the disk quota, each carried the mode
    assert {json.loads(c.body)["HostConfig"]["UsernsMode"] for c in creates} == {"auto"}


def test_it_refuses_to_start_without_the_daemon_remapping_it_requires(backend):
    strict = get_backend("docker", {**backend.settings, "userns_mode": "remap"})
    with (
        RecordedRequests(strict.client.api) as recorded,
        pytest.raises(RuntimeFailure, match="userns-remap"),
    ):
        strict.start(spec("exec sleep 600", mounts=()))

    assert not recorded.to("POST", "/containers/create")


def test_it_asks_for_a_disk_quota_and_starts_without_one_where_the_engine_has_none(
    backend, monkeypatch
):
    monkeypatch.setattr(docker_runtime, "NO_DISK_QUOTA", set())
    pod = spec("exec sleep 600", mounts=(), container_disk_gb=5)
    with RecordedRequests(backend.client.api) as recorded:
        result = backend.start(pod)

    first, second = recorded.to("POST", "/containers/create")
    assert json.loads(first.body)["HostConfig"]["StorageOpt"] == {"size": "5G"}
    assert "StorageOpt" not in json.loads(second.body)["HostConfig"]
    assert result.handle["disk_limited"] is False  # overlay here is not on xfs with pquota
    strict = get_backend("docker", {**backend.settings, "disk_limit": "required"})
    with pytest.raises(RuntimeFailure, match="cannot limit the container disk"):
        strict.start(spec("exec sleep 600", mounts=()))
    backend.delete_pod_data(pod.pod_id, volume_name=None)


def test_it_pulls_a_missing_image_with_the_registry_credentials(backend):
    auth = {"username": "deploy", "password": "s3cret", "registry": "registry.invalid"}
    pod = spec("true", mounts=(), image="registry.invalid/acme/app:1", registry_auth=auth)
    failure = "Could not pull image registry.invalid/acme/app:1"
    with (
        RecordedRequests(backend.client.api) as recorded,
        pytest.raises(RuntimeFailure, match=failure),
    ):
        backend.start(pod)

    [pull] = recorded.to("POST", "/images/create")
    assert "fromImage=registry.invalid%2Facme%2Fapp" in pull.path_url and "tag=1" in pull.path_url
    sent = json.loads(base64.urlsafe_b64decode(pull.headers["X-Registry-Auth"]))
    assert sent == {"username": "deploy", "password": "s3cret", "serveraddress": "registry.invalid"}
    assert not recorded.to("POST", "/containers/create")


def test_it_opens_a_shell_in_the_container_with_a_pty(backend):
    pod = spec("exec sleep 600")
    result = backend.start(pod)
    shell = backend.open_shell(result.handle)
    shell.resize(cols=120, rows=40)
    shell.write(b"echo hi; pwd; stty size\n")

    output = b""

    def answered() -> bool:
        nonlocal output
        output += shell.read(timeout=0.2)
        return b"40 120" in output

    wait_for(answered)
    lines = output.decode().splitlines()
    assert "hi" in lines and "/workspace" in lines
    assert not shell.closed
    shell.close()
    assert shell.closed
    exiting = backend.open_shell(result.handle)
    exiting.write(b"exit\n")
    wait_for(lambda: exiting.read() == b"" and exiting.closed, seconds=5)
    exiting.close()
    assert not re.search(r"\s/bin/sh$", run(backend, pod.pod_id, "ps"), re.M)  # shell gone
    backend.delete_pod_data(pod.pod_id, volume_name=pod.pod_id)


def test_it_refuses_a_shell_in_a_stopped_pod(backend):
    pod = spec("exec sleep 600", mounts=())
    result = backend.start(pod)
    backend.stop(result.handle)

    with pytest.raises(RuntimeFailure, match="not running"):
        backend.open_shell(result.handle)
    backend.delete_pod_data(pod.pod_id, volume_name=None)


def test_it_reads_only_new_log_lines_from_a_cursor(backend):
    pod = spec("echo one; echo two; sleep 2; echo three; exec sleep 600", mounts=())
    result = backend.start(pod)
    first = wait_for(lambda: "two" in (chunk := backend.read_logs(result.handle)).text and chunk)
    assert first.text == "one\ntwo\n"

    later = wait_for(
        lambda: (c := backend.read_logs(result.handle, cursor=first.cursor)).text and c
    )
    assert later.text == "three\n"
    assert backend.read_logs(result.handle, cursor=later.cursor).text == ""
    backend.stop(result.handle, grace_seconds=1)
    backend.reset_container_disk(pod.pod_id)

    assert backend.read_logs(result.handle, cursor=later.cursor).text == ""
    assert backend.read_logs(result.handle).text == "one\ntwo\nthree\n"
    assert backend.read_logs(result.handle, limit=6).text == "three\n"
    backend.delete_pod_data(pod.pod_id, volume_name=None)


def test_it_splits_log_entries_sharing_a_second_across_reads():
    raw = "2026-01-02T03:04:05Z a\n2026-01-02T03:04:05Z b\n2026-01-02T03:04:05.5Z c\n"
    entries = docker_runtime.parse_log(raw)
    second = entries[0].second

    taken = docker_runtime.take_bytes(entries, 4, newest=False)
    cursor = docker_runtime.next_cursor((0, 0), taken)
    rest = docker_runtime.entries_after(entries, *docker_runtime.parse_cursor(cursor))

    assert [e.text for e in taken] == ["a\n", "b\n"]
    assert cursor == f"{second}:2"
    assert [e.text for e in rest] == ["c\n"]


def test_it_tells_what_engine_it_reaches_or_why_not(backend):
    info = backend.test_connection()
    unreachable = DockerBackend(settings={"base_url": "unix:///nonexistent/docker.sock"})

    assert re.match(r"\d+\.\d+", info["version"])
    assert info["api_version"]
    with pytest.raises(RuntimeFailure, match="unix:///nonexistent/docker.sock"):
        unreachable.test_connection()


def test_it_refuses_unusable_tls_settings():
    backend = DockerBackend(
        settings={"base_url": "tcp://gpu-host:2376", "tls_ca_cert": "/nonexistent/ca.pem"}
    )

    with pytest.raises(RuntimeFailure, match="TLS settings are unusable"):
        backend.test_connection()
