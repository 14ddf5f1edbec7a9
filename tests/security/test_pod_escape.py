"""Real pods on the process runtime try to get out, the way a customer's hostile start command
(or a Basic member in the web terminal) would, and every attempt fails; meanwhile the pod still
serves its declared HTTP port where the proxy connects and reaches an outbound address.

Each attack runs inside the pod as a Python script (the host's python3, read-only in the pod) and
reports what happened as one JSON line in the pod's log; the host side is checked from /proc and
by running things as the pod's host uid."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from django.conf import settings

from pods import services
from pods.models import Pod
from pods.runtime import PodSpec, PortSpec, get_backend
from pods.runtime.base import MountSpec
from pods.runtime.process import DEFAULT_PATH, ProcessBackend
from tests.pods.conftest import parts, pods_settings, reap  # noqa: F401 (fixtures)
from tests.pods.connect_helpers import wait_listening
from tests.pods.factories import deploy_request, fund
from tests.security.conftest import needs_root
from tests.waiting import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("reap")]

VICTIM = (
    "echo 'victim-secret' > /workspace/secret.txt; "
    "exec python3 -m http.server $PORT --bind 0.0.0.0 --directory /workspace"
)

ATTACK = r"""python3 - <<'PY'
import json, os, socket, stat, subprocess, urllib.request
env = os.environ
report = {"uid": os.getuid(), "status": open("/proc/self/status").read()}
def attempt(name, action):
    try:
        report[name] = "succeeded: " + str(action())[:300]
    except Exception as error:
        report[name] = "failed: " + type(error).__name__ + ": " + str(error)[:300]
def run(*argv):
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout
def connect(host, port):
    socket.create_connection((host, int(port)), timeout=3).close()
    return "connected"
os.makedirs("/tmp/mnt", exist_ok=True)
device = os.makedev(int(env["ROOT_MAJOR"]), int(env["ROOT_MINOR"]))
attempt("mknod", lambda: os.mknod("/tmp/rootdev", 0o600 | stat.S_IFBLK, device))
attempt("mount_root_device", lambda: run("mount", "-o", "ro", "/tmp/rootdev", "/tmp/mnt"))
attempt("mount_tmpfs", lambda: run("mount", "-t", "tmpfs", "none", "/tmp/mnt"))
attempt("new_user_namespace", lambda: run("unshare", "--user", "--map-root-user", "true"))
attempt("shadow", lambda: open("/etc/shadow").read())
attempt("console_source", lambda: open(env["CONSOLE_SOURCE"]).read())
attempt("data_dir", lambda: os.listdir(env["CONSOLE_DATA"]))
own_run = env["CONSOLE_DATA"] + "/pods/" + env["RUNPOD_POD_ID"] + "/run/run.json"
attempt("own_run_json", lambda: open(own_run).read())
attempt("victim_volume", lambda: open(env["VICTIM_SECRET"]).read())
attempt("host_root_via_proc", lambda: os.listdir("/proc/1/root" + env["CONSOLE_DATA"]))
for name, host in (("loopback", "127.0.0.1"), ("gateway", "10.0.2.2")):
    attempt("console_" + name, lambda: connect(host, env["CONSOLE_PORT"]))
    attempt("victim_" + name, lambda: connect(host, env["VICTIM_PORT"]))
attempt("outbound", lambda: urllib.request.urlopen(env["OUTSIDE_URL"], timeout=10).read().decode())
attempt("passwd", lambda: open("/etc/passwd").read())
print("RESULT " + json.dumps(report), flush=True)
PY
exec python3 -m http.server $PORT --bind 0.0.0.0"""


def deploy(team, user, parts, command: str, env: dict | None = None) -> Pod:  # noqa: F811
    request = deploy_request(
        parts["a40"],
        start_command=command,
        ports=[{"port": 8080, "protocol": "http"}],
        env=[{"key": key, "value": value} for key, value in (env or {}).items()],
    )
    pod = services.deploy_pod(actor=user, team=team, request=request)
    pod.refresh_from_db()
    assert pod.status == Pod.Status.RUNNING, pod.status_reason
    return pod


def public_port(pod: Pod) -> int:
    return next(m["public"] for m in pod.port_mappings if m["private"] == 8080)


def pod_dir(pod_id: str) -> Path:
    return Path(settings.DATA_DIR) / "pods" / pod_id


def report_of(pod: Pod) -> dict:
    backend = get_backend("process")

    def result_line():
        for line in backend.read_logs(pod.runtime_handle).text.splitlines():
            if line.startswith("RESULT "):
                return json.loads(line.removeprefix("RESULT "))
        return None

    return wait_for(result_line, timeout=40)


def status_field(status: str, name: str) -> str:
    return next(
        line.split(":", 1)[1].strip() for line in status.splitlines() if line.startswith(name)
    )


@pytest.fixture
def victim(team, alice, parts) -> Pod:  # noqa: F811
    needs_root()
    fund(team)
    pod = deploy(team, alice, parts, VICTIM)
    wait_listening(pod, 8080)
    return pod


@pytest.fixture
def attacker(team, alice, parts, victim, console_listener, outside_server):  # noqa: F811
    root = os.stat("/").st_dev
    env = {
        "ROOT_MAJOR": str(os.major(root)),
        "ROOT_MINOR": str(os.minor(root)),
        "CONSOLE_SOURCE": str(Path(settings.BASE_DIR) / "manage.py"),
        "CONSOLE_DATA": str(settings.DATA_DIR),
        "VICTIM_SECRET": str(pod_dir(victim.public_id) / "volume" / "secret.txt"),
        "CONSOLE_PORT": str(console_listener.port),
        "VICTIM_PORT": str(public_port(victim)),
        "OUTSIDE_URL": outside_server.url,
    }
    pod = deploy(team, alice, parts, ATTACK, env)
    return pod, report_of(pod)


def as_host_uid(uid: int, gid: int, *argv: str) -> subprocess.CompletedProcess:
    """Run argv on the host as a pod's uid: what a pod that got out of its namespaces would be."""
    setpriv = ["/usr/bin/setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
    return subprocess.run([*setpriv, "--", *argv], capture_output=True, text=True, timeout=10)


def test_a_pods_processes_are_an_unprivileged_host_uid_without_capabilities(attacker):
    pod, report = attacker
    handle = pod.runtime_handle
    assert report["uid"] == 0  # root inside its own user namespace...
    assert status_field(report["status"], "CapEff") == "0000000000000000"
    assert status_field(report["status"], "NoNewPrivs") == "1"
    assert status_field(report["status"], "Seccomp") == "2"
    uid = handle["uid"]
    assert settings.POD_UID_BASE <= uid < settings.POD_UID_BASE + settings.POD_UID_COUNT
    pids = ProcessBackend()._payload_pids(handle)
    assert pids
    for pid in pids:  # ...and, seen from the host, nobody in particular
        status = Path(f"/proc/{pid}/status").read_text()
        assert status_field(status, "Uid").split() == [str(uid)] * 4
        assert status_field(status, "CapEff") == "0000000000000000"
        assert status_field(status, "CapBnd") == "0000000000000000"


def test_a_pod_cannot_make_or_mount_the_hosts_disk(attacker):
    _, report = attacker
    assert report["mknod"].startswith("failed: PermissionError"), report["mknod"]
    assert report["mount_root_device"].startswith("failed"), report["mount_root_device"]
    assert report["mount_tmpfs"].startswith("failed"), report["mount_tmpfs"]
    assert report["new_user_namespace"].startswith("failed"), report["new_user_namespace"]


def test_a_pod_reads_neither_the_hosts_files_nor_another_pods_volume(attacker, victim):
    pod, report = attacker
    for attack in ("shadow", "console_source", "data_dir", "own_run_json", "victim_volume"):
        assert report[attack].startswith("failed: FileNotFoundError"), (attack, report[attack])
    assert report["host_root_via_proc"].startswith("failed"), report["host_root_via_proc"]
    assert "victim-secret" not in json.dumps(report)
    assert report["passwd"].startswith("succeeded: root:x:0:0:root:/root:/bin/sh\nnobody")
    # Even out of its mount namespace, its host uid could read nothing of the console's...
    uid, gid = pod.runtime_handle["uid"], pod.runtime_handle["gid"]
    secret = pod_dir(victim.public_id) / "volume" / "secret.txt"
    assert secret.read_text() == "victim-secret\n"
    for path in (secret, pod_dir(pod.public_id) / "run" / "run.json", Path("/etc/shadow")):
        attempt = as_host_uid(uid, gid, "/bin/cat", str(path))
        assert attempt.returncode != 0 and "Permission denied" in attempt.stderr, path
    listing = as_host_uid(uid, gid, "/bin/ls", str(settings.DATA_DIR))
    assert listing.returncode != 0 and "Permission denied" in listing.stderr


def test_a_pod_reaches_no_host_loopback_port_yet_serves_its_own_and_gets_out(
    attacker, victim, console_listener, outside_server
):
    pod, report = attacker
    for attack in ("console_loopback", "console_gateway", "victim_loopback", "victim_gateway"):
        assert report[attack].startswith("failed"), (attack, report[attack])
    assert console_listener.accepted == []
    assert report["outbound"] == f"succeeded: {outside_server.token}"
    # Its declared port is served where the proxy connects: the mapping on the host's loopback.
    wait_listening(pod, 8080)
    mapping = next(m for m in pod.port_mappings if m["private"] == 8080)
    url = f"http://{mapping['host']}:{mapping['public']}/"
    assert "Directory listing" in urllib.request.urlopen(url, timeout=5).read().decode()
    victim_url = f"http://127.0.0.1:{public_port(victim)}/secret.txt"
    assert urllib.request.urlopen(victim_url, timeout=5).read() == b"victim-secret\n"


FAKE = """#!/bin/sh
echo "FAKE $0 ran" >> {marker}
echo "FAKE $0 ran"
"""
HOST_HELPERS = ("nsenter", "bwrap", "setpriv", "slirp4netns", "python3", "sh", "env", "ip")


def plant_fakes(directory: Path, marker: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in HOST_HELPERS:
        (directory / name).write_text(FAKE.format(marker=marker))
        (directory / name).chmod(0o755)


def read_shell(shell, until: bytes, timeout: float = 10) -> bytes:
    output, deadline = b"", time.monotonic() + timeout
    while until not in output:
        assert time.monotonic() < deadline, output
        output += shell.read(timeout=0.1)
    return output


def test_the_pods_path_and_ld_preload_never_reach_a_host_side_helper():
    """Straight at the runtime, as if name validation had been bypassed: fake helpers on a
    PATH naming host directories the pod controls (its volume and container disk, as they are
    on the host and inside), a garbage LD_PRELOAD that exists only on the host."""
    needs_root()
    backend = get_backend("process")
    pod_id = "escape" + secrets.token_hex(4)
    marker = Path(settings.DATA_DIR) / "host-side-helper-ran"
    volume, container = pod_dir(pod_id) / "volume", pod_dir(pod_id) / "container"
    plant_fakes(volume / "bin", marker)
    preload = Path(settings.DATA_DIR) / "evil.so"
    preload.write_bytes(b"not an ELF object " * 8)
    path = f"{volume}/bin:{container}/bin:/workspace/bin:{DEFAULT_PATH}"
    spec = PodSpec(
        pod_id=pod_id,
        image="python:3.11-slim",
        command="command -v nsenter; echo started; exec sleep 600",
        env={"PATH": path, "LD_PRELOAD": str(preload)},
        ports=(PortSpec(8080, "http"),),
        mounts=(MountSpec(pod_id, "/workspace", "volume", 1),),
    )
    started = backend.start(spec)
    try:
        handle = started.handle
        wait_for(lambda: "started" in backend.read_logs(handle).text, timeout=20)
        shell = backend.open_shell(handle)
        try:
            shell.write(b"nsenter --version; echo PATH=$PATH; echo done-$((6*7))\n")
            output = read_shell(shell, b"done-42")
        finally:
            shell.close()
    finally:
        backend.stop(handle, grace_seconds=0.5)
    log = backend.read_logs(handle).text
    assert not marker.exists(), marker.read_text()
    assert "/workspace/bin/nsenter" in log  # inside, the pod's PATH is the pod's...
    assert b"FAKE /workspace/bin/nsenter ran" in output  # ...in the terminal too
    assert f"PATH={path}".encode() in output
    helpers_output = log + (pod_dir(pod_id) / "run" / "slirp4netns.log").read_text()
    preloads = [line for line in helpers_output.splitlines() if "LD_PRELOAD" in line]
    assert preloads  # the pod's own processes did get it; the host's path does not exist there
    assert all("cannot open shared object file" in line for line in preloads), preloads
    assert b"invalid ELF header" not in output and b"file too short" not in output
    backend.delete_pod_data(pod_id, volume_name=pod_id)


def test_the_web_terminal_is_the_pods_unprivileged_root_never_a_host_shell(victim):
    backend = get_backend("process")
    shell = backend.open_shell(victim.runtime_handle)
    try:
        fields = "^(Uid|CapEff|CapBnd|NoNewPrivs|Seccomp):"
        commands = f"grep -E '{fields}' /proc/self/status; ls {settings.BASE_DIR}; cat secret.txt"
        shell.write(f"{commands}; echo done-$((6*7))\n".encode())
        output = read_shell(shell, b"done-42").decode()
        helper = psutil.Process(shell.proc.pid)  # nsenter: host side, waits for its child
        inside = helper.children(recursive=True)
        assert inside
        for process in inside:
            status = Path(f"/proc/{process.pid}/status").read_text()
            assert status_field(status, "Uid").split() == [str(victim.runtime_handle["uid"])] * 4
            assert status_field(status, "CapEff") == "0000000000000000"
            assert status_field(status, "Seccomp") == "2"
    finally:
        shell.close()
    assert re.search(r"Uid:\s+0\s+0\s+0\s+0", output)  # the pod's root...
    assert re.search(r"CapEff:\s+0000000000000000", output)  # ...without capabilities
    assert re.search(r"CapBnd:\s+0000000000000000", output)
    assert re.search(r"NoNewPrivs:\s+1", output) and re.search(r"Seccomp:\s+2", output)
    assert "No such file or directory" in output  # the console's source is not there
    assert "victim-secret" in output  # the shell starts in the pod's own volume
