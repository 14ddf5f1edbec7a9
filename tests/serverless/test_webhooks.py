"""Job webhooks against HTTP servers these tests start on loopback: a finished job's status is
POSTed exactly once with RunPod's /status body (COMPLETED, FAILED, CANCELLED), failed attempts
are retried a bounded number of times, a job retried before its hook ran is not posted as
finished, and end to end with the real runpod SDK client and worker. (Attacks on the webhook,
private addresses, redirects, slow answers: tests/security/test_webhook_ssrf.py.)"""

import json

import pytest

from serverless import services, webhooks
from serverless.models import Job
from teams.models import AuditEvent
from tests.api.test_api_keys import make_key
from tests.pods.factories import fund
from tests.sdk_driver import sdk_process
from tests.serverless.factories import a_worker, an_endpoint
from tests.serverless.live import WorkerProcess, asgi_server, child_env  # noqa: F401 (fixture)
from tests.serverless.webhook_receivers import (  # noqa: F401 (fixtures)
    endpoint_fixture,
    finish,
    private_allowed_fixture,
    serve_fixture,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db


@pytest.mark.usefixtures("eager_tasks", "private_allowed")
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


@pytest.mark.usefixtures("eager_tasks", "private_allowed")
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


@pytest.mark.usefixtures("eager_tasks", "private_allowed")
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


@pytest.mark.usefixtures("eager_tasks", "private_allowed")
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


@pytest.mark.django_db(transaction=True)
def test_the_runpod_sdk_and_worker_end_to_end(
    asgi_server,  # noqa: F811 (the fixture imported above)
    serve,
    team,
    alice,
    tmp_path,
):
    """RunPod's way, unmodified on both sides: the SDK client sends `{"input", "webhook"}` to
    /run, a real `runpod.serverless.start` worker runs it, and the console POSTs the result
    to the hook once (daphne, Celery eager: the hook is called as the result is recorded)."""
    fund(team)
    endpoint = an_endpoint(team)
    server = serve()
    worker = WorkerProcess(endpoint, asgi_server, "plain")
    _, secret = make_key(team, alice)
    try:
        with sdk_process(asgi_server, secret, child_env(HOME=str(tmp_path))) as sdk:
            body = {"input": {"n": 3}, "webhook": server.url}
            job_id = sdk.call(
                f'(job := runpod.Endpoint("{endpoint.public_id}").run({body})).job_id'
            )
            output = sdk.call("job.output(timeout=60)")
        wait_for(lambda: server.requests, timeout=10)
    finally:
        worker.close()
    [request] = server.requests
    job = Job.objects.get(public_id=job_id)
    assert json.loads(request["body"]) == {
        "id": job_id,
        "status": "COMPLETED",
        "output": output,
        "delayTime": job.delay_ms,
        "executionTime": job.execution_ms,
        "workerId": worker.worker.public_id,
    }
    assert output == {"echo": {"n": 3}, "worker": worker.worker.public_id}
    assert (job.webhook_attempts, job.webhook_result) == (1, "HTTP 200")
