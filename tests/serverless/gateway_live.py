"""The worker gateway live: daphne on its Unix socket (serverless.worker_asgi) on the test
database, and an HTTP client for that socket.

The gateway's socket lives in DATA_DIR, which process-runtime pods also use: the module shares
one DATA_DIR (in the system's temporary directory, whose parents pod uids can traverse) between
the gateway and the pods, and `worker_settings` points each test's settings at it."""

from __future__ import annotations

import http.client
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

from pods.runtime.base import WORKER_GATEWAY_SOCKET, worker_gateway_dir
from serverless.gateway import GATEWAY_PORT
from tests.serverless.live import DAPHNE, child_database_url, child_env, stop

GATEWAY_URL = f"http://127.0.0.1:{GATEWAY_PORT}"


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
