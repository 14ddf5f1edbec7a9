"""Job webhooks against HTTP servers these tests start on loopback: a finished job's status is
POSTed exactly once with RunPod's /status body; failed attempts are retried a bounded number of
times; redirects are not followed; slow or endless answers are cut off; and with
SERVERLESS_WEBHOOK_ALLOW_PRIVATE off, private, loopback and link-local addresses (also through
a host name and inside IPv6 forms) are refused before any connection is made."""

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import Client

from serverless import services, webhooks
from serverless.models import Job
from teams.models import AuditEvent
from tests.pods.factories import fund
from tests.serverless.factories import a_worker, an_endpoint

pytestmark = pytest.mark.django_db
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


@pytest.fixture
def serve() -> Iterator:
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


@pytest.fixture
def eager():
    from console.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def private_allowed(settings):
    settings.SERVERLESS_WEBHOOK_ALLOW_PRIVATE = True


@pytest.fixture
def endpoint(team):
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


@pytest.mark.usefixtures("eager", "private_allowed")
def test_a_finished_job_posts_its_status_once(endpoint, serve, django_capture_on_commit_callbacks):
    server = serve()
    job = finish(endpoint, server.url, django_capture_on_commit_callbacks)
    [request] = server.requests
    assert request["path"] == "/hook?token=s3cret"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["Host"] == f"127.0.0.1:{server.server_address[1]}"
    sent = json.loads(request["body"])
    assert sent == {
        "id": job.public_id,
        "status": "COMPLETED",
        "output": {"sum": 2},
        "delayTime": job.delay_ms,
        "executionTime": job.execution_ms,
        "workerId": job.worker.public_id,
    }
    assert (job.webhook_attempts, job.webhook_result) == (1, "HTTP 200")
    assert job.webhook_delivered_at is not None
    event = AuditEvent.objects.get(action="job.webhook_delivered")
    assert event.details == {"host": "127.0.0.1", "attempts": 1, "result": "HTTP 200"}
    # The task running again (a redelivered message) sends nothing more.
    webhooks.deliver_job_webhook.apply((job.pk, job.completed_at.isoformat()))
    assert len(server.requests) == 1


@pytest.mark.usefixtures("eager", "private_allowed")
def test_a_failed_job_and_a_cancelled_one_are_posted_too(
    endpoint, serve, alice, django_capture_on_commit_callbacks
):
    server = serve()
    failed = finish(endpoint, server.url, django_capture_on_commit_callbacks, {"error": "boom"})
    queued = services.submit_job(
        actor=alice, endpoint=endpoint, payload={"input": {}, "webhook": server.url}
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.cancel_job(actor=alice, job=queued)
    bodies = [json.loads(r["body"]) for r in server.requests]
    assert [(b["id"], b["status"]) for b in bodies] == [
        (failed.public_id, "FAILED"),
        (queued.public_id, "CANCELLED"),
    ]
    assert bodies[0]["error"] == "boom"


@pytest.mark.usefixtures("eager", "private_allowed")
def test_failures_are_retried_a_bounded_number_of_times(
    endpoint, serve, django_capture_on_commit_callbacks
):
    always = serve(statuses=[500])
    job = finish(endpoint, always.url, django_capture_on_commit_callbacks)
    assert len(always.requests) == 1 + webhooks.RETRIES
    assert (job.webhook_attempts, job.webhook_result) == (1 + webhooks.RETRIES, "HTTP 500")
    assert job.webhook_delivered_at is None
    event = AuditEvent.objects.get(action="job.webhook_failed")
    assert event.details["attempts"] == 3

    flaky = serve(statuses=[503, 200])
    job = finish(endpoint, flaky.url, django_capture_on_commit_callbacks)
    assert len(flaky.requests) == 2
    assert (job.webhook_attempts, job.webhook_result) == (2, "HTTP 200")


@pytest.mark.usefixtures("eager", "private_allowed")
def test_redirects_are_not_followed(endpoint, serve, django_capture_on_commit_callbacks):
    elsewhere = serve()
    redirecting = serve(statuses=[302], headers={"Location": elsewhere.url})
    job = finish(endpoint, redirecting.url, django_capture_on_commit_callbacks)
    assert elsewhere.requests == []
    assert job.webhook_result == "HTTP 302" and job.webhook_delivered_at is None


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
                conn.sendall(answer)
            closer = threading.Timer(5, conn.close)
            closer.daemon = True
            closer.start()

    threading.Thread(target=run, daemon=True).start()
    return listener


@pytest.mark.usefixtures("private_allowed")
def test_a_silent_server_times_out_and_an_endless_answer_is_cut(monkeypatch):
    monkeypatch.setattr(webhooks, "TIMEOUT", 0.5)
    silent = raw_server(None)
    started = time.monotonic()
    with pytest.raises(webhooks.Failed, match="timed out after 0.5 s"):
        webhooks.post(f"http://127.0.0.1:{silent.getsockname()[1]}/", b"{}")
    assert time.monotonic() - started < 2
    endless = raw_server(b"x" * 1_000_000)
    with pytest.raises(webhooks.Failed, match="not an HTTP response"):
        webhooks.post(f"http://127.0.0.1:{endless.getsockname()[1]}/", b"{}")
    silent.close()
    endless.close()


@pytest.mark.usefixtures("private_allowed")
def test_the_host_is_resolved_once_and_named_in_the_host_header(serve, monkeypatch):
    """Connecting to the address of the one lookup (a second one could rebind the name)."""
    server = serve()
    lookups = []
    real = socket.getaddrinfo

    def counting(host, *args, **kwargs):
        lookups.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    port = server.server_address[1]
    assert webhooks.post(f"http://localhost:{port}/x", b"{}") == 200
    assert lookups == ["localhost"]
    assert server.requests[0]["headers"]["Host"] == f"localhost:{port}"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",
        "http://localhost:{port}/hook",
        "http://[::ffff:127.0.0.1]:{port}/hook",
        "http://0.0.0.0:{port}/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.1/hook",
        "http://172.16.0.1/hook",
        "http://100.64.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/hook",
        "http://[fd00::1]/hook",
        "http://[::1]/hook",
        "http://[64:ff9b::7f00:1]/hook",
        "http://[2002:a00:1::]/hook",
        "http://224.0.0.1/hook",
    ],
)
def test_private_addresses_are_refused_when_the_setting_is_off(url, serve, settings):
    settings.SERVERLESS_WEBHOOK_ALLOW_PRIVATE = False
    server = serve()
    with pytest.raises(webhooks.Refused, match=r"is a [a-z-]+ address"):
        webhooks.post(url.format(port=server.server_address[1]), b"{}")
    assert server.requests == []


@pytest.mark.usefixtures("eager")
def test_a_refused_webhook_is_recorded_and_not_retried(
    endpoint, serve, settings, django_capture_on_commit_callbacks
):
    settings.SERVERLESS_WEBHOOK_ALLOW_PRIVATE = False
    server = serve()
    job = finish(endpoint, server.url, django_capture_on_commit_callbacks)
    assert server.requests == []
    assert job.webhook_attempts == 1
    assert job.webhook_result == "refused: 127.0.0.1 is a loopback address"
    assert job.webhook_delivered_at is None
    assert AuditEvent.objects.get(action="job.webhook_failed").details["attempts"] == 1


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/x", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://example.com:99999/", "port"),
        ("http://example.com/a b", "ASCII"),
        ("http://example.com/\r\nX-Injected: 1", "ASCII"),
        ("http:///nohost", "no host"),
    ],
)
def test_urls_that_are_not_plain_http_are_refused(url, reason):
    with pytest.raises(webhooks.Refused, match=reason):
        webhooks.post(url, b"{}")


def test_public_addresses_pass_the_check():
    for address in ("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "1.1.1.1"):
        webhooks.check_address(address)  # no connection is made


@pytest.mark.usefixtures("eager", "private_allowed")
def test_a_job_retried_before_delivery_is_not_posted_as_finished(
    endpoint, serve, alice, django_capture_on_commit_callbacks
):
    server = serve()
    worker, _ = a_worker(endpoint)
    job = services.submit_job(
        actor=alice, endpoint=endpoint, payload={"input": {}, "webhook": server.url}
    )
    services.claim_jobs(worker=worker, count=1)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.record_result(worker=worker, job_id=job.public_id, body={"error": "x"})
    job.refresh_from_db()
    services.retry_job(actor=alice, job=job)  # back in the queue before the hook ran
    for callback in callbacks:
        callback()
    assert server.requests == []
