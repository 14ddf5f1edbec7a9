"""A hostile worker or client sending an endless body to a /v2/ route under ASGI: the router
(serverless.asgi.ThreadedDjango) reads at most 20 MB + 1 byte of it and answers 413, where
Django's own ASGI handler would spool the whole body to disk before any view could refuse it."""

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync

from console.asgi import application
from serverless import services
from serverless.models import Job
from tests.serverless.factories import a_worker, an_endpoint

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("asgi_pool")]
MB = 1024 * 1024


def post_endless(path: str, secret: str, chunks: int) -> tuple[int, dict, int]:
    """POST `chunks` MB (no Content-Length: chunked, as a lying client sends it); the status,
    the JSON answer and how many chunks the application pulled."""
    pulled = 0
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"gpu=A40&isStream=false",
        "headers": [(b"host", b"testserver"), (b"authorization", secret.encode())],
        "client": ("10.0.0.7", 50000),
        "server": ("testserver", 80),
    }
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal pulled
        if pulled < chunks:
            pulled += 1
            return {"type": "http.request", "body": b"x" * MB, "more_body": pulled < chunks}
        await asyncio.Event().wait()  # the client stays connected

    async def send(message: dict) -> None:
        sent.append(message)

    async_to_sync(application)(scope, receive, send)
    body = b"".join(message.get("body", b"") for message in sent[1:])
    return sent[0]["status"], json.loads(body), pulled


def test_an_endless_job_done_body_is_a_413_after_20_mb_and_the_rest_is_never_read(team):
    endpoint = an_endpoint(team)
    worker, secret = a_worker(endpoint)
    job = services.submit_job(actor=None, endpoint=endpoint, payload={"input": 1})
    services.claim_jobs(worker=worker, count=1)
    path = f"/v2/{endpoint.public_id}/job-done/{worker.public_id}/{job.public_id}"
    status, answer, pulled = post_endless(path, secret, chunks=40)
    assert status == 413, answer
    assert pulled == 21  # 20 MB + 1 byte needs the 21st chunk; 19 more were never read
    job.refresh_from_db()
    assert (job.status, job.output) == (Job.Status.IN_PROGRESS, None)


def test_an_endless_run_body_is_a_413_naming_the_routes_limit(team, alice):
    from tests.api.test_api_keys import make_key

    endpoint = an_endpoint(team)
    secret = f"Bearer {make_key(team, alice)[1]}"
    status, answer, pulled = post_endless(f"/v2/{endpoint.public_id}/run", secret, chunks=40)
    assert status == 413 and "10 MB" in json.dumps(answer), answer
    assert pulled == 21
    assert not Job.objects.exists()
