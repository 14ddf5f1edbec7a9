"""Worker lifecycle with real parts: real runpod workers (runpod 1.12.0 in host processes,
against daphne on the test database) dying mid-job and letting go of a timed-out job, a real
worker pod on the process runtime dying, and worker pods kept out of the user's pod lists."""

from collections.abc import Iterator

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from pods import lifecycle
from pods.models import Pod
from serverless import launch, services
from serverless.autoscaler import autoscale
from serverless.gateway import GATEWAY_PORT, worker_command
from serverless.models import Job, Worker
from tests.api.test_api_keys import bearer, make_key
from tests.conftest import login
from tests.pods.conftest import pods_settings, reap  # noqa: F401 (fixtures)
from tests.pods.factories import catalogue, fund
from tests.security.conftest import needs_root
from tests.serverless.factories import an_endpoint
from tests.serverless.live import WorkerProcess, asgi_server  # noqa: F401 (a fixture)
from tests.waiting import wait_for


@pytest.fixture
def workers(asgi_server) -> Iterator:  # noqa: F811
    started: list[WorkerProcess] = []

    def start(endpoint) -> WorkerProcess:
        started.append(WorkerProcess(endpoint, asgi_server, "plain"))
        return started[-1]

    yield start
    for worker in started:
        if worker.process.returncode is None:  # not closed (killed) by the test already
            worker.close()


def in_progress_on(job: Job, worker: Worker) -> bool:
    return Job.objects.filter(pk=job.pk, status=Job.Status.IN_PROGRESS, worker=worker).exists()


@pytest.mark.usefixtures("reap")
def test_a_worker_whose_pod_dies_is_replaced_and_its_job_requeued(
    team, django_capture_on_commit_callbacks
):
    needs_root()
    parts = catalogue()
    fund(team)
    endpoint = an_endpoint(team, workers_min=1)
    with django_capture_on_commit_callbacks(execute=True):
        worker = launch.start_worker(endpoint, flex=False)
    pod = Pod.objects.get(pk=worker.pod_id)
    assert (pod.status, pod.kind, pod.machine) == (Pod.Status.RUNNING, "worker", parts["machine"])
    assert pod.start_command == worker_command(endpoint.template.start_command)
    env = {row["key"]: row["value"] for row in pod.env}
    assert env["RUNPOD_POD_ID"] == worker.public_id == pod.public_id
    base = f"http://127.0.0.1:{GATEWAY_PORT}/v2/{endpoint.public_id}"
    assert env["RUNPOD_WEBHOOK_PING"] == f"{base}/ping/$RUNPOD_POD_ID?gpu=NVIDIA%20A40"
    found = services.authenticate_worker(
        endpoint_id=endpoint.public_id, worker_id=worker.public_id, secret=env["RUNPOD_AI_API_KEY"]
    )
    assert found == worker

    services.heartbeat(worker=worker, job_ids=[], version="1.12.0")
    job = services.submit_job(actor=None, endpoint=endpoint, payload={"input": {}})
    services.claim_jobs(worker=worker, count=1)
    lifecycle.backend_for(pod).stop(pod.runtime_handle, grace_seconds=0)  # the pod crashes
    lifecycle.reconcile()
    pod.refresh_from_db()
    assert pod.status == Pod.Status.FAILED

    with django_capture_on_commit_callbacks(execute=True):
        counts = autoscale()
    assert (counts["stopped_broken"], counts["requeued"], counts["started"]) == (1, 1, 1)
    worker.refresh_from_db()
    assert worker.stop_reason == f"Its pod {pod.public_id} is failed."
    job.refresh_from_db()
    assert (job.status, job.retries) == (Job.Status.IN_QUEUE, 1)
    (replacement,) = endpoint.workers.exclude(state=Worker.State.STOPPED)
    assert replacement.pod.status == Pod.Status.RUNNING and replacement.pod != pod
    pod.refresh_from_db()
    assert pod.status == Pod.Status.TERMINATED


def test_worker_pods_stay_out_of_the_users_pod_lists_and_apis(team, alice):
    catalogue()
    fund(team)
    endpoint = an_endpoint(team, workers_min=1)
    worker = launch.start_worker(endpoint, flex=False)
    pod_id = worker.pod.public_id
    client = login(alice)
    pods_page = client.get(reverse("pod_list", args=[team.slug])).content.decode()
    assert pod_id not in pods_page
    dashboard = client.get(reverse("dashboard", args=[team.slug])).content.decode()
    assert "0 in total" in dashboard and pod_id not in dashboard
    assert client.get(worker.pod.get_absolute_url()).status_code == 200  # linked from the endpoint

    _, secret = make_key(team, alice)
    api = APIClient()
    listed = api.get("/api/v1/pods", **bearer(secret)).json()
    assert listed["count"] == 0
    assert api.get(f"/api/v1/pods/{pod_id}", **bearer(secret)).status_code == 404
    query = {"query": "query { myself { pods { id } } }"}
    answer = api.post("/graphql", query, format="json", **bearer(secret)).json()
    assert answer["data"]["myself"]["pods"] == []


@pytest.mark.django_db(transaction=True)
def test_a_job_whose_worker_dies_is_requeued_once_and_completed_by_another(workers, team, settings):
    settings.SERVERLESS_WORKER_UNHEALTHY_AFTER = 3  # the SDK here pings every second
    fund(team)
    endpoint = an_endpoint(team)
    first = workers(endpoint)
    job = services.submit_job(actor=None, endpoint=endpoint, payload={"input": {"sleep": 2}})
    wait_for(lambda: in_progress_on(job, first.worker), timeout=30)
    first.close()  # SIGKILL mid-job: no job-done, no more pings
    second = workers(endpoint)
    wait_for(lambda: Worker.objects.get(pk=second.worker.pk).ready_at, timeout=30)

    wait_for(lambda: autoscale().get("requeued"), timeout=30)
    wait_for(lambda: Job.objects.get(pk=job.pk).status == Job.Status.COMPLETED, timeout=30)
    job.refresh_from_db()
    assert job.output == {"echo": {"sleep": 2}, "worker": second.worker.public_id}
    assert (job.retries, job.worker_id) == (1, second.worker.pk)
    assert services.endpoint_health(endpoint)["jobs"]["retried"] == 1
    dead = Worker.objects.get(pk=first.worker.pk)
    assert dead.state == Worker.State.STOPPED
    assert dead.stop_reason.startswith("No heartbeat or job request for ")
    assert autoscale().get("stopped", 0) == 0  # the live worker is left alone
    assert Worker.objects.get(pk=second.worker.pk).state != Worker.State.STOPPED


@pytest.mark.django_db(transaction=True)
def test_a_timed_out_job_is_stopped_by_its_worker_which_the_autoscaler_then_keeps(
    workers, team, settings
):
    settings.SERVERLESS_TIMEOUT_GRACE = 0
    fund(team)
    endpoint = an_endpoint(team)
    worker = workers(endpoint)
    payload = {"input": {"sleep": 60}, "policy": {"executionTimeout": 5000}}
    job = services.submit_job(actor=None, endpoint=endpoint, payload=payload)
    wait_for(lambda: in_progress_on(job, worker.worker), timeout=30)
    wait_for(lambda: services.sweep_jobs()["timed_out"], timeout=15)
    job.refresh_from_db()
    assert job.status == Job.Status.TIMED_OUT
    assert "execution timeout (5 s)" in job.error
    wait_for(lambda: job.public_id in worker.stopped_jobs(), timeout=20)  # the SDK cancelled it

    def let_go() -> bool:
        row = Worker.objects.get(pk=worker.worker.pk)
        return row.last_seen_at > job.completed_at and job.public_id not in row.in_flight

    wait_for(let_go, timeout=20)  # its next ping lists the job no more
    assert autoscale().get("stopped", 0) == 0
    row = Worker.objects.get(pk=worker.worker.pk)
    assert row.state != Worker.State.STOPPED and row.billed_until is None
