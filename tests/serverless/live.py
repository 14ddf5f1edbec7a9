"""A live ASGI server (daphne, the application `make run` serves) on the test database, for
the real runpod worker and client: job-take and job-stop long-polls are served at the ASGI
level, which Django's WSGI live_server does not run. Tests using it need
django_db(transaction=True), so what they write is committed and the server sees it."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from serverless import services
from serverless.models import Endpoint

DAPHNE = Path(sys.executable).with_name("daphne")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the server did not start listening")


def child_database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    return {**env, **extra}


@pytest.fixture(scope="module")
def asgi_server(django_db_setup, django_db_blocker) -> Iterator[str]:
    """The base URL of daphne serving console.asgi on the test database."""
    port = free_port()
    env = child_env(
        DATABASE_URL=child_database_url(),
        SERVERLESS_JOB_TAKE_HOLD="5",
        CELERY_TASK_ALWAYS_EAGER="1",
        SERVERLESS_WEBHOOK_ALLOW_PRIVATE="1",  # job webhooks to the tests' loopback servers
    )
    command = [str(DAPHNE), "-b", "127.0.0.1", "-p", str(port), "console.asgi:application"]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=log)
        try:
            wait_listening(port, process)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(process, signal.SIGINT)
            log.seek(0)
            print("daphne log tail:\n" + log.read()[-4000:].decode(errors="replace"))


def stop(process: subprocess.Popen, how: int = signal.SIGTERM, group: bool = False) -> None:
    """Signal the process (its whole group: the worker's heartbeat is a child process), then
    SIGKILL what is left after 3 s."""
    send = (lambda sig: os.killpg(process.pid, sig)) if group else process.send_signal
    send(how)
    try:
        process.wait(timeout=3)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait()
    if group:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


class WorkerProcess:
    """`python worker_handler.py` as a new worker of `endpoint`, with the env the console
    gives workers (serverless.services.worker_env)."""

    def __init__(self, endpoint: Endpoint, base_url: str, handler: str) -> None:
        self.worker, secret = services.register_worker(actor=None, endpoint=endpoint)
        self.markers = Path(tempfile.mkdtemp(prefix="stop-markers-"))
        self.home = tempfile.mkdtemp(prefix="worker-home-")
        env = {
            "PATH": os.environ["PATH"],
            "HOME": self.home,
            "HANDLER": handler,
            "STOP_MARKERS": str(self.markers),
            "RUNPOD_PING_INTERVAL": "1000",
            "RUNPOD_LOG_LEVEL": "INFO",
            **services.worker_env(worker=self.worker, secret=secret, base_url=base_url),
        }
        script = Path(__file__).with_name("worker_handler.py")
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self.process = subprocess.Popen(
            [sys.executable, str(script)],
            env=env,
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )

    def stopped_jobs(self) -> set[str]:
        return {path.name for path in self.markers.iterdir()}

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def close(self) -> None:
        stop(self.process, signal.SIGKILL, group=True)  # a test worker keeps nothing
        self.log.close()
        shutil.rmtree(self.markers, ignore_errors=True)
        shutil.rmtree(self.home, ignore_errors=True)
