"""The autoscaler, time-controlled (time-machine moves the clock, `now=` drives the pass): real
placement through pods.services on the test catalogue, workers coming up and finishing jobs
through the same services the worker protocol calls. Pods are rows here (their boot runs on
commit, which these tests do not reach); tests/serverless/test_worker_lifecycle.py runs real
pods and real runpod workers."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection, connections
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import LedgerEntry
from billing.services import adjust_balance, get_account
from pods import services as pod_services
from pods.models import Pod
from serverless import launch, metering, services
from serverless.autoscaler import autoscale, scale_endpoint
from serverless.models import Endpoint, Job, ScalerType, Worker
from serverless.tasks import autoscale_task
from teams.models import AuditEvent
from tests.pods.factories import catalogue, deploy_request, fund, stopped_pod
from tests.serverless.factories import an_endpoint

# On the hour: billed seconds are shares of the clock hour, exact from its start.
T0 = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=1)


@pytest.fixture
def parts(db, team):
    parts = catalogue()
    parts["a40"].serverless_price = Decimal("1.185")
    parts["a40"].save()
    parts["rtx"].serverless_price = Decimal("1.035")
    parts["rtx"].save()
    fund(team, "500")
    return parts


@pytest.fixture
def clock():
    """The clock at T0 + seconds; `at(s)` moves it and returns that instant."""
    with time_machine.travel(T0, tick=False) as traveller:

        def at(seconds: float):
            traveller.move_to(T0 + timedelta(seconds=seconds))
            return timezone.now()

        yield at


def live(endpoint) -> list[Worker]:
    return list(endpoint.workers.exclude(state=Worker.State.STOPPED).order_by("pk"))


def submit(endpoint, n: int, **input) -> list[Job]:
    return [
        services.submit_job(actor=None, endpoint=endpoint, payload={"input": {"n": i, **input}})
        for i in range(n)
    ]


def come_up(worker: Worker) -> Worker:
    """The worker's first ping (what the SDK sends once started): it is idle, billable."""
    worker.refresh_from_db()
    services.heartbeat(worker=worker, job_ids=[], version="1.12.0")
    return worker


def work_off(worker: Worker) -> None:
    """Complete the worker's running jobs, then every job it can take, as a handler would."""
    held = Job.objects.filter(worker=worker, status=Job.Status.IN_PROGRESS)
    for job_id in held.values_list("public_id", flat=True):
        services.record_result(worker=worker, job_id=job_id, body={"output": "ok"})
    while jobs := services.claim_jobs(worker=worker, count=1):
        services.record_result(worker=worker, job_id=jobs[0]["id"], body={"output": "ok"})


def test_it_scales_from_zero_to_max_when_jobs_queue_and_back_to_min_after_idle(team, parts, clock):
    endpoint = an_endpoint(team, workers_min=1, workers_max=3, idle_timeout=5)
    endpoint.scaler_type, endpoint.scaler_value = ScalerType.QUEUE_DELAY, 4
    endpoint.save()
    submit(endpoint, 5)
    assert autoscale(now=clock(0))["started"] == 1  # the active one; the queue is young
    assert autoscale(now=clock(3))["started"] == 0
    assert autoscale(now=clock(5))["started"] == 2  # the oldest job waited 5 s > 4 s
    workers = live(endpoint)
    assert [w.is_flex for w in workers] == [False, True, True]
    assert autoscale(now=clock(6))["started"] == 0  # at workers_max
    for worker in workers:
        assert worker.pod.kind == Pod.Kind.WORKER and worker.pod.machine == parts["machine"]
        assert (worker.gpu_type, worker.price) == (parts["a40"], Decimal("1.185"))
        assert worker.state == Worker.State.INITIALIZING and worker.ready_at is None

    clock(10)
    for worker in workers:
        work_off(come_up(worker))
    assert Job.objects.filter(status=Job.Status.COMPLETED).count() == 5
    assert autoscale(now=clock(14)).get("stopped", 0) == 0  # idle 4 s < 5 s
    assert autoscale(now=clock(16))["stopped_idle"] == 2
    assert live(endpoint) == [workers[0]]  # back to min: the active worker stays
    for worker in workers[1:]:
        worker.refresh_from_db()
        assert (worker.state, worker.stopped_at) == (Worker.State.STOPPED, clock(16))
        assert worker.pod.status == Pod.Status.STOPPING
        assert worker.pod.next_status == Pod.Status.TERMINATED
    actions = AuditEvent.objects.filter(resource_type="worker").values_list("action", flat=True)
    assert sorted(actions) == ["worker.started"] * 3 + ["worker.stopped"] * 2
    assert autoscale(now=clock(60)).get("stopped", 0) == 0  # min stays
    # Each pod's deploy names the serverless price its worker is billed, not the A40's $0.79.
    deployed = AuditEvent.objects.filter(action="pod.deployed").values_list("details", flat=True)
    assert [d["price_per_hour"] for d in deployed] == ["1.1850000000"] * 3


def test_it_starts_the_first_worker_at_once_and_scales_by_request_count(team, parts, clock):
    endpoint = an_endpoint(team, workers_max=3, scaler_type=ScalerType.REQUEST_COUNT)
    endpoint.scaler_value = 2
    endpoint.save()
    assert autoscale(now=clock(0)) == {}  # nothing queued, min 0: no worker
    submit(endpoint, 3)
    assert autoscale(now=clock(0))["started"] == 2  # ceil(3 / 2)
    submit(endpoint, 4)
    assert autoscale(now=clock(1))["started"] == 1  # ceil(7 / 2) = 4, capped at max 3
    clock(3)
    for worker in live(endpoint):
        work_off(come_up(worker))
    assert endpoint.jobs.filter(status=Job.Status.COMPLETED).count() == 7
    assert autoscale(now=clock(8))["stopped_idle"] == 3  # idle 5 s: back to min 0
    assert live(endpoint) == []

    quick = an_endpoint(team, name="quick", workers_max=2, scaler_value=30)
    submit(quick, 1)
    # No worker at all: the queue delay is not waited for, nothing else could take the job.
    assert autoscale(now=clock(9))["started"] == 1
    submit(quick, 1)
    clock(10)
    assert autoscale_task() == 0  # one is coming: wait 30 s (the beat's task, real clock)
    out = StringIO()
    call_command("autoscale", stdout=out)
    assert out.getvalue() == "idle\n"


def test_it_places_on_the_next_gpu_in_priority_then_throttles_and_retries(team, parts, clock):
    endpoint = an_endpoint(
        team, workers_min=1, gpu_type_ids=["NVIDIA A40", "NVIDIA GeForce RTX 4090"]
    )
    full = stopped_pod(team, parts["machine"], gpu_count=4, status=Pod.Status.RUNNING)
    autoscale(now=clock(0))
    (worker,) = live(endpoint)
    assert (worker.gpu_type, worker.pod.machine) == (parts["rtx"], parts["rtx_machine"])
    assert worker.price == Decimal("1.035")

    only_a40 = an_endpoint(team, name="a40 only", workers_min=2, gpu_count=1)
    assert autoscale(now=clock(1))["throttled"] == 2
    assert [w.state for w in live(only_a40)] == [Worker.State.THROTTLED] * 2
    assert all(w.pod is None for w in live(only_a40))
    assert services.endpoint_health(only_a40)["workers"]["throttled"] == 2
    assert autoscale(now=clock(2))["still_throttled"] == 2  # audited once, tried every pass
    assert AuditEvent.objects.filter(action="worker.throttled").count() == 2

    full.status = Pod.Status.EXITED
    full.save()
    assert autoscale(now=clock(3))["placed"] == 2
    placed = live(only_a40)
    assert [w.state for w in placed] == [Worker.State.INITIALIZING] * 2
    assert {w.pod.machine for w in placed} == {parts["machine"]}


def test_it_starts_no_worker_for_a_team_without_funds(team, parts, clock):
    endpoint = an_endpoint(team, workers_min=1)
    assert metering.team_can_run(team)
    spent = -get_account(team).balance
    adjust_balance(team=team, amount=spent, reason="spent", actor=None, key="spent")
    assert not metering.team_can_run(team)
    assert autoscale(now=clock(0)) == {"refused": 1}
    assert not endpoint.workers.exists()


def test_it_replaces_stale_workers_one_at_a_time_once_they_are_idle(team, alice, parts, clock):
    endpoint = an_endpoint(team, workers_min=2, workers_max=2)
    autoscale(now=clock(0))
    first, second = [come_up(w) for w in live(endpoint)]
    submit(endpoint, 1)
    services.claim_jobs(worker=first, count=1)  # first runs a job, second is idle
    services.update_endpoint(actor=alice, endpoint=endpoint, execution_timeout=300)

    counts = autoscale(now=clock(1))
    assert (counts["stopped_stale"], counts["started"]) == (1, 1)
    third = live(endpoint)[-1]
    assert {w.pk for w in live(endpoint)} == {first.pk, third.pk}
    assert third.version == 2 and not third.is_flex
    assert autoscale(now=clock(2)) == {}  # the running stale worker finishes its job

    work_off(first)
    assert autoscale(now=clock(3)) == {}  # its replacement is still coming up: wait
    come_up(third)
    counts = autoscale(now=clock(4))
    assert (counts["stopped_stale"], counts["started"]) == (1, 1)
    assert [w.version for w in live(endpoint)] == [2, 2]
    first.refresh_from_db()
    assert first.stop_reason == "Replaced: the endpoint changed (version 2)."


def test_it_replaces_silent_and_unhealthy_workers_and_requeues_their_job_once(team, parts, clock):
    endpoint = an_endpoint(team, workers_min=1)
    autoscale(now=clock(0))
    (worker,) = live(endpoint)
    come_up(worker)
    (job,) = submit(endpoint, 1)
    services.claim_jobs(worker=worker, count=1)
    clock(30)
    assert autoscale(now=clock(30)) == {}  # 30 s of silence is fine

    counts = autoscale(now=clock(61))  # no ping for 61 s > 60 s
    assert counts == {"stopped": 1, "stopped_broken": 1, "requeued": 1, "failed": 0, "started": 1}
    worker.refresh_from_db()
    assert worker.stop_reason == "No heartbeat or job request for 61 s."
    job.refresh_from_db()
    assert (job.status, job.retries, job.requeues, job.worker) == (Job.Status.IN_QUEUE, 1, 1, None)
    assert services.endpoint_health(endpoint)["jobs"]["retried"] == 1

    (second,) = live(endpoint)
    come_up(second)
    services.claim_jobs(worker=second, count=1)
    services.heartbeat(worker=second, job_ids=[], version="1.12.0", unhealthy="CUDA missing")
    counts = autoscale(now=clock(62))
    assert (counts["stopped_broken"], counts["failed"], counts["started"]) == (1, 1, 1)
    job.refresh_from_db()
    assert (job.status, job.error) == (Job.Status.FAILED, launch.DEATH_ERROR)
    second.refresh_from_db()
    assert second.stop_reason == "It reported itself unhealthy: CUDA missing"


def test_a_job_a_user_retried_still_survives_its_first_worker_death(team, parts, clock):
    """User retries (/retry) and dead-worker re-queues are counted apart: only the second
    death fails the job, however often it was retried; /health counts it retried once."""
    endpoint = an_endpoint(team, workers_min=1)
    autoscale(now=clock(0))
    (worker,) = live(endpoint)
    come_up(worker)
    (job,) = submit(endpoint, 1)
    for _ in range(2):  # the handler fails it, the user retries it: twice
        services.claim_jobs(worker=worker, count=1)
        services.record_result(worker=worker, job_id=job.public_id, body={"error": "boom"})
        services.retry_job(actor=None, job=job)
    services.claim_jobs(worker=worker, count=1)
    job.refresh_from_db()
    assert (job.status, job.retries, job.requeues) == (Job.Status.IN_PROGRESS, 2, 0)

    counts = autoscale(now=clock(61))  # its worker went silent: the first death
    assert (counts["requeued"], counts["failed"]) == (1, 0)
    job.refresh_from_db()
    assert (job.status, job.retries, job.requeues) == (Job.Status.IN_QUEUE, 3, 1)
    assert services.endpoint_health(endpoint)["jobs"]["retried"] == 1

    (second,) = live(endpoint)
    come_up(second)
    services.claim_jobs(worker=second, count=1)
    Pod.objects.filter(pk=second.pod_id).update(status=Pod.Status.FAILED)
    counts = autoscale(now=clock(62))  # the second death
    assert (counts["requeued"], counts["failed"]) == (0, 1)
    job.refresh_from_db()
    assert (job.status, job.error, job.requeues) == (Job.Status.FAILED, launch.DEATH_ERROR, 1)


def test_it_replaces_a_worker_whose_pod_died_or_that_never_came_up(team, parts, clock):
    endpoint = an_endpoint(team, workers_min=1)
    autoscale(now=clock(0))
    (worker,) = live(endpoint)
    assert autoscale(now=clock(900)) == {}  # still within the start timeout
    counts = autoscale(now=clock(901))
    assert (counts["stopped_broken"], counts["started"]) == (1, 1)
    worker.refresh_from_db()
    assert worker.stop_reason == "It did not come up within 900 s."

    (worker,) = live(endpoint)
    Pod.objects.filter(pk=worker.pod_id).update(status=Pod.Status.FAILED)
    counts = autoscale(now=clock(902))
    assert (counts["stopped_broken"], counts["started"]) == (1, 1)
    worker.refresh_from_db()
    assert worker.stop_reason == f"Its pod {worker.pod.public_id} is failed."


def test_a_job_past_its_timeout_is_timed_out_and_a_worker_that_keeps_it_is_stopped(
    team, parts, clock
):
    endpoint = an_endpoint(team, workers_min=2, workers_max=2, execution_timeout=20)
    autoscale(now=clock(0))
    stubborn, obedient = [come_up(w) for w in live(endpoint)]
    kept, dropped = submit(endpoint, 2)
    services.claim_jobs(worker=stubborn, count=1)
    services.claim_jobs(worker=obedient, count=1)

    assert services.sweep_jobs(now=clock(21))["timed_out"] == 2
    kept.refresh_from_db()
    assert (kept.status, kept.stop_pending) == (Job.Status.TIMED_OUT, True)
    # The next pings: one worker still runs its job, the other let go of it.
    clock(25)
    services.heartbeat(worker=stubborn, job_ids=[kept.public_id], version="1.12.0")
    services.heartbeat(worker=obedient, job_ids=[], version="1.12.0")
    assert autoscale(now=clock(30)) == {}  # within the 10 s grace
    counts = autoscale(now=clock(32))
    assert (counts["stopped_overrun"], counts["started"]) == (1, 1)
    stubborn.refresh_from_db()
    assert stubborn.state == Worker.State.STOPPED
    assert stubborn.billed_until == kept.started_at + timedelta(seconds=20)
    assert stubborn.pod.status == Pod.Status.STOPPING
    # Settled at the stop, and billed only up to the timeout: 20 s at $1.185/h.
    rows = LedgerEntry.objects.filter(kind="usage_serverless", source_id=stubborn.public_id)
    assert rows.aggregate(total=Sum("amount"))["total"] == Decimal("-0.0065833333")
    obedient.refresh_from_db()
    assert obedient.state != Worker.State.STOPPED and obedient.billed_until is None


@pytest.mark.django_db(transaction=True)
def test_two_passes_never_work_on_one_endpoint_at_once(team):
    """A second pass skips an endpoint another pass holds (SKIP LOCKED), so no double start.
    No catalogue: the worker throttles, so no pod boot is queued by the committed pass."""
    endpoint = an_endpoint(team, workers_min=1)
    other = connections.create_connection("default")
    try:
        other.set_autocommit(False)
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM serverless_endpoint WHERE id = %s FOR UPDATE", [endpoint.pk]
            )
        assert scale_endpoint(endpoint.pk, timezone.now()) == {}
        assert not endpoint.workers.exists()
    finally:
        other.rollback()
        other.close()
    assert scale_endpoint(endpoint.pk, timezone.now()) == {"throttled": 1}


def test_deleting_an_endpoint_stops_its_workers_and_stray_worker_pods_are_terminated(
    team, alice, parts, clock
):
    endpoint = an_endpoint(team, workers_min=2)
    autoscale(now=clock(0))
    pods = [w.pod for w in live(endpoint)]
    services.delete_endpoint(actor=alice, endpoint=endpoint)
    for pod in pods:
        pod.refresh_from_db()
        assert (pod.status, pod.next_status) == (Pod.Status.STOPPING, Pod.Status.TERMINATED)

    request = deploy_request(parts["a40"], kind=Pod.Kind.WORKER)
    stray = pod_services.deploy_pod(actor=None, team=team, request=request)
    assert autoscale(now=clock(1)) == {"orphan_pods": 1}
    stray.refresh_from_db()
    assert stray.next_status == Pod.Status.TERMINATED
    assert autoscale(now=clock(2)) == {}


def test_a_worker_registered_by_hand_is_never_retired_or_replaced(team, alice, parts, clock):
    endpoint = an_endpoint(team, workers_max=1)
    worker, _ = services.register_worker(actor=alice, endpoint=endpoint)
    come_up(worker)
    services.update_endpoint(actor=alice, endpoint=endpoint, idle_timeout=1)
    assert autoscale(now=clock(30)) == {}  # idle 30 s and stale: its owner runs it
    assert autoscale(now=clock(61))["stopped_broken"] == 1  # silent: stopped all the same


def test_an_idle_pass_costs_five_queries_however_many_endpoints(team, parts, clock):
    """Orphaned jobs and pods, the endpoints, their workers and their queues, read in bulk:
    an endpoint with nothing to do is not locked or read again."""
    costs = []
    for n in (1, 3):
        for i in range(n):
            an_endpoint(team, name=f"e{n}-{i}", workers_min=1)
        autoscale(now=clock(0))
        for worker in Worker.objects.exclude(state=Worker.State.STOPPED):
            come_up(worker)
        with CaptureQueriesContext(connection) as queries:
            assert autoscale(now=clock(1)) == {}
        costs.append(len(queries))
        Endpoint.objects.all().delete()
    assert costs == [5, 5]
