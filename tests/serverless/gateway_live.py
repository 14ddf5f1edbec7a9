"""The worker gateway live (daphne on its Unix socket, serverless.worker_asgi, on the test
database) and real worker pods on the process runtime that reach it.

The gateway's socket lives in DATA_DIR, which process-runtime pods also use: the module shares
one DATA_DIR (in the system's temporary directory, whose parents pod uids can traverse) between
the gateway and the pods, and `worker_settings` points each test's settings at it."""

from __future__ import annotations

import http.client
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from pods.runtime import MountSpec, PodSpec, get_backend
from pods.runtime.base import WORKER_GATEWAY_SOCKET, worker_gateway_dir
from serverless import services
from serverless.gateway import GATEWAY_PORT, worker_command
from serverless.models import Endpoint, Worker
from tests.serverless.live import DAPHNE, child_database_url, child_env, stop

GATEWAY_URL = f"http://127.0.0.1:{GATEWAY_PORT}"
VOLUME_PATH = "/runpod-volume"


@pytest.fixture(scope="module")
def gateway_data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gateway-data-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def worker_settings(settings, gateway_data_dir):
    settings.DATA_DIR = gateway_data_dir
    return settings


def wait_for_socket(path: Path, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the gateway exited"
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(str(path))
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the gateway did not start listening")


@pytest.fixture(scope="module")
def gateway(django_db_setup, django_db_blocker, gateway_data_dir) -> Iterator[Path]:
    """The path of the gateway's socket, served as scripts/run.sh serves it."""
    with override_settings(DATA_DIR=gateway_data_dir):
        path = worker_gateway_dir() / WORKER_GATEWAY_SOCKET
    env = child_env(
        DATABASE_URL=child_database_url(),
        DATA_DIR=str(gateway_data_dir),
        SERVERLESS_JOB_TAKE_HOLD="5",
    )
    command = [str(DAPHNE), "-u", str(path), "serverless.worker_asgi:application"]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=log)
        try:
            wait_for_socket(path, process)
            yield path
        finally:
            stop(process, signal.SIGINT)
            log.seek(0)
            print("gateway log tail:\n" + log.read()[-3000:].decode(errors="replace"))


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over the gateway's socket, as the pod-side forwarder relays it."""

    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=15)
        self.socket_path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def request(path: Path, method: str, url: str, body=None, headers=None) -> tuple[int, bytes]:
    connection = UnixHTTPConnection(path)
    try:
        connection.request(method, url, body=body, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


class WorkerPod:
    """A worker of `endpoint` in a real process-runtime pod (sandboxed, a WORKER pod's spec):
    `command` runs after the gateway forwarder and the dependency bootstrap."""

    def __init__(self, endpoint: Endpoint, command: str, env: dict | None = None) -> None:
        self.worker, self.secret = services.register_worker(actor=None, endpoint=endpoint)
        self.backend = get_backend("process", {"sandbox": "bwrap"})
        mounts = ()
        if endpoint.network_volume_id:
            volume = endpoint.network_volume.public_id
            mounts = (MountSpec(volume, VOLUME_PATH, "network_volume"),)
        self.spec = PodSpec(
            pod_id="wk" + secrets.token_hex(5),
            image="runpod/worker",
            command=worker_command(command),
            env={
                **services.worker_env(worker=self.worker, secret=self.secret, base_url=GATEWAY_URL),
                **(env or {}),
            },
            mounts=mounts,
            memory_gb=2,
            working_dir=VOLUME_PATH if mounts else "/root",
            worker_gateway=True,
        )
        self.started_at = time.monotonic()
        self.handle = self.backend.start(self.spec).handle

    def log(self) -> str:
        return self.backend.read_logs(self.handle, limit=1_000_000).text

    def ready_after(self, timeout: float) -> float:
        """Seconds from start until the worker's first job-take or ping reached the console."""
        deadline = self.started_at + timeout
        while time.monotonic() < deadline:
            if Worker.objects.filter(pk=self.worker.pk, ready_at__isnull=False).exists():
                return time.monotonic() - self.started_at
            assert self.backend.poll(self.handle).state == "running", self.log()[-3000:]
            time.sleep(0.2)
        raise AssertionError(f"the worker never reached the console:\n{self.log()[-3000:]}")

    def close(self) -> None:
        self.backend.stop(self.handle, grace_seconds=1)
        self.backend.delete_pod_data(self.spec.pod_id, volume_name=None)
