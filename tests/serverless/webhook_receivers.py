"""Loopback HTTP servers for the job webhook tests (tests/serverless/test_webhooks.py and
tests/security/test_webhook_ssrf.py), and a job finished through the worker protocol."""

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import Client

from serverless import services
from serverless.models import Job
from tests.pods.factories import fund
from tests.serverless.factories import a_worker, an_endpoint

FORM = "application/x-www-form-urlencoded"


class Receiver(ThreadingHTTPServer):
    """Records every request; answers with `statuses` in turn (the last one repeats)."""

    daemon_threads = True

    def __init__(self, statuses: list[int], headers: dict | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.statuses, self.extra_headers = statuses, headers or {}
        self.requests: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook?token=s3cret"


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        status = server.statuses[min(len(server.requests), len(server.statuses)) - 1]
        self.send_response(status)
        for name, value in server.extra_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(name="serve")
def serve_fixture() -> Iterator:
    servers = []

    def start(statuses=(200,), headers=None) -> Receiver:
        server = Receiver(list(statuses), headers)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(name="private_allowed")
def private_allowed_fixture(settings):
    settings.SERVERLESS_WEBHOOK_ALLOW_PRIVATE = True


@pytest.fixture(name="endpoint")
def endpoint_fixture(team):
    fund(team)  # jobs are refused while the balance is low
    return an_endpoint(team)


def finish(endpoint, url: str, capture, body=None) -> Job:
    """Submit a job naming `url`, let a worker take it and post its result through the worker
    protocol's job-done route; the commit's callbacks (the webhook task, eager) run."""
    worker, secret = a_worker(endpoint)
    job = services.submit_job(
        actor=None, endpoint=endpoint, payload={"input": {"n": 1}, "webhook": url}
    )
    services.claim_jobs(worker=worker, count=1)
    path = f"/v2/{endpoint.public_id}/job-done/{worker.public_id}/{job.public_id}"
    with capture(execute=True):
        response = Client().post(
            path,
            json.dumps(body or {"output": {"sum": 2}}),
            content_type=FORM,
            HTTP_AUTHORIZATION=secret,
        )
    assert response.json() == {"accepted": True}
    job.refresh_from_db()
    return job


def raw_server(answer: bytes | None) -> socket.socket:
    """A loopback listener that sends `answer` to each connection (None: never answers)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            if answer is not None:
                # The client under test may have given up first, as some tests make it.
                with contextlib.suppress(OSError):
                    conn.sendall(answer)
            closer = threading.Timer(5, conn.close)
            closer.daemon = True
            closer.start()

    threading.Thread(target=run, daemon=True).start()
    return listener
