"""The autoscaler: one pass over the endpoints that have, or may need, workers.

Their workers and queues are read in bulk; an endpoint with something to do (has_work) is
then scaled in one transaction with its row locked (SKIP LOCKED, so two passes never work on
one endpoint at once and never double-start), reading them again under the lock, in order:

1. stop workers that cannot serve: their pod died or exited (its running jobs are re-queued
   once), they reported unhealthy, missed heartbeats (`SERVERLESS_WORKER_UNHEALTHY_AFTER`),
   never came up (`SERVERLESS_WORKER_START_TIMEOUT`), or still hold a job past its execution
   timeout after `SERVERLESS_TIMEOUT_GRACE` (billed only up to the timeout);
2. replace stale workers (started at an older endpoint version) one at a time, once idle;
3. retire flex workers idle for the endpoint's idle timeout (active ones never retire);
4. place THROTTLED workers again, then start active workers up to `workers_min` and flex
   workers up to `workers_max` as the scaler asks (queue delay or request count).

Time is a parameter (`now`), so tests drive it without sleeping."""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, Min, OuterRef, Q
from django.utils import timezone

from pods.models import Pod
from pods.services import terminate_pod
from serverless import launch
from serverless.models import Endpoint, Job, ScalerType, Worker

log = logging.getLogger(__name__)

DEAD_POD = (Pod.Status.EXITED, Pod.Status.FAILED, Pod.Status.PREEMPTED, Pod.Status.TERMINATED)
# Workers that will take jobs soon without a new start: they count against the queue.
COMING = (Worker.State.IDLE, Worker.State.INITIALIZING, Worker.State.THROTTLED)


def autoscale(now: datetime | None = None) -> Counter:
    """One pass; the counts say what it did (started, stopped, requeued, ...). Every
    endpoint's workers and queue are read in bulk first, and only an endpoint with something
    to do is locked and scaled (which reads them again under the lock)."""
    now = now or timezone.now()
    counts = Counter(_requeue_orphans(now)) + _terminate_orphan_pods()
    endpoints = _endpoints_to_scale()
    workers = _live_workers([e.pk for e in endpoints])
    queues = _queues([e.pk for e in endpoints])
    for endpoint in endpoints:
        mine, queue = workers.get(endpoint.pk, []), queues.get(endpoint.pk, IDLE_QUEUE)
        if has_work(endpoint, mine, queue, now):
            counts.update(scale_endpoint(endpoint.pk, now))
    return counts


def _endpoints_to_scale() -> list[Endpoint]:
    live = Worker.objects.filter(endpoint=OuterRef("pk")).exclude(state=Worker.State.STOPPED)
    queued = Job.objects.queued().filter(endpoint=OuterRef("pk"))
    return list(
        Endpoint.objects.filter(Q(workers_min__gt=0) | Exists(live) | Exists(queued)).order_by("pk")
    )


def _live_workers(endpoint_ids: list[int]) -> dict[int, list[Worker]]:
    workers = Worker.objects.filter(endpoint_id__in=endpoint_ids).exclude(
        state=Worker.State.STOPPED
    )
    grouped: dict[int, list[Worker]] = {}
    for worker in workers.select_related("pod").order_by("created_at", "pk"):
        grouped.setdefault(worker.endpoint_id, []).append(worker)
    return grouped


def _requeue_orphans(now: datetime) -> Counter:
    """Running jobs whose worker is already stopped (it claimed them as it was being
    stopped): back to the queue once, like any dead worker's."""
    counts = Counter()
    orphaned = Worker.objects.filter(
        state=Worker.State.STOPPED, jobs__status=Job.Status.IN_PROGRESS
    )
    for worker in orphaned.distinct()[:100]:
        with transaction.atomic():
            counts.update(launch.requeue_jobs(worker, now))
    return counts


def _terminate_orphan_pods() -> Counter:
    """Worker pods whose worker row is gone (a worker is created with its pod, in one
    transaction) are terminated: nothing would ever stop them otherwise."""
    orphans = Pod.objects.filter(kind=Pod.Kind.WORKER, serverless_worker=None).live()
    count = 0
    for pod in orphans.exclude(status=Pod.Status.STOPPING)[:100]:
        terminate_pod(actor=None, pod=pod)
        count += 1
    return Counter(orphan_pods=count) if count else Counter()


@dataclass
class Queue:
    """An endpoint's queue: queued and running jobs, the oldest queued one's submission, and
    timed-out jobs still assigned to a live worker (which may be ignoring the stop)."""

    queued: int
    running: int
    oldest: datetime | None
    timed_out: int = 0


IDLE_QUEUE = Queue(queued=0, running=0, oldest=None)
S = Job.Status
QUEUE_STATS = {
    "queued": Count("pk", filter=Q(status=S.IN_QUEUE)),
    "running": Count("pk", filter=Q(status=S.IN_PROGRESS)),
    "oldest": Min("created_at", filter=Q(status=S.IN_QUEUE)),
    "timed_out": Count(
        "pk", filter=Q(status=S.TIMED_OUT, worker__isnull=False) & ~Q(worker__state="stopped")
    ),
}
OPEN = (S.IN_QUEUE, S.IN_PROGRESS, S.TIMED_OUT)


def _queue(endpoint: Endpoint) -> Queue:
    return Queue(**Job.objects.filter(endpoint=endpoint, status__in=OPEN).aggregate(**QUEUE_STATS))


def _queues(endpoint_ids: list[int]) -> dict[int, Queue]:
    rows = (
        Job.objects.filter(endpoint_id__in=endpoint_ids, status__in=OPEN)
        .values("endpoint_id")
        .annotate(**QUEUE_STATS)
    )
    return {row.pop("endpoint_id"): Queue(**row) for row in rows}


def has_work(endpoint: Endpoint, workers: list[Worker], queue: Queue, now: datetime) -> bool:
    """Whether a pass would change anything for this endpoint (read without its lock; the
    pass under the lock decides again). The same rules as the steps below."""
    cutoff = now - timedelta(seconds=endpoint.idle_timeout)
    current = [w for w in workers if w.version == endpoint.version and _managed(w)]
    active = sum(1 for w in workers if not w.is_flex)
    current_active = sum(1 for w in current if not w.is_flex)
    return (
        any(w.state == Worker.State.THROTTLED or broken_reason(w, now) for w in workers)
        or bool(queue.timed_out and any(w.in_flight for w in workers))
        or any(w.version < endpoint.version and _managed(w) for w in workers)
        or active < endpoint.workers_min
        or current_active > endpoint.workers_min  # min lowered: the extra become flex
        or (not queue.queued and any(_retires(w, cutoff) for w in current))
        or min(endpoint.workers_max - len(workers), flex_wanted(endpoint, workers, queue, now)) > 0
    )


def _retires(worker: Worker, cutoff: datetime) -> bool:
    idle_since = worker.idle_since or worker.ready_at
    idle = worker.is_flex and worker.state == Worker.State.IDLE
    return idle and idle_since is not None and idle_since <= cutoff


def scale_endpoint(endpoint_id: int, now: datetime) -> Counter:
    counts = Counter()
    with transaction.atomic():
        endpoint = (
            Endpoint.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("team", "template", "cpu_instance", "network_volume")
            .filter(pk=endpoint_id)
            .first()
        )
        if endpoint is None:
            return counts  # another pass is scaling it right now
        workers = list(
            endpoint.workers.exclude(state=Worker.State.STOPPED)
            .select_related("pod")
            .order_by("created_at", "pk")
        )
        counts.update(_stop_broken(workers, now))
        counts.update(_replace_stale(endpoint, workers, now))
        queue = _queue(endpoint)
        counts.update(_retire_idle(endpoint, workers, queue, now))
        counts.update(_grow(endpoint, workers, queue, now))
    return counts


def _alive(workers: list[Worker]) -> list[Worker]:
    return [w for w in workers if w.state != Worker.State.STOPPED]


def _managed(worker: Worker) -> bool:
    """Started by the autoscaler (a pod, or waiting for one). A worker registered by hand
    (manage.py register_worker) runs where its owner started it: it is never retired or
    replaced, only stopped (its jobs re-queued) once it stops answering."""
    return worker.pod_id is not None or worker.state == Worker.State.THROTTLED


def _stop(worker: Worker, reason: str, now: datetime, *, kind: str, **options) -> Counter:
    jobs = launch.stop_worker(worker, reason, now=now, **options)
    worker.state = Worker.State.STOPPED  # the pass's list: later steps pass over it
    return Counter({"stopped": 1, f"stopped_{kind}": 1, **jobs})


# 1. Workers that cannot serve --------------------------------------------------------------


def broken_reason(worker: Worker, now: datetime) -> str:
    """Why the worker must be stopped and replaced, or "" when it is fine."""
    pod = worker.pod
    if pod is not None and pod.status in DEAD_POD:
        return f"Its pod {pod.public_id} is {pod.get_status_display().lower()}."
    if worker.state == Worker.State.UNHEALTHY:
        return f"It reported itself unhealthy: {worker.unhealthy_reason}"[:300]
    if worker.last_seen_at is not None:
        silent = (now - worker.last_seen_at).total_seconds()
        if silent > settings.SERVERLESS_WORKER_UNHEALTHY_AFTER:
            return f"No heartbeat or job request for {int(silent)} s."
    elif worker.state == Worker.State.INITIALIZING:
        waited = (now - worker.created_at).total_seconds()
        if waited > (timeout := settings.SERVERLESS_WORKER_START_TIMEOUT):
            return f"It did not come up within {timeout:g} s."
    return ""


def _overrun(worker: Worker, now: datetime) -> Job | None:
    """A job of this worker that timed out more than the grace ago and that a heartbeat since
    the timeout still lists: the worker ignored the stop signal."""
    if not worker.in_flight or worker.last_seen_at is None:
        return None
    grace = timedelta(seconds=settings.SERVERLESS_TIMEOUT_GRACE)
    return (
        Job.objects.filter(
            worker=worker,
            status=Job.Status.TIMED_OUT,
            public_id__in=worker.in_flight,
            completed_at__lte=now - grace,
            completed_at__lt=worker.last_seen_at,
        )
        .order_by("started_at")
        .first()
    )


def _stop_broken(workers: list[Worker], now: datetime) -> Counter:
    counts = Counter()
    for worker in workers:
        if worker.state == Worker.State.THROTTLED:
            continue  # no pod yet: _grow places it again
        if reason := broken_reason(worker, now):
            counts.update(_stop(worker, reason, now, kind="broken"))
        elif job := _overrun(worker, now):
            deadline = job.started_at + timedelta(seconds=job.execution_timeout)
            reason = f"It kept running job {job.public_id} past its execution timeout."
            counts.update(_stop(worker, reason, now, kind="overrun", billed_until=deadline))
    return counts


# 2. and 3. Stale and idle workers ----------------------------------------------------------


def _replace_stale(endpoint: Endpoint, workers: list[Worker], now: datetime) -> Counter:
    """Stale workers without a pod go at once; one idle stale worker is stopped per pass,
    and only while no current worker is still coming up: a rolling replacement (_grow
    starts its successor at the new version)."""
    counts = Counter()
    stale = [w for w in _alive(workers) if w.version < endpoint.version and _managed(w)]
    for worker in [w for w in stale if w.state == Worker.State.THROTTLED]:
        counts.update(_stop(worker, "Replaced: the endpoint changed.", now, kind="stale"))
    coming = (Worker.State.INITIALIZING, Worker.State.THROTTLED)
    starting = any(w.version == endpoint.version and w.state in coming for w in workers)
    idle = [w for w in stale if w.state in (Worker.State.IDLE, Worker.State.INITIALIZING)]
    if idle and not starting:
        reason = f"Replaced: the endpoint changed (version {endpoint.version})."
        counts.update(_stop(idle[0], reason, now, kind="stale"))
    return counts


def _retire_idle(endpoint: Endpoint, workers: list[Worker], queue: Queue, now: datetime) -> Counter:
    """Flex workers idle for the idle timeout stop while nothing waits in the queue; active
    workers beyond a lowered `workers_min` become flex and retire the same way."""
    counts = Counter()
    current = [w for w in _alive(workers) if w.version == endpoint.version and _managed(w)]
    active = [w for w in current if not w.is_flex]
    for worker in active[endpoint.workers_min :]:
        Worker.objects.filter(pk=worker.pk).update(is_flex=True)
        worker.is_flex = True
    if queue.queued:
        return counts
    cutoff = now - timedelta(seconds=endpoint.idle_timeout)
    for worker in current:
        if _retires(worker, cutoff):
            reason = f"Idle for {endpoint.idle_timeout} s."
            counts.update(_stop(worker, reason, now, kind="idle"))
    return counts


# 4. Growing --------------------------------------------------------------------------------


def flex_wanted(endpoint: Endpoint, live: list[Worker], queue: Queue, now: datetime) -> int:
    """How many flex workers to add for the queue (before the workers_max cap)."""
    if queue.queued == 0:
        return 0
    if endpoint.scaler_type == ScalerType.REQUEST_COUNT:
        wanted = math.ceil((queue.queued + queue.running) / max(1, endpoint.scaler_value))
        return wanted - len(live)
    spare = sum(1 for w in live if w.state in COMING)
    waited = (now - queue.oldest).total_seconds()
    # With no worker at all nothing can take the job, so there is nothing to wait for.
    if live and waited <= endpoint.scaler_value:
        return 0
    return queue.queued - spare


def _start(endpoint: Endpoint, workers: list[Worker], count: int, *, flex: bool) -> Counter:
    """Start `count` workers (appended to `workers`); a refusal (funds) ends the pass's starts."""
    counts = Counter()
    for _ in range(max(0, count)):
        try:
            worker = launch.start_worker(endpoint, flex=flex)
        except launch.LaunchError as error:
            log.debug("endpoint %s starts no worker: %s", endpoint.public_id, error)
            return counts + Counter(refused=1)
        workers.append(worker)
        counts["throttled" if worker.state == Worker.State.THROTTLED else "started"] += 1
    return counts


def _place_throttled(workers: list[Worker]) -> Counter:
    counts = Counter()
    for worker in [w for w in workers if w.state == Worker.State.THROTTLED]:
        try:
            launch.place_worker(worker)
        except launch.LaunchError:
            return counts + Counter(refused=1)
        counts["still_throttled" if worker.state == Worker.State.THROTTLED else "placed"] += 1
    return counts


def _grow(endpoint: Endpoint, workers: list[Worker], queue: Queue, now: datetime) -> Counter:
    counts = _place_throttled(workers)
    if counts["refused"]:
        return counts
    active = sum(1 for w in _alive(workers) if not w.is_flex)
    counts.update(_start(endpoint, workers, endpoint.workers_min - active, flex=False))
    live = _alive(workers)
    room = endpoint.workers_max - len(live)
    wanted = flex_wanted(endpoint, live, queue, now)
    counts.update(_start(endpoint, workers, min(room, wanted), flex=True))
    return counts
