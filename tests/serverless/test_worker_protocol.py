"""The worker protocol's short requests as the runpod worker sends them: job-done with a JSON
body labelled as form data (`error` means FAILED, repeats tolerated, progress updates),
job-stream chunks, ping heartbeats; each worker authenticated by its own secret. And the
queue: workers claiming concurrently never take the same job."""

import json
import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from serverless import services
from serverless.models import Job, Worker
from tests.serverless.factories import a_worker, an_endpoint

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def endpoint(team):
    return an_endpoint(team)


@pytest.fixture
def worker(endpoint):
    return a_worker(endpoint)


def running_job(endpoint, worker: Worker, value=None) -> Job:
    job = services.submit_job(actor=None, endpoint=endpoint, payload={"input": value or {}})
    services.claim_jobs(worker=worker, count=1)
    return job


def done(secret: str, worker: Worker, job_id: str, body, kind: str = "job-done", stream="false"):
    url = f"/v2/{worker.endpoint.public_id}/{kind}/{worker.public_id}/{job_id}"
    payload = body if isinstance(body, str | bytes) else json.dumps(body)
    return Client().post(
        f"{url}?gpu=A40&isStream={stream}", payload, content_type=FORM, HTTP_AUTHORIZATION=secret
    )


@pytest.mark.django_db
def test_job_done_reads_json_labelled_as_form_data(endpoint, worker):
    worker, secret = worker
    job = running_job(endpoint, worker)
    response = done(secret, worker, job.public_id, {"output": {"echo": "hi"}})
    assert response.status_code == 200 and response.json() == {"accepted": True}
    job.refresh_from_db()
    assert (job.status, job.output, job.completed_at is not None) == (
        "COMPLETED",
        {"echo": "hi"},
        True,
    )
    worker.refresh_from_db()
    assert worker.state == Worker.State.IDLE


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "output", "error"),
    [
        ({"error": "boom"}, None, "boom"),
        ({"output": {"partial": 1}, "error": "half"}, {"partial": 1}, "half"),
        ({"error": {"error_type": "ValueError"}}, None, '{"error_type": "ValueError"}'),
    ],
)
def test_an_error_key_means_failed(endpoint, worker, body, output, error):
    worker, secret = worker
    job = running_job(endpoint, worker)
    done(secret, worker, job.public_id, body)
    job.refresh_from_db()
    assert (job.status, job.output, job.error) == ("FAILED", output, error)


@pytest.mark.django_db
def test_repeats_and_late_progress_updates_change_nothing(endpoint, worker):
    worker, secret = worker
    job = running_job(endpoint, worker)
    done(secret, worker, job.public_id, {"status": "IN_PROGRESS", "output": "halfway"})
    job.refresh_from_db()
    assert (job.status, job.output) == ("IN_PROGRESS", "halfway")
    done(secret, worker, job.public_id, {"output": 1})
    again = done(secret, worker, job.public_id, {"output": 2})
    late = done(secret, worker, job.public_id, {"status": "IN_PROGRESS", "output": "late"})
    assert again.status_code == late.status_code == 200 and again.json() == {"accepted": False}
    job.refresh_from_db()
    assert (job.status, job.output) == ("COMPLETED", 1)


@pytest.mark.django_db
def test_job_stream_appends_chunks_of_a_running_job(endpoint, worker):
    worker, secret = worker
    job = running_job(endpoint, worker)
    for n in range(3):
        done(secret, worker, job.public_id, {"output": {"tok": n}}, kind="job-stream")
    assert services.drain_stream(job) == [{"tok": 0}, {"tok": 1}, {"tok": 2}]


@pytest.mark.django_db
def test_ping_records_the_heartbeat_and_in_flight_jobs(endpoint, worker):
    worker, secret = worker
    job = running_job(endpoint, worker)
    url = f"/v2/{endpoint.public_id}/ping/{worker.public_id}"
    query = {"gpu": "A40", "job_id": job.public_id, "runpod_version": "1.12.0"}
    assert Client().get(url, query, HTTP_AUTHORIZATION=secret).status_code == 200
    worker.refresh_from_db()
    assert (worker.in_flight, worker.sdk_version) == ([job.public_id], "1.12.0")
    assert worker.last_seen_at is not None and worker.ready_at is not None


@pytest.mark.django_db
def test_a_failed_startup_check_marks_the_worker_unhealthy(endpoint, worker):
    worker, secret = worker
    url = f"/v2/{endpoint.public_id}/ping/{worker.public_id}"
    query = {"status": "unhealthy", "check": "memory", "reason": "2 GB < 4 GB"}
    Client().get(url, query, HTTP_AUTHORIZATION=secret)
    worker.refresh_from_db()
    assert (worker.state, worker.unhealthy_reason) == ("unhealthy", "memory: 2 GB < 4 GB")
    assert services.endpoint_health(endpoint)["workers"]["unhealthy"] == 1


@pytest.mark.django_db
def test_ready_time_starts_with_the_first_sign_of_life_not_at_registration(endpoint, worker):
    worker, _ = worker
    assert worker.state == "initializing" and worker.billable_seconds(worker.created_at) == 0
    services.claim_jobs(worker=worker, count=1)
    worker.refresh_from_db()
    assert worker.ready_at is not None and worker.state == "idle"


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_take_the_same_job(endpoint):
    jobs = [Job(endpoint=endpoint, input={"n": n}, execution_timeout=600) for n in range(200)]
    Job.objects.bulk_create(jobs)
    workers = [a_worker(endpoint)[0] for _ in range(4)]
    taken: list[list[str]] = [[] for _ in workers]
    start = threading.Barrier(len(workers))

    def claim(index: int) -> None:
        try:
            start.wait()
            for _ in range(200):  # bounded: 200 jobs, at least one per round
                batch = services.claim_jobs(worker=workers[index], count=3)
                if not batch:
                    return
                taken[index].extend(job["id"] for job in batch)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    every = [job_id for ids in taken for job_id in ids]
    assert len(every) == len(set(every)) == 200
    assert sum(1 for ids in taken if ids) > 1  # they really ran side by side
    owners = dict(Job.objects.values_list("public_id", "worker__public_id"))
    for worker, ids in zip(workers, taken, strict=True):
        assert all(owners[job_id] == worker.public_id for job_id in ids)


@pytest.mark.django_db
def test_register_worker_prints_the_variables_with_runpods_url_templates(endpoint):
    out = StringIO()
    call_command("register_worker", endpoint.public_id, "--base-url", "http://h:8000", stdout=out)
    env = dict(line.removeprefix("export ").split("=", 1) for line in out.getvalue().splitlines())
    worker = Worker.objects.get()
    root = f"http://h:8000/v2/{endpoint.public_id}"
    assert env["RUNPOD_WEBHOOK_GET_JOB"] == f"'{root}/job-take/$ID?gpu=cpu'"
    assert env["RUNPOD_WEBHOOK_POST_OUTPUT"] == f"'{root}/job-done/$RUNPOD_POD_ID/$ID?gpu=cpu'"
    assert env["RUNPOD_WEBHOOK_POST_STREAM"] == f"'{root}/job-stream/$RUNPOD_POD_ID/$ID?gpu=cpu'"
    assert env["RUNPOD_WEBHOOK_PING"] == f"'{root}/ping/$RUNPOD_POD_ID?gpu=cpu'"
    assert env["RUNPOD_POD_ID"] == worker.public_id
    assert services.authenticate_worker(
        endpoint_id=endpoint.public_id, worker_id=worker.public_id, secret=env["RUNPOD_AI_API_KEY"]
    )


@pytest.mark.django_db
def test_a_worker_whose_job_was_cancelled_is_idle_at_its_next_take(endpoint, worker):
    worker, _ = worker
    job = running_job(endpoint, worker)
    services.cancel_job(actor=None, job=job)
    assert services.claim_jobs(worker=worker, count=1) == []
    worker.refresh_from_db()
    assert worker.state == Worker.State.IDLE
