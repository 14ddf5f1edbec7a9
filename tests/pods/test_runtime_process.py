"""A real pod on the process runtime: a process tree in bubblewrap, its ports, volume,
container disk, stop signals and the reconciler."""

import secrets
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from django.conf import settings

from pods import lifecycle, services
from pods.models import Pod
from pods.runtime import PodSpec, PortSpec, get_backend
from pods.runtime.process import ProcessBackend, bwrap_works, process_alive
from pods.runtime.sandbox import HOST_ENV
from tests.pods.factories import HTTP_SERVER, deploy_request, fund, http_template
from tests.waiting import wait_for

pytestmark = pytest.mark.usefixtures("reap")

IGNORES_SIGTERM = "trap 'echo got SIGTERM' TERM; echo ready; while true; do sleep 0.1; done"


def get(port: int) -> str:
    def attempt():
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/kept.txt", timeout=2).read()
        except OSError:
            return None

    return wait_for(attempt).decode()


def deploy(team, user, parts, django_capture_on_commit_callbacks, **overrides) -> Pod:
    with django_capture_on_commit_callbacks(execute=True):
        pod = services.deploy_pod(
            actor=user, team=team, request=deploy_request(parts["a40"], **overrides)
        )
    pod.refresh_from_db()
    return pod


def pod_dir(pod: Pod) -> Path:
    return Path(settings.DATA_DIR) / "pods" / pod.public_id


@pytest.fixture
def http_pod(team, alice, parts, django_capture_on_commit_callbacks) -> Pod:
    fund(team)
    template = http_template()
    return deploy(
        team,
        alice,
        parts,
        django_capture_on_commit_callbacks,
        template=template,
        start_command=HTTP_SERVER,
        ports=template.ports,
    )


def test_it_runs_the_http_template_in_a_sandbox_reachable_on_its_mapped_port(http_pod):
    assert http_pod.status == Pod.Status.RUNNING
    assert bwrap_works()
    assert http_pod.runtime_handle["sandboxed"] is True
    slirp = psutil.Process(http_pod.runtime_handle["slirp_pid"])
    assert slirp.exe() == "/usr/bin/slirp4netns" and "--disable-host-loopback" in slirp.cmdline()
    for helper in ("slirp_pid", "child_pid", "shim_pid"):  # slirp4netns, bwrap, the shim
        assert psutil.Process(http_pod.runtime_handle[helper]).environ() == HOST_ENV
    mapping = http_pod.port_mappings[0]
    assert mapping["private"] == 8080 and mapping["public"] != 8080
    assert get(mapping["public"]).strip() == "volume-data"
    logs = get_backend("process").read_logs(http_pod.runtime_handle).text
    assert "serving on 8080" in logs  # $PORT is the port the pod binds in its namespace
    assert "GET /kept.txt" in wait_for(
        lambda: (
            "GET /kept.txt" in get_backend("process").read_logs(http_pod.runtime_handle).text
            and get_backend("process").read_logs(http_pod.runtime_handle).text
        )
    )


def test_it_keeps_the_volume_and_wipes_the_container_disk_across_stop_and_start(
    http_pod, alice, django_capture_on_commit_callbacks
):
    root = pod_dir(http_pod)
    wait_for(lambda: (root / "container" / "scratch.txt").exists())
    (root / "volume" / "mine.txt").write_text("written before stop")
    with django_capture_on_commit_callbacks(execute=True):
        services.stop_pod(actor=alice, pod=http_pod)
    http_pod.refresh_from_db()
    assert http_pod.status == Pod.Status.EXITED
    assert http_pod.exit_code == 143  # the server died of the SIGTERM
    assert not process_alive(http_pod.runtime_handle["slirp_pid"], None)  # its network too
    assert not (root / "container" / "scratch.txt").exists()
    assert (root / "volume" / "mine.txt").read_text() == "written before stop"
    with django_capture_on_commit_callbacks(execute=True):
        services.start_pod(actor=alice, pod=http_pod)
    http_pod.refresh_from_db()
    assert http_pod.status == Pod.Status.RUNNING
    assert get(http_pod.port_mappings[0]["public"]).strip() == "volume-data"
    assert (root / "volume" / "mine.txt").read_text() == "written before stop"


def test_it_kills_a_pod_that_ignores_sigterm_five_seconds_later(
    team, alice, parts, django_capture_on_commit_callbacks
):
    fund(team)
    pod = deploy(
        team, alice, parts, django_capture_on_commit_callbacks, start_command=IGNORES_SIGTERM
    )
    backend = get_backend("process")
    wait_for(lambda: "ready" in backend.read_logs(pod.runtime_handle).text)
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        services.stop_pod(actor=alice, pod=pod)
    elapsed = time.monotonic() - started
    pod.refresh_from_db()
    assert 5.0 <= elapsed < 8.0
    assert pod.status == Pod.Status.EXITED
    assert pod.exit_code == 137  # SIGKILL
    log = backend.read_logs(pod.runtime_handle).text
    assert "got SIGTERM" in log and "SIGKILL" in log


def test_it_removes_the_volume_on_terminate(http_pod, alice, django_capture_on_commit_callbacks):
    root = pod_dir(http_pod)
    assert (root / "volume").is_dir()
    cgroups = http_pod.runtime_handle["cgroups"]
    with django_capture_on_commit_callbacks(execute=True):
        services.terminate_pod(actor=alice, pod=http_pod)
    http_pod.refresh_from_db()
    assert http_pod.status == Pod.Status.TERMINATED
    assert not root.exists()
    assert not [path for path in cgroups if Path(path).exists()]
    assert get_backend("process").poll(http_pod.runtime_handle).state != "running"


def test_it_marks_a_pod_whose_process_died_failed_with_its_exit_code_and_log_tail(
    team, alice, parts, django_capture_on_commit_callbacks
):
    fund(team)
    pod = deploy(
        team,
        alice,
        parts,
        django_capture_on_commit_callbacks,
        start_command="echo 'loading model'; echo 'CUDA out of memory' >&2; exit 3",
    )
    wait_for(lambda: get_backend("process").poll(pod.runtime_handle).state == "exited")
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.reconcile()
    pod.refresh_from_db()
    assert pod.status == Pod.Status.FAILED
    assert pod.exit_code == 3
    assert "exited with code 3" in pod.status_reason
    assert "CUDA out of memory" in pod.status_reason


def test_it_marks_a_finished_command_exited(team, alice, parts, django_capture_on_commit_callbacks):
    fund(team)
    pod = deploy(team, alice, parts, django_capture_on_commit_callbacks, start_command="true")
    wait_for(lambda: get_backend("process").poll(pod.runtime_handle).state == "exited")
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.reconcile()
    pod.refresh_from_db()
    assert pod.status == Pod.Status.EXITED
    assert pod.exit_code == 0


def test_it_restarts_a_lost_pod_with_the_same_command_keeping_its_volume(
    http_pod, django_capture_on_commit_callbacks
):
    """A host power loss: every process of the pod and its shim die without an exit record."""
    import os
    import signal

    root = pod_dir(http_pod)
    wait_for(lambda: (root / "container" / "scratch.txt").exists())
    (root / "volume" / "mine.txt").write_text("survives")
    (root / "container" / "scratch.txt").unlink()
    (root / "container" / "lost.txt").write_text("in memory of the container disk")
    old_handle = http_pod.runtime_handle
    os.kill(old_handle["shim_pid"], signal.SIGKILL)  # bwrap dies with its parent
    wait_for(lambda: get_backend("process").poll(old_handle).state == "lost")
    # slirp4netns too: its --exit-fd closed with the shim.
    wait_for(lambda: not process_alive(old_handle["slirp_pid"], None))
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.reconcile()
    http_pod.refresh_from_db()
    assert http_pod.status == Pod.Status.RUNNING
    assert http_pod.runtime_handle["shim_pid"] != old_handle["shim_pid"]
    assert get(http_pod.port_mappings[0]["public"]).strip() == "volume-data"
    assert (root / "volume" / "mine.txt").read_text() == "survives"
    assert not (root / "container" / "lost.txt").exists()
    assert http_pod.events.filter(message__contains="machine restarted").exists()


def test_it_gives_the_pod_its_id_api_key_and_port_variables(
    team, alice, parts, django_capture_on_commit_callbacks
):
    fund(team)
    command = "env | sort; hostname; exec sleep 600"
    pod = deploy(
        team,
        alice,
        parts,
        django_capture_on_commit_callbacks,
        start_command=command,
        ports=[{"port": 22, "protocol": "tcp"}],
        env=[{"key": "GREETING", "value": "hello world"}],
    )
    backend = get_backend("process")

    def hostname_printed():
        text = backend.read_logs(pod.runtime_handle).text
        return f"\n{pod.public_id}\n" in text and text

    log = wait_for(hostname_printed)
    public = pod.port_mappings[0]["public"]
    assert f"RUNPOD_POD_ID={pod.public_id}" in log
    assert f"RUNPOD_TCP_PORT_22={public}" in log
    assert "GREETING=hello world" in log
    assert "RUNPOD_API_KEY=rpa_" in log
    assert pod.api_key is not None and pod.api_key.team == team
    assert pod.public_id in log.splitlines()  # the hostname


def test_it_applies_a_memory_limit_when_the_cgroup_is_writable(http_pod):
    usage = get_backend("process").usage(http_pod.runtime_handle)
    cgroup = http_pod.runtime_handle["cgroup"]
    if cgroup is None:
        pytest.skip("no writable memory cgroup on this machine")
    assert usage.memory_limit_bytes == http_pod.memory_gb * 1024**3
    assert usage.processes >= 1 and usage.memory_bytes > 0
    assert Path(cgroup).exists()


def test_it_gives_the_pod_a_cpu_quota_of_its_vcpus_and_a_pids_limit(http_pod):
    cgroups = {Path(path).parent.name: Path(path) for path in http_pod.runtime_handle["cgroups"]}
    if not {"cpu", "pids"} <= cgroups.keys():
        pytest.skip("no writable cpu and pids cgroups on this machine")
    assert (cgroups["cpu"] / "cpu.cfs_quota_us").read_text().strip() == str(http_pod.vcpu * 100_000)
    assert (cgroups["pids"] / "pids.max").read_text().strip() == "4096"
    pids = ProcessBackend()._payload_pids(http_pod.runtime_handle)
    for controller in ("cpu", "pids"):
        assert set(pids) <= set(
            map(int, (cgroups[controller] / "cgroup.procs").read_text().split())
        )


def test_it_stops_a_fork_bomb_at_the_pids_limit():
    """A pod that forks without end gets as far as its pids limit, and the host carries on."""
    backend = get_backend("process", {"pids_limit": 24})
    spec = PodSpec(
        pod_id="forks" + secrets.token_hex(4),
        image="python:3.11-slim",
        command="for i in $(seq 60); do sleep 30 & done; wait",
        env={},
    )
    handle = backend.start(spec).handle
    try:
        if not any(Path(path).parent.name == "pids" for path in handle["cgroups"]):
            pytest.skip("no writable pids cgroup on this machine")
        refused = ("Resource temporarily unavailable", "Cannot fork")
        wait_for(lambda: any(r in backend.read_logs(handle).text for r in refused))
        assert backend.usage(handle).processes <= 24
    finally:
        backend.stop(handle, grace_seconds=0.5)
        backend.delete_pod_data(spec.pod_id, volume_name=None)


def test_it_runs_a_plain_subprocess_on_the_hosts_network_when_the_machine_says_so():
    """sandbox "none" (development only): $PORT is then the host port itself."""
    backend = get_backend("process", {"sandbox": "none"})
    spec = PodSpec(
        pod_id="plain" + secrets.token_hex(4),
        image="python:3.11-slim",
        command="exec python3 -m http.server $PORT --bind 127.0.0.1",
        env={},
        ports=(PortSpec(8080, "http"),),
    )
    started = backend.start(spec)
    try:
        assert started.handle["sandboxed"] is False
        public = started.ports[0].public_port
        assert "Directory listing" in wait_for(
            lambda: (
                urllib.request.urlopen(f"http://127.0.0.1:{public}/", timeout=2).read().decode()
                if "Serving HTTP" in backend.read_logs(started.handle).text
                else None
            )
        )
        assert "warning: no sandbox" in backend.read_logs(started.handle).text
    finally:
        backend.stop(started.handle, grace_seconds=0.5)
        backend.delete_pod_data(spec.pod_id, volume_name=None)


def test_it_opens_a_shell_inside_the_pod(http_pod):
    shell = get_backend("process").open_shell(http_pod.runtime_handle)
    try:
        shell.write(b"cat /workspace/kept.txt; hostname; exit\n")
        output = b""
        deadline = time.monotonic() + 5
        while b"volume-data" not in output or http_pod.public_id.encode() not in output:
            assert time.monotonic() < deadline, output
            output += shell.read(timeout=0.1)
    finally:
        shell.close()


def test_it_gives_each_pod_its_own_host_uid_for_life_until_it_is_deleted(settings):
    from pods.runtime import sandbox
    from pods.runtime.base import RuntimeFailure

    settings.POD_UID_BASE, settings.POD_UID_COUNT = 3_000_000_000, 2
    first, second = sandbox.claim_id("pod-aaa"), sandbox.claim_id("volume-bbb")
    assert {first, second} == {3_000_000_000, 3_000_000_001}
    assert sandbox.claim_id("pod-aaa") == first  # the same uid on every start
    with pytest.raises(RuntimeFailure, match="raise POD_UID_COUNT"):
        sandbox.claim_id("pod-ccc")
    sandbox.release_id("pod-aaa")
    assert sandbox.claim_id("pod-ccc") == first
    with pytest.raises(ValueError):
        sandbox.claim_id("pod-../../etc")
