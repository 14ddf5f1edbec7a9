"""The held requests, served at the ASGI level (serverless.asgi) of the real application:
job-take waits for a job and is woken by its queueing, job-take-batch hands out several,
job-stop delivers cancellations, /runsync waits for its result. Held requests are coroutines:
a hundred of them add no threads."""

import asyncio
import contextvars
import json
import threading
import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.core.cache.backends.redis import RedisCacheClient

from console.asgi import application
from serverless import services
from serverless.asgi import DB_THREADS
from serverless.models import Job
from tests.api.test_api_keys import make_key
from tests.pods.connect_helpers import Call
from tests.serverless.factories import a_worker, an_endpoint

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def short_holds(settings):
    settings.SERVERLESS_JOB_TAKE_HOLD = 3.0


@pytest.fixture
def endpoint(team):
    return an_endpoint(team)


def take(worker, secret: str, kind: str = "job-take", query: str = "gpu=A40&job_in_progress=0"):
    path = f"/v2/{worker.endpoint.public_id}/{kind}/{worker.public_id}"
    return Call("GET", path, [(b"authorization", secret.encode())], query=query)


def submit_later(endpoint, delay: float, count: int = 1):
    async def later() -> list[Job]:
        await asyncio.sleep(delay)
        submit = database_sync_to_async(services.submit_job)
        return [
            await submit(actor=None, endpoint=endpoint, payload={"input": n}) for n in range(count)
        ]

    return later()


def test_a_held_job_take_is_woken_by_a_queued_job(endpoint):
    worker, secret = a_worker(endpoint)

    async def scenario():
        started = time.monotonic()
        reply, jobs = await asyncio.gather(
            take(worker, secret).run(application), submit_later(endpoint, 0.5)
        )
        return reply, jobs, time.monotonic() - started

    reply, [job], elapsed = async_to_sync(scenario)()
    assert reply.status == 200 and reply.header("content-type") == "application/json"
    assert json.loads(reply.body) == {"id": job.public_id, "input": 0}
    assert elapsed < 2.5  # woken by the message, not the 5 s re-check nor the 3 s hold
    job.refresh_from_db()
    assert (job.status, job.worker_id) == ("IN_PROGRESS", worker.pk)


def test_a_job_take_with_nothing_queued_is_a_204_after_the_hold(endpoint, settings):
    settings.SERVERLESS_JOB_TAKE_HOLD = 0.3
    worker, secret = a_worker(endpoint)
    reply = async_to_sync(take(worker, secret).run)(application)
    assert (reply.status, reply.body) == (204, b"")


def test_a_batch_take_hands_out_a_list_of_up_to_batch_size(endpoint):
    worker, secret = a_worker(endpoint)
    for n in range(3):
        services.submit_job(actor=None, endpoint=endpoint, payload={"input": n})
    call = take(worker, secret, "job-take-batch", "gpu=A40&batch_size=2&job_in_progress=0")
    reply = async_to_sync(call.run)(application)
    assert [job["input"] for job in json.loads(reply.body)] == [0, 1]
    huge = take(worker, secret, "job-take-batch", "batch_size=99999999999")
    assert len(json.loads(async_to_sync(huge.run)(application).body)) == 1


def test_job_stop_delivers_a_cancellation_to_the_jobs_worker(endpoint):
    worker, secret = a_worker(endpoint)
    job = services.submit_job(actor=None, endpoint=endpoint, payload={"input": 1})
    services.claim_jobs(worker=worker, count=1)

    async def scenario():
        async def cancel_later():
            await asyncio.sleep(0.3)
            await database_sync_to_async(services.cancel_job)(actor=None, job=job)

        reply, _ = await asyncio.gather(
            take(worker, secret, "job-stop", "gpu=A40").run(application), cancel_later()
        )
        return reply

    reply = async_to_sync(scenario)()
    assert json.loads(reply.body) == {"jobsToStop": [job.public_id]}


def test_a_wrong_secret_or_method_is_refused_before_any_wait(endpoint):
    worker, secret = a_worker(endpoint)
    started = time.monotonic()
    assert async_to_sync(take(worker, "rpw_wrong").run)(application).status == 401
    other = an_endpoint(endpoint.team, name="other")
    forged = Call(
        "GET",
        f"/v2/{other.public_id}/job-take/{worker.public_id}",
        [(b"authorization", secret.encode())],
    )
    assert async_to_sync(forged.run)(application).status == 401
    post = Call(
        "POST",
        f"/v2/{endpoint.public_id}/job-take/{worker.public_id}",
        [(b"authorization", secret.encode())],
    )
    assert async_to_sync(post.run)(application).status == 405
    assert time.monotonic() - started < 2


def test_a_hundred_held_takes_use_no_thread_each_and_get_distinct_jobs(endpoint, settings):
    settings.SERVERLESS_JOB_TAKE_HOLD = 20.0  # the 100 submissions take a while on 2 cores
    workers = [a_worker(endpoint) for _ in range(100)]

    async def scenario():
        takes = [asyncio.ensure_future(take(w, s).run(application)) for w, s in workers]
        await asyncio.sleep(1.0)
        threads_while_held = threading.active_count()
        await submit_later(endpoint, 0, count=100)
        return await asyncio.gather(*takes), threads_while_held

    before = threading.active_count()
    started = time.monotonic()
    replies, held = async_to_sync(scenario)()
    print(f"100 held takes served in {time.monotonic() - started:.2f} s")
    assert held - before < 10, (before, held)
    ids = [json.loads(reply.body)["id"] for reply in replies if reply.status == 200]
    assert len(ids) == len(set(ids)) == 100


def runsync(team, alice, endpoint, query: str = ""):
    secret = make_key(team, alice)[1]
    body = json.dumps({"input": {"prompt": "hi"}}).encode()
    headers = [
        (b"authorization", f"Bearer {secret}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    return Call("POST", f"/v2/{endpoint.public_id}/runsync", headers, [body], query=query)


def test_runsync_waits_for_the_result(team, alice, endpoint):
    worker, _ = a_worker(endpoint)

    async def finish_soon():
        claim = database_sync_to_async(services.claim_jobs)
        jobs: list[dict] = []
        for _ in range(100):  # until /runsync has queued it (slow on a loaded machine)
            await asyncio.sleep(0.1)
            jobs = await claim(worker=worker, count=1)
            if jobs:
                break
        [job] = jobs
        record = database_sync_to_async(services.record_result)
        await record(worker=worker, job_id=job["id"], body={"output": {"echo": "hi"}})

    call = runsync(team, alice, endpoint)

    async def scenario():
        return await asyncio.gather(call.run(application), finish_soon())

    reply, _ = async_to_sync(scenario)()
    answer = json.loads(reply.body)
    assert reply.status == 200 and answer["status"] == "COMPLETED"
    assert answer["output"] == {"echo": "hi"} and answer["workerId"] == worker.public_id
    assert Job.objects.get().is_sync


def test_runsync_answers_the_current_status_after_its_wait(team, alice, endpoint):
    started = time.monotonic()
    reply = async_to_sync(runsync(team, alice, endpoint, "wait=1000").run)(application)
    answer = json.loads(reply.body)
    assert answer == {"id": Job.objects.get().public_id, "status": "IN_QUEUE"}
    assert 0.9 < time.monotonic() - started < 4


def test_runsync_refusals_pass_through_unheld(team, charlie, endpoint):
    reply = async_to_sync(runsync(charlie.memberships.get().team, charlie, endpoint).run)(
        application
    )
    assert reply.status == 404 and not Job.objects.exists()


def test_short_v2_requests_keep_their_threads_cache_client(team, alice, endpoint, monkeypatch):
    """Each pool thread keeps one context across requests, as a WSGI thread keeps its locals:
    the API throttle's Redis client (Django keeps one per context) is made once per thread,
    not once per request with a new connection each time."""
    made = []
    init = RedisCacheClient.__init__
    monkeypatch.setattr(
        RedisCacheClient, "__init__", lambda self, *a, **kw: made.append(1) or init(self, *a, **kw)
    )
    key = [(b"authorization", f"Bearer {make_key(team, alice)[1]}".encode())]
    health = Call("GET", f"/v2/{endpoint.public_id}/health", key)

    async def scenario():  # each request in a task of its own, as daphne runs them
        return await asyncio.gather(*(health.run(application) for _ in range(3 * DB_THREADS)))

    # From an empty context, as daphne's requests start: none carries this thread's caches.
    replies = contextvars.Context().run(async_to_sync(scenario))
    assert {reply.status for reply in replies} == {200}
    assert len(made) <= DB_THREADS, len(made)  # one a request before
