"""The official runpod package (1.12.0, unmodified) on both sides against a live server: a
worker process running `runpod.serverless.start({"handler": fn})` with the variables the
console gives workers, and the SDK client (`runpod.Endpoint`) sending it jobs.

Workers run here as host subprocesses that the test starts; starting them as pods (and
scaling them) is the autoscaler's work, which comes next."""

import json
import time
from collections.abc import Iterator

import pytest

from serverless.models import Job, Worker
from tests.api.test_api_keys import make_key
from tests.sdk_driver import Sdk, sdk_process
from tests.serverless.factories import an_endpoint
from tests.serverless.live import WorkerProcess, asgi_server, child_env  # noqa: F401
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sdk(asgi_server, team, alice, tmp_path) -> Iterator[Sdk]:  # noqa: F811
    _, secret = make_key(team, alice)
    with sdk_process(asgi_server, secret, child_env(HOME=str(tmp_path))) as sdk:
        yield sdk


@pytest.fixture
def workers(asgi_server) -> Iterator:  # noqa: F811
    started: list[WorkerProcess] = []

    def start(endpoint, handler: str = "plain") -> WorkerProcess:
        started.append(WorkerProcess(endpoint, asgi_server, handler))
        return started[-1]

    yield start
    for worker in started:
        worker.close()


def test_run_sync_run_status_output_and_a_failing_handler(sdk, workers, team):
    endpoint = an_endpoint(team)
    worker = workers(endpoint)
    eid = endpoint.public_id
    output = sdk.call(f'runpod.Endpoint("{eid}").run_sync({{"prompt": "hi"}}, timeout=60)')
    assert output == {"echo": {"prompt": "hi"}, "worker": worker.worker.public_id}
    assert Job.objects.get().is_sync

    job_id = sdk.call(f'(job := runpod.Endpoint("{eid}").run({{"n": 2}})).job_id')
    assert sdk.call("job.output(timeout=60)") == {
        "echo": {"n": 2},
        "worker": worker.worker.public_id,
    }
    assert sdk.call("job.status()") == "COMPLETED"
    job = Job.objects.get(public_id=job_id)
    assert (job.status, job.worker, job.is_sync) == ("COMPLETED", worker.worker, False)

    assert (
        sdk.call(f'runpod.Endpoint("{eid}").run_sync({{"raise": "on purpose"}}, timeout=60)')
        is None
    )
    failed = Job.objects.get(status="FAILED")
    error = json.loads(failed.error)
    assert (error["error_type"], error["error_message"]) == (
        "<class 'ValueError'>",
        "asked to fail: on purpose",
    )
    health = sdk.call(f'runpod.Endpoint("{eid}").health()')
    assert health["jobs"] == {
        "completed": 2,
        "failed": 1,
        "inProgress": 0,
        "inQueue": 0,
        "retried": 0,
    }
    assert health["workers"]["idle"] + health["workers"]["running"] == 1
    wait_for(lambda: Worker.objects.get().sdk_version == "1.12.0", timeout=10)


def test_a_generator_handler_streams_each_chunk(sdk, workers, team):
    endpoint = an_endpoint(team)
    workers(endpoint, "tokens")
    eid = endpoint.public_id
    chunks = sdk.call(f'list(runpod.Endpoint("{eid}").run({{"n": 3}}).stream())')
    assert chunks == [{"tok": 0}, {"tok": 1}, {"tok": 2}]
    job = Job.objects.get()
    assert (job.status, job.output) == ("COMPLETED", [{"tok": 0}, {"tok": 1}, {"tok": 2}])
    assert sdk.call(f'runpod.Endpoint("{eid}").run_sync({{"n": 2}}, timeout=60)') == [
        {"tok": 0},
        {"tok": 1},
    ]


def test_cancel_stops_a_long_job_on_the_worker_and_purge_leaves_it_running(sdk, workers, team):
    endpoint = an_endpoint(team)
    worker = workers(endpoint)
    eid = endpoint.public_id
    long_id = sdk.call(f'(long := runpod.Endpoint("{eid}").run({{"sleep": 120}})).job_id')
    wait_for(lambda: Job.objects.get(public_id=long_id).status == "IN_PROGRESS", timeout=30)
    for n in range(2):
        sdk.call(f'runpod.Endpoint("{eid}").run({{"queued": {n}}}).job_id')
    health = sdk.call(f'runpod.Endpoint("{eid}").health()')
    assert (health["jobs"]["inProgress"], health["jobs"]["inQueue"]) == (1, 2)
    assert sdk.call(f'runpod.Endpoint("{eid}").purge_queue()') == {
        "removed": 2,
        "status": "completed",
    }
    assert Job.objects.get().public_id == long_id and Job.objects.get().status == "IN_PROGRESS"

    started = time.monotonic()
    assert sdk.call("long.cancel()") == {"id": long_id, "status": "CANCELLED"}
    wait_for(lambda: long_id in worker.stopped_jobs(), timeout=20)
    assert time.monotonic() - started < 20
    # The worker is free again: the next job runs at once.
    assert sdk.call(f'runpod.Endpoint("{eid}").run_sync({{"after": 1}}, timeout=60)')["echo"] == {
        "after": 1
    }
    assert Job.objects.get(public_id=long_id).status == "CANCELLED"


def test_a_stop_the_worker_missed_is_signalled_again_from_its_pings(sdk, workers, team):
    # The SDK drops a stop that reaches it before the job's task exists (the cause of a CI
    # failure): here the stop is lost outright, and the worker's pings bring it back.
    endpoint = an_endpoint(team)
    worker = workers(endpoint)
    long_id = sdk.call(f'runpod.Endpoint("{endpoint.public_id}").run({{"sleep": 120}}).job_id')
    wait_for(lambda: long_id in Worker.objects.get().in_flight, timeout=30)
    Job.objects.filter(public_id=long_id).update(status=Job.Status.CANCELLED)  # no signal
    wait_for(lambda: long_id in worker.stopped_jobs(), timeout=20)
    wait_for(lambda: Worker.objects.get().in_flight == [], timeout=10)
