"""The job API under /v2/<endpoint>/ with RunPod's shapes, authenticated by API key as the
runpod SDK sends it; outsiders 404, roles without the capability 403, bodies over the limit
413. (The held /runsync is in test_held_requests.py: it is served at the ASGI level.)"""

import json
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from serverless import services
from serverless.api import INPUT_LIMIT
from serverless.models import Job, JobChunk
from teams.models import ApiKey, AuditEvent, Membership
from tests.api.test_api_keys import make_key
from tests.conftest import make_user
from tests.serverless.factories import a_worker, an_endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoint(team):
    return an_endpoint(team)


def client_with(secret: str, form: str = "bearer") -> APIClient:
    client = APIClient()
    if form == "bearer":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    elif form == "raw":
        client.credentials(HTTP_AUTHORIZATION=secret)
    return client


@pytest.fixture
def api(team, alice) -> APIClient:
    return client_with(make_key(team, alice)[1])


def post(client, url: str, body) -> object:
    return client.post(url, json.dumps(body), content_type="application/json")


def test_run_queues_the_input_and_answers_id_and_status(api, endpoint, alice):
    body = {"input": {"prompt": "hi"}, "webhook": "https://example.com/hook"}
    response = post(api, f"/v2/{endpoint.public_id}/run", body)
    job = Job.objects.get()
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.json() == {"id": job.public_id, "status": "IN_QUEUE"}
    assert job.public_id.endswith("-u1") and job.input == {"prompt": "hi"}
    assert (job.webhook, job.execution_timeout, job.created_by) == (body["webhook"], 600, alice)
    event = AuditEvent.objects.get(action="job.submitted")
    assert event.details["api_key"] == ApiKey.objects.get().public_id


@pytest.mark.parametrize("form", ["bearer", "raw", "query"])
def test_every_key_form_the_sdk_and_docs_use_works(team, alice, endpoint, form):
    secret = make_key(team, alice)[1]
    url = f"/v2/{endpoint.public_id}/health" + (f"?api_key={secret}" if form == "query" else "")
    assert client_with(secret, form).get(url).status_code == 200


def test_a_policy_execution_timeout_is_milliseconds(api, endpoint):
    post(api, f"/v2/{endpoint.public_id}/run", {"input": 1, "policy": {"executionTimeout": 9000}})
    assert Job.objects.get().execution_timeout == 9
    bad = post(
        api, f"/v2/{endpoint.public_id}/run", {"input": 1, "policy": {"executionTimeout": 1}}
    )
    assert bad.status_code == 400 and "executionTimeout" in bad.json()["message"]


@pytest.mark.parametrize("body", [[1, 2], {"prompt": "no input key"}, "text"])
def test_it_refuses_a_body_without_input(api, endpoint, body):
    response = post(api, f"/v2/{endpoint.public_id}/run", body)
    assert response.status_code == 400 and not Job.objects.exists()


def test_it_refuses_bad_json(api, endpoint):
    response = api.post(f"/v2/{endpoint.public_id}/run", "{", content_type="application/json")
    assert response.status_code == 400 and not Job.objects.exists()


def test_an_input_over_the_limit_is_a_clear_413(api, endpoint):
    big = {"input": {"blob": "x" * INPUT_LIMIT["run"]}}
    response = post(api, f"/v2/{endpoint.public_id}/run", big)
    assert response.status_code == 413
    assert response.json()["message"] == (
        "The request body is larger than this route's limit of 10 MB."
    )
    assert not Job.objects.exists()


def test_status_has_runpods_shape_with_timings_and_worker(api, endpoint):
    job = services.submit_job(actor=None, endpoint=endpoint, payload={"input": {}})
    worker, _ = a_worker(endpoint)
    url = f"/v2/{endpoint.public_id}/status/{job.public_id}"
    assert api.get(url).json() == {"id": job.public_id, "status": "IN_QUEUE"}
    services.claim_jobs(worker=worker, count=1)
    services.record_result(worker=worker, job_id=job.public_id, body={"output": {"a": 1}})
    reply = api.get(url).json()
    assert reply["status"] == "COMPLETED" and reply["output"] == {"a": 1}
    assert reply["workerId"] == worker.public_id
    assert isinstance(reply["delayTime"], int) and isinstance(reply["executionTime"], int)


def test_a_failed_jobs_status_carries_the_error(api, endpoint):
    job = services.submit_job(actor=None, endpoint=endpoint, payload={"input": {}})
    worker, _ = a_worker(endpoint)
    services.claim_jobs(worker=worker, count=1)
    services.record_result(worker=worker, job_id=job.public_id, body={"error": "boom"})
    reply = api.get(f"/v2/{endpoint.public_id}/status/{job.public_id}").json()
    assert (reply["status"], reply["error"]) == ("FAILED", "boom") and "output" not in reply


def test_stream_returns_each_chunk_once_and_an_empty_list_when_final(api, endpoint):
    job = services.submit_job(actor=None, endpoint=endpoint, payload={"input": {}})
    worker, _ = a_worker(endpoint)
    services.claim_jobs(worker=worker, count=1)
    url = f"/v2/{endpoint.public_id}/stream/{job.public_id}"
    for chunk in ("a", "b"):
        services.add_stream_chunk(worker=worker, job_id=job.public_id, body={"output": chunk})
    first = api.get(url).json()
    assert first == {
        "id": job.public_id,
        "status": "IN_PROGRESS",
        "stream": [{"output": "a"}, {"output": "b"}],
    }
    assert api.get(url).json()["stream"] == []
    services.add_stream_chunk(worker=worker, job_id=job.public_id, body={"output": "c"})
    services.record_result(worker=worker, job_id=job.public_id, body={"output": ["a", "b", "c"]})
    assert api.get(url).json() == {
        "id": job.public_id,
        "status": "COMPLETED",
        "stream": [{"output": "c"}],
    }
    assert api.get(url).json() == {"id": job.public_id, "status": "COMPLETED", "stream": []}


def test_cancel_stops_a_running_job_and_tells_its_worker(api, endpoint, alice):
    job = services.submit_job(actor=None, endpoint=endpoint, payload={"input": {}})
    worker, _ = a_worker(endpoint)
    services.claim_jobs(worker=worker, count=1)
    reply = api.post(f"/v2/{endpoint.public_id}/cancel/{job.public_id}")
    assert reply.json() == {"id": job.public_id, "status": "CANCELLED"}
    assert services.take_stop_signals(worker=worker) == [job.public_id]
    assert services.take_stop_signals(worker=worker) == []
    # A result arriving after the cancel changes nothing.
    services.record_result(worker=worker, job_id=job.public_id, body={"output": 1})
    job.refresh_from_db()
    assert (job.status, job.output) == ("CANCELLED", None)
    assert AuditEvent.objects.get(action="job.cancelled").actor == alice


def test_a_worker_still_running_a_cancelled_job_is_told_again_at_its_next_ping(api, endpoint):
    # The SDK drops a stop that reaches it before the job's task exists; its pings still
    # list the job, and each such ping signals the stop again.
    job, done = (
        services.submit_job(actor=None, endpoint=endpoint, payload={"input": n}) for n in (1, 2)
    )
    worker, _ = a_worker(endpoint)
    services.claim_jobs(worker=worker, count=2)
    services.record_result(worker=worker, job_id=done.public_id, body={"output": 2})
    api.post(f"/v2/{endpoint.public_id}/cancel/{job.public_id}")
    assert services.take_stop_signals(worker=worker) == [job.public_id]  # then lost
    services.heartbeat(worker=worker, job_ids=[done.public_id], version="1.12.0")
    assert services.take_stop_signals(worker=worker) == []  # completed: nothing to stop
    services.heartbeat(worker=worker, job_ids=[job.public_id], version="1.12.0")
    assert services.take_stop_signals(worker=worker) == [job.public_id]
    other, _ = a_worker(endpoint)
    services.heartbeat(worker=other, job_ids=[job.public_id], version="1.12.0")
    assert services.take_stop_signals(worker=other) == []  # not its job


def test_cancelling_a_finished_job_leaves_it_as_it_is(api, endpoint):
    job = Job.objects.create(endpoint=endpoint, input={}, execution_timeout=5, status="COMPLETED")
    reply = api.post(f"/v2/{endpoint.public_id}/cancel/{job.public_id}")
    assert reply.json()["status"] == "COMPLETED"
    assert not AuditEvent.objects.filter(action="job.cancelled").exists()


def test_retry_requeues_failed_and_timed_out_jobs_only(api, endpoint):
    job = services.submit_job(actor=None, endpoint=endpoint, payload={"input": {"n": 1}})
    worker, _ = a_worker(endpoint)
    url = f"/v2/{endpoint.public_id}/retry/{job.public_id}"
    refused = api.post(url)
    assert refused.status_code == 400 and "IN_QUEUE" in refused.json()["message"]
    services.claim_jobs(worker=worker, count=1)
    services.record_result(worker=worker, job_id=job.public_id, body={"error": "boom"})
    assert api.post(url).json() == {"id": job.public_id, "status": "IN_QUEUE"}
    job.refresh_from_db()
    assert (job.retries, job.error, job.worker, job.input) == (1, "", None, {"n": 1})
    health = api.get(f"/v2/{endpoint.public_id}/health").json()
    assert health["jobs"]["retried"] == 1 and health["jobs"]["inQueue"] == 1


def test_a_retried_job_carries_no_stale_stop_signal_or_requeue_count(endpoint):
    job = services.submit_job(
        actor=None, endpoint=endpoint, payload={"input": 1, "policy": {"executionTimeout": 5000}}
    )
    gone, _ = a_worker(endpoint)
    services.claim_jobs(worker=gone, count=1)
    Job.objects.filter(pk=job.pk).update(requeues=1)
    with time_machine.travel(timezone.now() + timedelta(seconds=6)):
        services.sweep_jobs()  # its worker died before fetching the stop
    services.retry_job(actor=None, job=job)
    fresh, _ = a_worker(endpoint)
    services.claim_jobs(worker=fresh, count=1)
    assert services.take_stop_signals(worker=fresh) == []
    job.refresh_from_db()
    assert (job.status, job.requeues) == ("IN_PROGRESS", 0)


def test_purge_queue_removes_queued_jobs_and_leaves_running_ones(api, endpoint):
    for n in range(3):
        services.submit_job(actor=None, endpoint=endpoint, payload={"input": n})
    worker, _ = a_worker(endpoint)
    [running] = services.claim_jobs(worker=worker, count=1)
    reply = api.post(f"/v2/{endpoint.public_id}/purge-queue")
    assert reply.json() == {"removed": 2, "status": "completed"}
    assert list(Job.objects.values_list("public_id", "status")) == [(running["id"], "IN_PROGRESS")]
    assert AuditEvent.objects.get(action="endpoint.queue_purged").details["removed"] == 2


def test_health_counts_jobs_and_workers(api, endpoint):
    for n in range(4):
        services.submit_job(actor=None, endpoint=endpoint, payload={"input": n})
    worker, _ = a_worker(endpoint)
    a_worker(endpoint)  # never seen: initializing
    done, failed, running = services.claim_jobs(worker=worker, count=3)
    services.record_result(worker=worker, job_id=done["id"], body={"output": 1})
    services.record_result(worker=worker, job_id=failed["id"], body={"error": "x"})
    assert api.get(f"/v2/{endpoint.public_id}/health").json() == {
        "jobs": {"completed": 1, "failed": 1, "inProgress": 1, "inQueue": 1, "retried": 0},
        "workers": {"initializing": 1, "idle": 0, "running": 1, "throttled": 0, "unhealthy": 0},
    }


def test_results_are_kept_30_minutes_async_and_1_minute_sync(endpoint):
    worker, _ = a_worker(endpoint)
    kept = services.submit_job(actor=None, endpoint=endpoint, payload={"input": 1})
    sync = services.submit_job(actor=None, endpoint=endpoint, payload={"input": 2}, sync=True)
    services.claim_jobs(worker=worker, count=2)
    for job in (kept, sync):
        services.record_result(worker=worker, job_id=job.public_id, body={"output": 1})
    queued = services.submit_job(actor=None, endpoint=endpoint, payload={"input": 3})
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        assert services.sweep_jobs() == {"timed_out": 0, "deleted": 1}
    assert set(Job.objects.values_list("pk", flat=True)) == {kept.pk, queued.pk}
    with time_machine.travel(timezone.now() + timedelta(minutes=30, seconds=1)):
        assert services.sweep_jobs()["deleted"] == 1
    assert list(Job.objects.values_list("pk", flat=True)) == [queued.pk]


def test_a_job_past_its_execution_timeout_times_out_and_its_worker_is_told(endpoint):
    worker, _ = a_worker(endpoint)
    job = services.submit_job(
        actor=None, endpoint=endpoint, payload={"input": 1, "policy": {"executionTimeout": 5000}}
    )
    services.claim_jobs(worker=worker, count=1)
    with time_machine.travel(timezone.now() + timedelta(seconds=4)):
        assert services.sweep_jobs()["timed_out"] == 0
    with time_machine.travel(timezone.now() + timedelta(seconds=6)):
        assert services.sweep_jobs()["timed_out"] == 1
    job.refresh_from_db()
    assert job.status == "TIMED_OUT" and "execution timeout (5 s)" in job.error
    assert services.take_stop_signals(worker=worker) == [job.public_id]
    services.record_result(worker=worker, job_id=job.public_id, body={"output": "late"})
    job.refresh_from_db()
    assert job.status == "TIMED_OUT"


def test_a_read_only_key_reads_but_sends_no_jobs(team, alice, endpoint):
    client = client_with(make_key(team, alice, ApiKey.Permission.READ_ONLY)[1])
    assert client.get(f"/v2/{endpoint.public_id}/health").status_code == 200
    assert post(client, f"/v2/{endpoint.public_id}/run", {"input": 1}).status_code == 403
    assert not Job.objects.exists()


def test_a_basic_members_key_reads_but_sends_no_jobs(team, endpoint):
    basic = make_user("basic@example.com")
    Membership.objects.create(user=basic, team=team, role="basic")
    client = client_with(make_key(team, basic)[1])
    assert client.get(f"/v2/{endpoint.public_id}/health").status_code == 200
    job = services.submit_job(actor=None, endpoint=endpoint, payload={"input": {}})
    for url in ("run", "purge-queue", f"cancel/{job.public_id}", f"retry/{job.public_id}"):
        assert post(client, f"/v2/{endpoint.public_id}/{url}", {"input": 1}).status_code == 403
    assert Job.objects.get().status == "IN_QUEUE"


def test_another_teams_key_gets_404_for_the_endpoint_and_its_jobs(charlie, endpoint):
    outsider = client_with(make_key(charlie.memberships.get().team, charlie)[1])
    job = services.submit_job(actor=None, endpoint=endpoint, payload={"input": {}})
    root = f"/v2/{endpoint.public_id}"
    assert post(outsider, f"{root}/run", {"input": 1}).status_code == 404
    assert outsider.get(f"{root}/status/{job.public_id}").status_code == 404
    assert outsider.post(f"{root}/cancel/{job.public_id}").status_code == 404
    assert outsider.get(f"{root}/health").status_code == 404
    assert Job.objects.count() == 1 and Job.objects.get().status == "IN_QUEUE"


def test_a_job_id_of_another_endpoint_is_a_404(api, team, endpoint):
    other = an_endpoint(team, name="other")
    job = services.submit_job(actor=None, endpoint=other, payload={"input": {}})
    assert api.get(f"/v2/{endpoint.public_id}/status/{job.public_id}").status_code == 404


def test_a_bad_key_is_a_401_and_no_key_too(endpoint):
    assert client_with("rpa_nope").get(f"/v2/{endpoint.public_id}/health").status_code == 401
    assert APIClient().get(f"/v2/{endpoint.public_id}/health").status_code in (401, 403)


def test_streamed_chunks_go_with_a_retried_job(endpoint):
    job = services.submit_job(actor=None, endpoint=endpoint, payload={"input": {}})
    worker, _ = a_worker(endpoint)
    services.claim_jobs(worker=worker, count=1)
    services.add_stream_chunk(worker=worker, job_id=job.public_id, body={"output": 1})
    services.record_result(worker=worker, job_id=job.public_id, body={"error": "x"})
    services.retry_job(actor=None, job=job)
    assert not JobChunk.objects.exists()


@pytest.mark.parametrize(
    "raw", ['{"input": "a\\u0000b"}', '{"input": ' + "[" * 100_000 + "]" * 100_000 + "}"]
)
def test_hostile_json_is_a_400_not_a_500(api, endpoint, raw):
    response = api.post(f"/v2/{endpoint.public_id}/run", raw, content_type="application/json")
    assert response.status_code == 400 and not Job.objects.exists()
