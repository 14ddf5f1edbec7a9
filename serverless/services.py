"""Every write of the serverless app: endpoints (console and API), jobs (the /v2 client
routes) and what workers report (the worker protocol). Worker-driven transitions (taken,
completed, streamed) are recorded on the Job row itself, with timings; what people do
(endpoints, submitting, cancelling, retrying, purging, registering workers) is audited."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, DateTimeField, ExpressionWrapper, F, Q, Value
from django.utils import timezone

from console import safejson
from serverless import metering, wakeup, webhooks
from serverless.models import Endpoint, Job, JobChunk, Worker, hash_secret
from teams import audit
from teams.models import Team, User

ENDPOINT_FIELDS = (
    "name",
    "template",
    "gpu_type_ids",
    "cpu_instance",
    "gpu_count",
    "workers_min",
    "workers_max",
    "idle_timeout",
    "execution_timeout",
    "scaler_type",
    "scaler_value",
    "network_volume",
    "env",
)
RETENTION = {False: timedelta(minutes=30), True: timedelta(minutes=1)}  # by Job.is_sync
MAX_ERROR_CHARS = 100_000


class JobError(Exception):
    """A refused job request; `status` is the HTTP status the job API answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def has_nul(value) -> bool:
    """PostgreSQL stores no NUL character in text or jsonb (it is an error, not a string).
    Iterative: hostile JSON may nest as deep as the parser allows."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str) and "\x00" in item:
            return True
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _person(actor) -> User | None:
    return actor if isinstance(actor, User) else None


def _endpoint_audit(actor, endpoint: Endpoint, action: str, **details) -> None:
    audit.record(
        actor=actor,
        team=endpoint.team,
        action=f"endpoint.{action}",
        resource_type="endpoint",
        resource_id=endpoint.public_id,
        details={"name": endpoint.name, **details},
    )


# Endpoints -----------------------------------------------------------------------------------


@transaction.atomic
def create_endpoint(*, actor, team: Team, **values) -> Endpoint:
    endpoint = Endpoint.objects.create(team=team, created_by=_person(actor), **values)
    _endpoint_audit(actor, endpoint, "created")
    return endpoint


@transaction.atomic
def update_endpoint(*, actor, endpoint: Endpoint, **values) -> Endpoint:
    """Save the settings; the version grows so running workers become stale (they finish
    their job and are replaced)."""
    changed = [name for name in ENDPOINT_FIELDS if name in values]
    for name in changed:
        setattr(endpoint, name, values[name])
    endpoint.version = F("version") + 1
    endpoint.save()
    endpoint.refresh_from_db()
    _endpoint_audit(actor, endpoint, "updated", version=endpoint.version)
    return endpoint


@transaction.atomic
def delete_endpoint(*, actor, endpoint: Endpoint) -> None:
    from serverless.launch import stop_worker  # launch builds on this module

    for worker in endpoint.workers.exclude(state=Worker.State.STOPPED):
        stop_worker(worker, "The endpoint was deleted.")  # its pod must not outlive it
    _endpoint_audit(actor, endpoint, "deleted")
    endpoint.delete()


# Jobs: the client side -----------------------------------------------------------------------


def _execution_timeout(endpoint: Endpoint, policy) -> int:
    """Seconds: the endpoint's, or the request's `policy.executionTimeout` (milliseconds)."""
    if not isinstance(policy, dict) or policy.get("executionTimeout") is None:
        return endpoint.execution_timeout
    value = policy["executionTimeout"]
    if not isinstance(value, int) or isinstance(value, bool) or not 5_000 <= value <= 604_800_000:
        raise JobError("policy.executionTimeout is milliseconds, from 5000 to 604800000.")
    return max(1, value // 1000)


def _job_values(endpoint: Endpoint, payload) -> dict:
    if not isinstance(payload, dict) or "input" not in payload:
        raise JobError('The body is a JSON object with an "input" key.')
    if has_nul(payload):
        raise JobError("The body contains a NUL character (\\u0000), which cannot be stored.")
    webhook = payload.get("webhook") or ""
    if not isinstance(webhook, str) or len(webhook) > 2000:
        raise JobError("webhook is a URL of at most 2000 characters.")
    return {
        "input": payload["input"],
        "webhook": webhook,
        "execution_timeout": _execution_timeout(endpoint, payload.get("policy")),
    }


@transaction.atomic
def submit_job(*, actor, endpoint: Endpoint, payload, sync: bool = False) -> Job:
    refused = metering.refusal(endpoint.team)
    if refused:  # low funds: no worker would run it (402, the job API's error shape)
        raise JobError(refused, status=402)
    job = Job.objects.create(
        endpoint=endpoint,
        is_sync=sync,
        created_by=_person(actor),
        **_job_values(endpoint, payload),
    )
    audit.record(
        actor=actor,
        team=endpoint.team,
        action="job.submitted",
        resource_type="job",
        resource_id=job.public_id,
        details={"endpoint": endpoint.public_id, "sync": sync},
    )
    channel = wakeup.jobs_channel(endpoint.pk)
    transaction.on_commit(lambda: wakeup.publish(channel))
    return job


def _locked_job(job: Job) -> Job:
    return Job.objects.select_for_update().select_related("endpoint__team").get(pk=job.pk)


def _finish(job: Job, status: str, now) -> None:
    job.status = status
    job.completed_at = now
    job.expires_at = now + RETENTION[job.is_sync]
    channel = wakeup.done_channel(job.public_id)
    transaction.on_commit(lambda: wakeup.publish(channel))
    webhooks.enqueue(job)  # its final status goes to job.webhook, if it names one


def _signal_stop(job: Job) -> None:
    """Tell the job's worker to stop it (its job-stop channel fetches stop_pending jobs)."""
    if job.worker_id is None:
        return
    job.stop_pending = True
    _wake_stop(job.worker_id)


def _wake_stop(worker_id: int) -> None:
    """Wake the worker's held job-stop request once the stop is committed."""
    channel = wakeup.stop_channel(worker_id)
    transaction.on_commit(lambda: wakeup.publish(channel))


def _job_audit(actor, job: Job, action: str, **details) -> None:
    audit.record(
        actor=actor,
        team=job.endpoint.team,
        action=f"job.{action}",
        resource_type="job",
        resource_id=job.public_id,
        details={"endpoint": job.endpoint.public_id, **details},
    )


@transaction.atomic
def cancel_job(*, actor, job: Job) -> Job:
    """A queued or running job becomes CANCELLED (its worker is told to stop it); a finished
    job stays as it is."""
    job = _locked_job(job)
    if job.is_final:
        return job
    was = job.status
    _finish(job, Job.Status.CANCELLED, timezone.now())
    _signal_stop(job)
    job.save()
    _job_audit(actor, job, "cancelled", was=was)
    return job


@transaction.atomic
def retry_job(*, actor, job: Job) -> Job:
    """A FAILED or TIMED_OUT job goes back to the queue with its input (RunPod's /retry)."""
    job = _locked_job(job)
    if job.status not in Job.RETRYABLE:
        raise JobError(f"Only FAILED or TIMED_OUT jobs can be retried; this one is {job.status}.")
    if refused := metering.refusal(job.endpoint.team):  # a retry is new work, as in submit_job
        raise JobError(refused, status=402)
    job.chunks.all().delete()
    job.status = Job.Status.IN_QUEUE
    job.retries += 1
    # New work: the old run's unfetched stop and its requeue allowance do not carry over.
    job.stop_pending, job.requeues = False, 0
    job.output, job.error, job.worker = None, "", None
    job.started_at = job.completed_at = job.expires_at = None
    job.created_at = timezone.now()
    job.save()
    _job_audit(actor, job, "retried", retries=job.retries)
    channel = wakeup.jobs_channel(job.endpoint_id)
    transaction.on_commit(lambda: wakeup.publish(channel))
    return job


@transaction.atomic
def purge_queue(*, actor, endpoint: Endpoint) -> int:
    """Delete the endpoint's IN_QUEUE jobs (running ones are left alone)."""
    # Locked, so no worker can take them between the select and the delete.
    queued = Job.objects.queued().filter(endpoint=endpoint).select_for_update(skip_locked=True)
    _, by_model = Job.objects.filter(pk__in=list(queued.values_list("pk", flat=True))).delete()
    count = by_model.get("serverless.Job", 0)
    _endpoint_audit(actor, endpoint, "queue_purged", removed=count)
    return count


def endpoint_health(endpoint: Endpoint) -> dict:
    """RunPod's /health shape: job counts (of the jobs still kept) and worker states."""
    S = Job.Status
    jobs = Job.objects.filter(endpoint=endpoint).aggregate(
        completed=Count("pk", filter=Q(status=S.COMPLETED)),
        failed=Count("pk", filter=Q(status=S.FAILED)),
        inProgress=Count("pk", filter=Q(status=S.IN_PROGRESS)),
        inQueue=Count("pk", filter=Q(status=S.IN_QUEUE)),
        retried=Count("pk", filter=Q(retries__gt=0)),
    )
    states = dict(
        Worker.objects.filter(endpoint=endpoint)
        .exclude(state=Worker.State.STOPPED)
        .values_list("state")
        .annotate(n=Count("pk"))
    )
    shown = [s for s in Worker.State.values if s != Worker.State.STOPPED]
    return {"jobs": jobs, "workers": {state: states.get(state, 0) for state in shown}}


def job_status(job: Job) -> dict:
    """RunPod's /status shape (times in milliseconds)."""
    data = {"id": job.public_id, "status": job.status}
    if job.delay_ms is not None:
        data["delayTime"] = job.delay_ms
    if job.execution_ms is not None:
        data["executionTime"] = job.execution_ms
    if job.worker_id:
        data["workerId"] = job.worker.public_id
    if job.output is not None or job.status == Job.Status.COMPLETED:
        data["output"] = job.output
    if job.status == Job.Status.FAILED:
        data["error"] = job.error
    return data


@transaction.atomic
def drain_stream(job: Job) -> list:
    """The chunks not returned before, each returned once even to concurrent readers."""
    chunks = list(
        JobChunk.objects.select_for_update(skip_locked=True)
        .filter(job=job, delivered=False)
        .order_by("id")
    )
    JobChunk.objects.filter(pk__in=[c.pk for c in chunks]).update(delivered=True)
    return [chunk.output for chunk in chunks]


# Workers: registration and the protocol --------------------------------------------------


@transaction.atomic
def register_worker(*, actor, endpoint: Endpoint) -> tuple[Worker, str]:
    """A new worker and its secret (shown once: only its hash is kept)."""
    secret = Worker.generate_secret()
    worker = Worker.objects.create(
        endpoint=endpoint, secret_hash=hash_secret(secret), version=endpoint.version
    )
    _endpoint_audit(actor, endpoint, "worker_registered", worker=worker.public_id)
    return worker, secret


def worker_env(*, worker: Worker, secret: str, base_url: str, gpu: str = "") -> dict[str, str]:
    """The RUNPOD_* variables a worker gets, with RunPod's URL templates: `$ID` and
    `$RUNPOD_POD_ID` stay literal (the SDK fills them in) and every URL already has a `?`,
    because the SDK appends its parameters with `&`."""
    root = f"{base_url.rstrip('/')}/v2/{worker.endpoint.public_id}"
    query = f"?gpu={gpu or 'cpu'}"
    return {
        "RUNPOD_WEBHOOK_GET_JOB": f"{root}/job-take/$ID{query}",
        "RUNPOD_WEBHOOK_POST_OUTPUT": f"{root}/job-done/$RUNPOD_POD_ID/$ID{query}",
        "RUNPOD_WEBHOOK_POST_STREAM": f"{root}/job-stream/$RUNPOD_POD_ID/$ID{query}",
        "RUNPOD_WEBHOOK_PING": f"{root}/ping/$RUNPOD_POD_ID{query}",
        "RUNPOD_POD_ID": worker.public_id,
        "RUNPOD_AI_API_KEY": secret,
        "RUNPOD_ENDPOINT_ID": worker.endpoint.public_id,
        "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",
    }


def only_row(queryset):
    """The one row a lookup by unique columns finds, or None: LIMIT 1 without `first()`'s
    ORDER BY (building a query costs more CPU here than PostgreSQL spends running it)."""
    return next(iter(queryset[:1]), None)


def authenticate_worker(*, endpoint_id: str, worker_id: str, secret: str) -> Worker | None:
    """The worker these ids and secret name, or None (a wrong secret, another endpoint's
    worker, a stopped one): the caller answers 401 without saying which. Its endpoint is not
    fetched: the protocol needs only its id (a join of three tables cost ~0.4 ms of CPU)."""
    if not secret or "\x00" in endpoint_id + worker_id:
        return None
    workers = Worker.objects.filter(
        public_id=worker_id, endpoint__public_id=endpoint_id, secret_hash=hash_secret(secret)
    ).exclude(state=Worker.State.STOPPED)
    return only_row(workers)


def _seen(worker: Worker, now, **changes) -> None:
    """A sign of life: the first one ends initializing (billing starts at ready_at)."""
    changes["last_seen_at"] = now
    if worker.ready_at is None:
        changes["ready_at"] = now
    if worker.state in (Worker.State.INITIALIZING, Worker.State.UNHEALTHY):
        changes.setdefault("state", Worker.State.IDLE)
    if changes.get("state") == Worker.State.IDLE and worker.state != Worker.State.IDLE:
        changes["idle_since"] = now  # the idle timeout counts from here
    # Never revives a worker the autoscaler stopped while this request ran.
    Worker.objects.filter(pk=worker.pk).exclude(state=Worker.State.STOPPED).update(**changes)
    for name, value in changes.items():
        setattr(worker, name, value)


@transaction.atomic
def claim_jobs(*, worker: Worker, count: int) -> list[dict]:
    """Up to `count` of the endpoint's oldest queued jobs, now IN_PROGRESS on this worker.
    SKIP LOCKED: concurrent claims pass over each other's rows, so no job is taken twice."""
    now = timezone.now()
    claimed = list(
        Job.objects.select_for_update(skip_locked=True)
        .filter(endpoint_id=worker.endpoint_id, status=Job.Status.IN_QUEUE)
        .order_by("created_at", "id")
        .values_list("pk", "public_id", "input")[:count]
    )
    if claimed:
        Job.objects.filter(pk__in=[pk for pk, _, _ in claimed]).update(
            status=Job.Status.IN_PROGRESS, worker=worker, started_at=now
        )
        _seen(worker, now, state=Worker.State.RUNNING)
    else:
        _after_job(worker, now)  # a cancelled or timed-out job leaves its worker idle
    return [{"id": public_id, "input": value} for _, public_id, value in claimed]


def _error_text(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return _fitted_error(text) or text[: MAX_ERROR_CHARS - 1] + "…"


def _shortened(field: str, excess: int, tail: bool) -> str:
    """`field` about `excess` dumped characters shorter, marked "…". Escapes make characters
    dump longer, so the cut is in proportion; a pass of _fitted_error that is still over cuts
    again."""
    dumped = len(json.dumps(field, ensure_ascii=False)) - 2
    keep = max(len(field) * (dumped - excess - 1) // max(dumped, 1), 0)
    return "…" + field[len(field) - keep :] if tail else field[:keep] + "…"


def _fitted_error(text: str) -> str | None:
    """An over-long SDK error ({"error_type", "error_message", "error_traceback"} as JSON)
    cut to fit and still JSON, so the console still reads it: its longest fields shortened,
    a traceback to its tail (the innermost frames, the raise), anything else to its head."""
    try:
        parsed = safejson.loads(text)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or len(parsed) > 10:
        return None
    for _ in range(6):
        fitted = json.dumps(parsed, ensure_ascii=False)
        excess = len(fitted) - MAX_ERROR_CHARS
        if excess <= 0:
            return fitted
        texts = [key for key, field in parsed.items() if isinstance(field, str)]
        if not texts:
            return None
        key = max(texts, key=lambda name: len(parsed[name]))
        parsed[key] = _shortened(parsed[key], excess, tail=key == "error_traceback")
    return None


@transaction.atomic
def record_result(*, worker: Worker, job_id: str, body) -> Job | None:
    """A job-done POST: `error` means FAILED, else COMPLETED with `output`; a
    `"status": "IN_PROGRESS"` body is a progress update. Repeats (the SDK retries) and late
    progress updates for a finished job change nothing."""
    if not isinstance(body, dict) or "\x00" in job_id:
        return None
    if has_nul(body):
        body = {"error": "The worker's result contained a NUL character, which cannot be stored."}
    # Without its input (up to 10 MB, never changed by a result).
    running = Job.objects.select_for_update().defer("input")
    job = only_row(running.filter(public_id=job_id, worker=worker, status=Job.Status.IN_PROGRESS))
    if job is None:
        return None
    now = timezone.now()
    if body.get("status") == Job.Status.IN_PROGRESS:
        job.output = body.get("output")
        job.save(update_fields=["output"])
        _seen(worker, now)
        return job
    if "error" in body:
        job.error = _error_text(body["error"])
        job.output = body.get("output")
        _finish(job, Job.Status.FAILED, now)
    else:
        job.output = body.get("output")
        _finish(job, Job.Status.COMPLETED, now)
    # What a result changes, never the input again (up to 10 MB, written once at submission).
    job.save(update_fields=["status", "output", "error", "completed_at", "expires_at"])
    _after_job(worker, now)
    return job


def _after_job(worker: Worker, now) -> None:
    busy = Job.objects.filter(worker=worker, status=Job.Status.IN_PROGRESS).exists()
    _seen(worker, now, state=Worker.State.RUNNING if busy else Worker.State.IDLE)


@transaction.atomic
def add_stream_chunk(*, worker: Worker, job_id: str, body) -> bool:
    """A job-stream POST `{"output": chunk}` for a running job of this worker."""
    if not isinstance(body, dict) or "\x00" in job_id or has_nul(body):
        return False
    running = Job.objects.filter(public_id=job_id, worker=worker, status=Job.Status.IN_PROGRESS)
    job_pk = only_row(running.values_list("pk", flat=True))
    if job_pk is None:
        return False
    JobChunk.objects.create(job_id=job_pk, output=body.get("output"))
    return True


def heartbeat(*, worker: Worker, job_ids: list[str], version: str, unhealthy: str = "") -> None:
    """A ping: the worker is alive and runs `job_ids`; `status=unhealthy` reports a failed
    start-up check (the worker exits next)."""
    now = timezone.now()
    job_ids = [job_id.replace("\x00", "")[:64] for job_id in job_ids[:100]]
    changes = {"in_flight": job_ids, "sdk_version": version.replace("\x00", "")[:32]}
    if unhealthy:
        reason = unhealthy.replace("\x00", "")[:300]
        changes.update(state=Worker.State.UNHEALTHY, unhealthy_reason=reason)
    with transaction.atomic():
        _seen(worker, now, **changes)
        if job_ids:
            _resignal_stopped(worker, job_ids)


def _resignal_stopped(worker: Worker, job_ids: list[str]) -> None:
    """A worker still running a job the console stopped missed its stop signal (the SDK
    drops a stop that arrives before the job's task exists): signal it again."""
    missed = Job.objects.filter(
        worker=worker, public_id__in=job_ids, status__in=Job.STOPPED, stop_pending=False
    ).update(stop_pending=True)
    if missed:
        _wake_stop(worker.pk)


@transaction.atomic
def take_stop_signals(*, worker: Worker) -> list[str]:
    """The ids of this worker's jobs it must stop (cancelled or timed out), each once."""
    rows = list(
        Job.objects.select_for_update(skip_locked=True)
        .filter(worker=worker, stop_pending=True)
        .values_list("pk", "public_id")
    )
    Job.objects.filter(pk__in=[pk for pk, _ in rows]).update(stop_pending=False)
    return [public_id for _, public_id in rows]


# The periodic sweep ------------------------------------------------------------------------


def sweep_jobs(now: datetime | None = None) -> dict[str, int]:
    """Running jobs past their execution timeout become TIMED_OUT (their worker is told to
    stop them); results past their retention are deleted."""
    now = now or timezone.now()
    return {"timed_out": _time_out_jobs(now), "deleted": _delete_expired(now)}


def _time_out_jobs(now) -> int:
    deadline = ExpressionWrapper(
        F("started_at") + F("execution_timeout") * Value(timedelta(seconds=1)),
        output_field=DateTimeField(),
    )
    overdue = Job.objects.filter(status=Job.Status.IN_PROGRESS).alias(deadline=deadline)
    count = 0
    for pk in overdue.filter(deadline__lt=now).values_list("pk", flat=True)[:1000]:
        with transaction.atomic():
            job = Job.objects.select_for_update().get(pk=pk)
            if job.status != Job.Status.IN_PROGRESS:
                continue
            job.error = (
                f"The job ran longer than its execution timeout ({job.execution_timeout} s)."
            )
            _finish(job, Job.Status.TIMED_OUT, now)
            _signal_stop(job)
            job.save()
            count += 1
    return count


def _delete_expired(now) -> int:
    expired = Job.objects.filter(expires_at__lt=now).values_list("pk", flat=True)[:10_000]
    deleted, by_model = Job.objects.filter(pk__in=list(expired)).delete()
    return by_model.get("serverless.Job", 0)
