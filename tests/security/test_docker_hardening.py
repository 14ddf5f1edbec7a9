"""A pod on the docker runtime tries, as hostile code would, to use the privileges a container
could have: raw sockets, mounts, devices, the host's processes and loopback, unbounded forks.
Run against Podman's Docker API (what `make test` starts), the same engine the runtime tests use.
"""

from __future__ import annotations

import socket
import uuid

import pytest

from pods.runtime import PodSpec, RuntimeFailure, get_backend
from pods.runtime.docker import DockerBackend
from tests.pods import podman
from tests.pods.podman import IMAGE, RecordedRequests, wait_for

podman_url = podman.podman_url
backend = podman.backend

CAP_NET_RAW, CAP_SYS_ADMIN = 13, 21
# Docker's default set minus NET_RAW, as bits of /proc/<pid>/status (linux/capability.h).
CAPABILITY_BITS = {
    "CHOWN": 0,
    "DAC_OVERRIDE": 1,
    "FOWNER": 3,
    "FSETID": 4,
    "KILL": 5,
    "SETGID": 6,
    "SETUID": 7,
    "SETPCAP": 8,
    "NET_BIND_SERVICE": 10,
    "SYS_CHROOT": 18,
    "MKNOD": 27,
    "AUDIT_WRITE": 29,
    "SETFCAP": 31,
}


def attack(backend: DockerBackend, script: str, **overrides) -> str:
    """Run `script` as a pod's start command until it prints `done`; return its output."""
    pod = PodSpec(
        pod_id=uuid.uuid4().hex[:14],
        image=IMAGE,
        env={},
        command=f"{script}; echo done",
        **overrides,
    )
    result = backend.start(pod)
    try:
        return wait_for(lambda: _finished(backend, result.handle), seconds=20)
    finally:
        backend.delete_pod_data(pod.pod_id, volume_name=None)


def _finished(backend: DockerBackend, handle: dict) -> str | None:
    text = backend.read_logs(handle).text
    return text if "done\n" in text else None


def status_field(output: str, name: str) -> str:
    [line] = [line for line in output.splitlines() if line.startswith(f"{name}:")]
    return line.split(":", 1)[1].strip()


def test_a_pod_holds_only_dockers_default_capabilities_minus_net_raw(backend):
    output = attack(backend, "cat /proc/self/status")

    effective = int(status_field(output, "CapEff"), 16)
    assert not effective & (1 << CAP_SYS_ADMIN)
    assert not effective & (1 << CAP_NET_RAW)
    assert effective == sum(1 << bit for bit in CAPABILITY_BITS.values())
    assert int(status_field(output, "CapBnd"), 16) == effective  # nothing to regain by exec
    assert status_field(output, "NoNewPrivs") == "1"


def test_a_pod_cannot_open_raw_sockets_mount_or_read_a_host_disk(backend):
    output = attack(
        backend,
        "arping -c1 -w1 -I eth0 10.88.0.1; echo arping=$?; "
        "mount -t tmpfs none /tmp && echo mounted; "
        "mknod /tmp/disk b 8 0; head -c1 /tmp/disk >/dev/null; echo read=$?; ls /dev",
    )

    assert "arping: socket: Operation not permitted" in output
    assert "mounted" not in output
    assert "read=1" in output  # the node can be made but the device cgroup refuses to open it
    devices = set(output.split("read=1", 1)[1].split())
    assert not devices & {"sda", "vda", "nvme0n1", "mem", "kmem", "port"}


def test_a_pod_sees_neither_host_processes_nor_the_host_loopback(backend):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        output = attack(backend, f"ps -o pid,comm; nc -w 2 127.0.0.1 {port} </dev/null; echo nc=$?")
    finally:
        listener.close()

    pids = [line.split()[0] for line in output.splitlines()[1:] if line.split()[0].isdigit()]
    assert len(pids) < 10  # the pod's init, its shell and ps: a private pid namespace
    assert "nc=1" in output  # the host's 127.0.0.1 is not the pod's


def test_a_fork_bomb_stops_at_the_pids_limit(backend):
    limited = get_backend("docker", {**backend.settings, "pids_limit": 20})
    output = attack(
        limited,
        "i=0; while [ $i -lt 50 ]; do (sleep 30 &) 2>/dev/null || echo refused; i=$((i+1)); done",
    )

    assert "refused" in output
    assert output.count("refused") >= 30


@pytest.mark.parametrize(
    "machine",
    [
        {"network": "host"},
        {"network": "container:other"},
        {"userns_mode": "host"},
        {"userns_mode": "ns:/proc/1/ns/user"},
    ],
    ids=["host-network", "other-container-network", "host-userns", "joined-host-userns"],
)
def test_machine_settings_that_share_a_host_namespace_are_refused(backend, machine):
    unsafe = get_backend("docker", {**backend.settings, **machine})
    pod = PodSpec(pod_id=uuid.uuid4().hex[:14], image=IMAGE, env={}, command="exec sleep 600")
    with RecordedRequests(unsafe.client.api) as recorded, pytest.raises(RuntimeFailure):
        unsafe.start(pod)

    assert not recorded.to("POST", "/containers/create")
