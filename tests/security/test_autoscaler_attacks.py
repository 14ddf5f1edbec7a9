"""The autoscaler acts on what workers report (pings, in-flight job ids) and on env a template's
author chose: a hostile worker or template must not steer it against another worker, job or
customer."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from pods.models import PodTemplate
from serverless import launch, services
from serverless.autoscaler import autoscale
from serverless.models import Job, Worker
from tests.pods.factories import catalogue, fund
from tests.serverless.factories import an_endpoint

pytestmark = pytest.mark.django_db
T0 = timezone.now().replace(microsecond=0) + timedelta(days=1)


def test_a_worker_listing_another_workers_timed_out_job_stops_nobody(team):
    catalogue()
    fund(team)
    endpoint = an_endpoint(team, workers_min=2, execution_timeout=20)
    with time_machine.travel(T0, tick=False) as clock:
        autoscale()
        victim, attacker = endpoint.workers.order_by("pk")
        for worker in (victim, attacker):
            services.heartbeat(worker=worker, job_ids=[], version="1.12.0")
        job = services.submit_job(actor=None, endpoint=endpoint, payload={"input": {}})
        services.claim_jobs(worker=victim, count=1)
        clock.move_to(T0 + timedelta(seconds=21))
        services.sweep_jobs()
        clock.move_to(T0 + timedelta(seconds=25))
        services.heartbeat(worker=victim, job_ids=[], version="1.12.0")  # it let go
        services.heartbeat(worker=attacker, job_ids=[job.public_id], version="1.12.0")
        clock.move_to(T0 + timedelta(seconds=40))
        assert autoscale().get("stopped", 0) == 0
    for worker in (victim, attacker):
        worker.refresh_from_db()
        assert worker.state != Worker.State.STOPPED and worker.billed_until is None
    assert Job.objects.get(pk=job.pk).status == Job.Status.TIMED_OUT


def test_a_templates_env_cannot_redirect_a_workers_protocol_or_take_its_identity(team, charlie):
    """A public template's author picks its env: results must still go to the console, with
    the worker's own id and secret, never to the author's URL."""
    catalogue()
    fund(team)
    hostile = [
        {"key": "RUNPOD_WEBHOOK_POST_OUTPUT", "value": "http://attacker.example/steal"},
        {"key": "RUNPOD_WEBHOOK_GET_JOB", "value": "http://attacker.example/jobs"},
        {"key": "RUNPOD_AI_API_KEY", "value": "rpw_known_to_the_author"},
        {"key": "RUNPOD_POD_ID", "value": "someone-else"},
        {"key": "RUNPOD_ENDPOINT_ID", "value": "another-endpoint"},
    ]
    endpoint = an_endpoint(team, workers_min=1, env=hostile[:1])
    endpoint.template = PodTemplate.objects.create(
        team=charlie.memberships.get().team,
        name="Free LLM worker",
        image="python:3.11-slim",
        is_serverless=True,
        is_public=True,
        env=hostile,
    )
    endpoint.save()
    worker = launch.start_worker(endpoint, flex=False)
    env = {row["key"]: row["value"] for row in worker.pod.env}  # the last value wins
    assert (
        "attacker.example" not in env["RUNPOD_WEBHOOK_POST_OUTPUT"] + env["RUNPOD_WEBHOOK_GET_JOB"]
    )
    assert env["RUNPOD_POD_ID"] == worker.public_id
    assert env["RUNPOD_ENDPOINT_ID"] == endpoint.public_id
    assert env["RUNPOD_AI_API_KEY"] != "rpw_known_to_the_author"
    assert (
        services.authenticate_worker(
            endpoint_id=endpoint.public_id,
            worker_id=worker.public_id,
            secret="rpw_known_to_the_author",
        )
        is None
    )
