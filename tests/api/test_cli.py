"""podctl, run as a real subprocess (`python -m console.cli`) against a live server on
PostgreSQL, with HOME set to an empty directory: every verb is checked against the console's
rows and audit events, and every failure against the exit code and message a script relies on.
Pods really run (process runtime, Celery eager in the server)."""

import http.server
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest

from console import cli
from pods.models import Pod
from teams.models import ApiKey, AuditEvent
from tests.api.test_api_keys import make_key
from tests.pods.conftest import pods_settings, reap  # noqa: F401 (fixtures)
from tests.pods.factories import catalogue, fund, stopped_pod

ROOT = Path(__file__).resolve().parent.parent.parent
live = pytest.mark.django_db(transaction=True)


def podctl(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "console.cli", *args],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(home: Path, *args: str, **env: str) -> str:
    done = podctl(home, *args, **env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout


def refused(home: Path, code: int, *args: str, **env: str) -> str:
    """stderr of a run that must exit with `code`, with a message and no traceback."""
    done = podctl(home, *args, **env)
    assert done.returncode == code, (done.stdout, done.stderr)
    assert done.stderr.startswith("podctl") and "Traceback" not in done.stderr
    return done.stderr


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path


@pytest.fixture
def parts(team):
    fund(team)
    return catalogue()


@pytest.fixture
def configured(home, live_server, team, alice, parts) -> Path:
    """HOME with `podctl config` done for a read-write key of alice in acme."""
    _, secret = make_key(team, alice)
    ok(home, "config", "--apiKey", secret, "--url", live_server.url)
    return home


def test_config_is_private_and_merges(home):
    assert "saved" in ok(home, "config", "--apiKey", "rpa_one", "--url", "http://127.0.0.1:9/")
    path = home / ".config" / "podctl" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.chmod(0o644)
    ok(home, "config", "--apiKey", "rpa_two")
    assert json.loads(path.read_text()) == {"apiKey": "rpa_two", "url": "http://127.0.0.1:9"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_usage_errors_exit_2(home):
    for args in [
        [],
        ["create", "pods", "--env", "NOEQUALS"],
        ["create", "pods", "--ports", "8888"],
        ["create", "pods", "--ports", "x/http"],
        ["create", "pods", "--podCount", "500"],
        ["stop", "pod"],
        ["config"],
        ["config", "--url", "file:///etc/passwd"],
    ]:
        done = podctl(home, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr and done.stdout == ""


@live
def test_not_configured_and_refused_keys_exit_3(home, live_server, team, alice):
    assert "podctl config" in refused(home, 3, "get", "pod")
    key, secret = make_key(team, alice)
    ApiKey.objects.filter(pk=key.pk).update(is_enabled=False)
    env = {"PODCTL_API_KEY": secret, "PODCTL_API_URL": live_server.url}
    assert "disabled" in refused(home, 3, "get", "pod", **env)
    assert "Invalid API key" in refused(home, 3, "get", "gpus", **{**env, "PODCTL_API_KEY": "x"})


def test_an_unreachable_server_exits_4(home):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before podctl connects: nothing listens
    stderr = refused(
        home, 4, "get", "gpus", PODCTL_API_KEY="k", PODCTL_API_URL=f"http://127.0.0.1:{port}"
    )
    assert "cannot reach" in stderr


class Redirecting(http.server.BaseHTTPRequestHandler):
    """Answers every request with a redirect to another path and records what it was sent."""

    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(302)
        self.send_header("Location", "/elsewhere\x1b[2J")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_a_redirect_is_reported_not_followed_with_the_key(home):
    server = http.server.HTTPServer(("127.0.0.1", 0), Redirecting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        stderr = refused(home, 1, "get", "gpus", PODCTL_API_KEY="rpa_k", PODCTL_API_URL=url)
    finally:
        server.shutdown()
        server.server_close()
    assert "redirects to" in stderr and "\x1b" not in stderr
    assert Redirecting.seen == [("/api/v1/gpu-types/", "Bearer rpa_k")]


@live
def test_get_gpus_shows_prices_and_free_counts(configured):
    lines = ok(configured, "get", "gpus").splitlines()
    assert lines[0].split()[:3] == ["GPU", "TYPE", "NAME"]
    a40 = next(line for line in lines if line.startswith("NVIDIA A40"))
    assert a40.split()[-4:] == ["GB", "0.79", "0.47", "4"]
    gpus = json.loads(ok(configured, "get", "gpus", "--json"))
    assert {g["id"] for g in gpus} == {"NVIDIA A40", "NVIDIA GeForce RTX 4090"}


@live
@pytest.mark.usefixtures("reap")
def test_pod_lifecycle(configured, alice):
    out = ok(
        configured,
        *["create", "pods", "--name", "cli pod", "--gpuType", "NVIDIA A40", "--gpuCount", "1"],
        *["--imageName", "python:3.11-slim", "--containerDiskSize", "5", "--volumeSize", "1"],
        *["--ports", "8888/http,22/tcp", "--env", "A=1", "--env", "B=x=y", "--args", "sleep 600"],
    )
    pod = Pod.objects.get()
    assert out == f'pod "{pod.public_id}" created for ${cli.money(pod.price().total)} / hr\n'
    assert (pod.name, pod.status, pod.gpu_count, pod.start_command) == (
        "cli pod",
        Pod.Status.RUNNING,
        1,
        "sleep 600",
    )
    assert pod.env == [{"key": "A", "value": "1"}, {"key": "B", "value": "x=y"}]
    assert {(p["port"], p["protocol"]) for p in pod.ports} == {(8888, "http"), (22, "tcp")}

    [header, row] = ok(configured, "get", "pod").splitlines()
    assert header.split() == ["ID", "NAME", "GPU", "IMAGE", "NAME", "STATUS"]
    assert row.split() == [pod.public_id, "cli", "pod", "1", "NVIDIA", "A40", pod.image, "RUNNING"]
    assert json.loads(ok(configured, "get", "pod", pod.public_id, "--json"))["env"] == pod.env

    assert ok(configured, "stop", "pod", pod.public_id) == f'pod "{pod.public_id}" stopped\n'
    pod.refresh_from_db()
    assert pod.status == Pod.Status.EXITED
    ok(configured, "start", "pod", pod.public_id)
    pod.refresh_from_db()
    assert pod.status == Pod.Status.RUNNING
    assert ok(configured, "remove", "pod", pod.public_id) == f'pod "{pod.public_id}" removed\n'
    pod.refresh_from_db()
    assert pod.status == Pod.Status.TERMINATED
    events = AuditEvent.objects.filter(actor=alice, resource_id=pod.public_id)
    assert list(events.order_by("id").values_list("action", flat=True)) == [
        "pod.deployed",
        "pod.stopped",
        "pod.started",
        "pod.terminated",
    ]
    assert all(event.details.get("api_key") for event in events)


@live
def test_a_refused_deploy_exits_1_with_the_servers_message(configured):
    stderr = refused(
        configured,
        1,
        *["create", "pods", "--gpuType", "NVIDIA A40", "--imageName", "python:3.11-slim"],
        *["--env", "LD_PRELOAD=/x"],
    )
    assert "LD_PRELOAD" in stderr and not Pod.objects.exists()
    stderr = refused(configured, 1, "create", "pods", "--gpuType", "NVIDIA H9000")
    assert "gpu_type" in stderr and not Pod.objects.exists()


@live
@pytest.mark.usefixtures("reap")
def test_pods_created_before_a_refusal_are_still_printed(configured):
    """The A40 machine has 4 GPUs: the second pod of 3 GPUs finds no room."""
    done = podctl(
        configured,
        *["create", "pods", "--gpuType", "NVIDIA A40", "--gpuCount", "3", "--podCount", "2"],
        *["--imageName", "python:3.11-slim", "--containerDiskSize", "5", "--volumeSize", "1"],
        *["--args", "sleep 600", "--json"],
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    [printed] = json.loads(done.stdout)
    assert Pod.objects.get().public_id == printed["id"]


@live
def test_other_teams_pods_are_not_found_and_untouched(configured, charlie, parts):
    theirs = stopped_pod(charlie.memberships.get().team, parts["machine"])
    assert "No Pod matches" in refused(configured, 1, "get", "pod", theirs.public_id)
    assert "No Pod matches" in refused(configured, 1, "start", "pod", theirs.public_id)
    refused(configured, 1, "remove", "pod", "../../api-keys")  # quoted: never another route
    assert ok(configured, "get", "pod").splitlines()[1:] == []
    theirs.refresh_from_db()
    assert theirs.status == Pod.Status.EXITED


@live
def test_a_read_only_key_cannot_stop_pods(home, live_server, team, alice, parts):
    pod = stopped_pod(team, parts["machine"])
    _, secret = make_key(team, alice, permission=ApiKey.Permission.READ_ONLY)
    env = {"PODCTL_API_KEY": secret, "PODCTL_API_URL": live_server.url}
    assert pod.public_id in ok(home, "get", "pod", **env)
    assert "read-only" in refused(home, 1, "start", "pod", pod.public_id, **env)
    pod.refresh_from_db()
    assert pod.status == Pod.Status.EXITED


@live
def test_the_list_follows_every_page(configured, team, parts):
    for i in range(201):  # the CLI asks for 200 a page
        stopped_pod(team, parts["machine"], name=f"p{i}")
    pods = json.loads(ok(configured, "get", "pod", "--json"))
    assert len(pods) == 201 and len({p["id"] for p in pods}) == 201


@live
def test_names_cannot_drive_the_terminal(configured, team, parts):
    """Rows other members or pods wrote are shown with control characters escaped."""
    stopped_pod(team, parts["machine"], name="\x1b]0;owned\x07\x1b[2J")
    out = ok(configured, "get", "pod")
    assert "\x1b" not in out and "\x07" not in out and "\\x1b]0;owned\\x07" in out


def test_podctl_is_installed_as_a_console_script():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    module, _, name = project["project"]["scripts"]["podctl"].partition(":")
    assert (module, getattr(cli, name)) == ("console.cli", cli.main)
