"""Serverless billing against a hostile worker and a team out of funds: a worker that low funds
stopped cannot go on taking, finishing or pinging (its secret dies with it) and nothing it
sends bills or frees more seconds; a team short of funds cannot queue work through any
client route."""

import json

import pytest
import time_machine
from asgiref.sync import async_to_sync
from django.test import Client, TestCase

from console.asgi import application
from pods import funds
from pods.metering import meter
from serverless import services
from serverless.models import Job, Worker, hash_secret
from tests.referrals.conftest import top_up
from tests.serverless.factories import an_endpoint
from tests.serverless.test_billing import (
    T0,
    api,  # noqa: F401 (a fixture)
    at,
    run,
    seconds_cost,
    spent,
    worker_on_a_pod,
)
from tests.serverless.test_held_requests import runsync

pytestmark = pytest.mark.django_db
FORM = "application/x-www-form-urlencoded"


def worker_post(worker: Worker, secret: str, path: str, body):
    url = f"/v2/{worker.endpoint.public_id}/{path}"
    return Client().post(url, json.dumps(body), content_type=FORM, HTTP_AUTHORIZATION=secret)


def ping(worker: Worker, secret: str, job: Job):
    url = f"/v2/{worker.endpoint.public_id}/ping/{worker.public_id}"
    return Client().get(url, {"job_id": job.public_id}, HTTP_AUTHORIZATION=secret)


def test_a_worker_stopped_for_low_funds_cannot_work_on_or_bill_more(team):
    with time_machine.travel(T0, tick=False):
        endpoint = an_endpoint(team, funded=False)
        top_up(team, "1")
        worker = worker_on_a_pod(endpoint, price="12", ready=at(0))
    secret = Worker.generate_secret()  # the worker's own, as its pod has it
    Worker.objects.filter(pk=worker.pk).update(secret_hash=hash_secret(secret))
    with time_machine.travel(at(0, 30), tick=False):
        job = Job.objects.create(endpoint=endpoint, input={}, execution_timeout=600)
        services.claim_jobs(worker=worker, count=1)
        assert ping(worker, secret, job).status_code == 200  # the secret works, until the stop
    with time_machine.travel(at(1, 5), tick=False), TestCase.captureOnCommitCallbacks():
        assert funds.enforce(team_ids=meter().team_ids) == [team.pk]
    job.refresh_from_db()
    assert job.status == Job.Status.IN_QUEUE and job.retries == 1  # another worker may take it

    with time_machine.travel(at(5), tick=False):
        done = worker_post(worker, secret, f"job-done/{worker.public_id}/{job.public_id}", {})
        late_ping = ping(worker, secret, job)
        meter()
    assert (done.status_code, late_ping.status_code) == (401, 401)
    worker.refresh_from_db()
    assert worker.state == Worker.State.STOPPED and worker.last_seen_at < at(1, 5)
    assert spent(team) == seconds_cost(worker.price, at(0), at(1, 5))  # not a second more


def test_a_team_short_of_funds_cannot_queue_or_retry_jobs_by_any_client_route(team, api):  # noqa: F811
    endpoint = an_endpoint(team, funded=False)
    for path in ("run", "runsync"):
        body = json.dumps({"input": {"prompt": "hi"}})
        url = f"/v2/{endpoint.public_id}/{path}"
        assert api.post(url, body, content_type="application/json").status_code == 402
    with pytest.raises(services.JobError) as refused:
        services.submit_job(actor=None, endpoint=endpoint, payload={"input": {}})
    assert refused.value.status == 402 and not Job.objects.exists()
    assert run(api, endpoint).status_code == 402
    failed = Job.objects.create(
        endpoint=endpoint, input={}, execution_timeout=600, status=Job.Status.FAILED
    )
    retry = api.post(f"/v2/{endpoint.public_id}/retry/{failed.public_id}")
    assert retry.status_code == 402  # a retry is new work too
    failed.refresh_from_db()
    assert failed.status == Job.Status.FAILED


@pytest.mark.django_db(transaction=True)
def test_the_held_runsync_at_the_asgi_level_refuses_too(team, alice):
    endpoint = an_endpoint(team, funded=False)
    reply = async_to_sync(runsync(team, alice, endpoint).run)(application)
    assert reply.status == 402 and "does not cover 10 minutes" in json.loads(reply.body)["message"]
    assert not Job.objects.exists()
