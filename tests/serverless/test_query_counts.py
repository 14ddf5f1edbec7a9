"""Queries per call of the worker protocol and the job API: bounded, and the same for one job as
for a batch (no query per job). A held job-take or job-stop runs what serverless.asgi runs per
look at the database (authenticate_worker, then claim_jobs or take_stop_signals); the short
routes go through Django's middleware and view as the test client sends them."""

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from serverless import services
from serverless.models import Job
from tests.api.test_api_keys import make_key
from tests.serverless.factories import a_worker, an_endpoint

pytestmark = pytest.mark.django_db
FORM = "application/x-www-form-urlencoded"
# Most statements each call may run (savepoints aside).
BOUNDS = {
    "job-take": 4,  # the worker; the claim (SKIP LOCKED), its UPDATE, the worker's state
    "empty job-take": 4,  # the worker; the claim; is it still busy; the worker's last_seen
    "job-stop": 3,  # the worker; the stop signals (SKIP LOCKED), their UPDATE
    "job-done": 5,  # the worker; the job (FOR UPDATE), its UPDATE; busy; the worker's state
    "job-stream": 3,  # the worker; the job; the chunk
    "ping": 3,  # the worker; its heartbeat; a stop its in-flight jobs missed (one UPDATE)
    "run": 8,  # the key, membership, endpoint and team; funds (3); the job, its audit event
    "status": 4,  # the key, membership, endpoint, job
}


def statements(call) -> list[str]:
    with CaptureQueriesContext(connection) as context:
        call()
    sqls = [query["sql"] for query in context.captured_queries]
    return [sql for sql in sqls if not sql.startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]


@pytest.fixture
def endpoint(team):
    return an_endpoint(team)


def queue(endpoint, count: int) -> list[Job]:
    return [
        services.submit_job(actor=None, endpoint=endpoint, payload={"input": n})
        for n in range(count)
    ]


def held_take(worker, secret: str, count: int) -> list[dict]:
    found = services.authenticate_worker(
        endpoint_id=worker.endpoint.public_id, worker_id=worker.public_id, secret=secret
    )
    return services.claim_jobs(worker=found, count=count)


@pytest.mark.parametrize("batch", [1, 5])
def test_a_job_take_runs_the_same_few_queries_for_one_job_as_for_a_batch(endpoint, batch):
    worker, secret = a_worker(endpoint)
    queue(endpoint, batch)
    taken: list[dict] = []
    sqls = statements(lambda: taken.extend(held_take(worker, secret, batch)))
    assert len(taken) == batch
    assert len(sqls) <= BOUNDS["job-take"], sqls
    empty = statements(lambda: held_take(worker, secret, batch))
    assert len(empty) <= BOUNDS["empty job-take"], empty


def test_job_stop_runs_a_bounded_number_of_queries(endpoint):
    worker, secret = a_worker(endpoint)
    jobs = queue(endpoint, 3)
    services.claim_jobs(worker=worker, count=3)
    for job in jobs:
        services.cancel_job(actor=None, job=job)
    signals: list[str] = []

    def stop() -> None:
        found = services.authenticate_worker(
            endpoint_id=endpoint.public_id, worker_id=worker.public_id, secret=secret
        )
        signals.extend(services.take_stop_signals(worker=found))

    sqls = statements(stop)
    assert sorted(signals) == sorted(job.public_id for job in jobs)
    assert len(sqls) <= BOUNDS["job-stop"], sqls


def post(worker, secret: str, kind: str, job_id: str, body: dict):
    url = f"/v2/{worker.endpoint.public_id}/{kind}/{worker.public_id}/{job_id}?gpu=A40"
    return Client().post(url, json.dumps(body), content_type=FORM, HTTP_AUTHORIZATION=secret)


@pytest.mark.parametrize("running", [1, 5])
def test_job_done_runs_a_bounded_number_of_queries_and_never_reads_or_rewrites_the_input(
    endpoint, running
):
    worker, secret = a_worker(endpoint)
    jobs = queue(endpoint, running)
    Job.objects.filter(pk=jobs[0].pk).update(input={"big": "x" * 10_000})
    services.claim_jobs(worker=worker, count=running)
    sqls = statements(
        lambda: post(worker, secret, "job-done", jobs[0].public_id, {"output": {"ok": 1}})
    )
    jobs[0].refresh_from_db()
    assert (jobs[0].status, jobs[0].output) == ("COMPLETED", {"ok": 1})
    assert len(sqls) <= BOUNDS["job-done"], sqls
    [update] = [sql for sql in sqls if sql.startswith('UPDATE "serverless_job"')]
    assert '"input"' not in update
    [locked] = [sql for sql in sqls if "FOR UPDATE" in sql]
    assert 'FROM "serverless_job"' in locked and '"input"' not in locked  # nor reads it


def test_job_stream_and_ping_run_a_bounded_number_of_queries(endpoint):
    worker, secret = a_worker(endpoint)
    [job] = queue(endpoint, 1)
    services.claim_jobs(worker=worker, count=1)
    sqls = statements(lambda: post(worker, secret, "job-stream", job.public_id, {"output": "a"}))
    assert job.chunks.count() == 1
    assert len(sqls) <= BOUNDS["job-stream"], sqls
    url = f"/v2/{endpoint.public_id}/ping/{worker.public_id}?gpu=A40&job_id={job.public_id}"
    sqls = statements(lambda: Client().get(url, HTTP_AUTHORIZATION=secret))
    worker.refresh_from_db()
    assert worker.in_flight == [job.public_id]
    assert len(sqls) <= BOUNDS["ping"], sqls


def test_run_and_status_run_a_bounded_number_of_queries(team, alice, endpoint):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {make_key(team, alice)[1]}")
    run = f"/v2/{endpoint.public_id}/run"
    client.post(run, {"input": 0}, content_type="application/json")  # the key's last_used_at
    replies = []
    sqls = statements(
        lambda: replies.append(client.post(run, {"input": 1}, content_type="application/json"))
    )
    assert replies[0].status_code == 200, replies[0].content
    assert len(sqls) <= BOUNDS["run"], sqls
    status = f"/v2/{endpoint.public_id}/status/{replies[0].json()['id']}"
    sqls = statements(lambda: replies.append(client.get(status)))
    assert replies[1].json()["status"] == "IN_QUEUE"
    assert len(sqls) <= BOUNDS["status"], sqls
    [job] = [sql for sql in sqls if 'FROM "serverless_job"' in sql]
    assert '"input"' not in job  # up to 20 MB, and no answer shows it
