"""Serverless endpoints, their jobs and their workers.

The queue is the Job table itself: workers claim IN_QUEUE rows with `SELECT ... FOR UPDATE SKIP
LOCKED` (serverless.queue), so two workers never take the same job. Redis pub/sub only wakes
held long-polls; every fact lives in PostgreSQL.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from billing.money import money_field
from pods.models import CpuInstanceType, GpuType, NetworkVolume, Pod, PodTemplate
from teams.models import Team, new_public_id

WORKER_SECRET_PREFIX = "rpw_"


def new_job_id() -> str:
    """RunPod's job id shape: a UUID4 with a `-u1` suffix."""
    return f"{uuid.uuid4()}-u1"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ScalerType(models.TextChoices):
    QUEUE_DELAY = "QUEUE_DELAY", "Queue delay (seconds)"
    REQUEST_COUNT = "REQUEST_COUNT", "Request count"


class EndpointQuerySet(models.QuerySet):
    def for_team(self, team: Team) -> EndpointQuerySet:
        return self.filter(team=team)


class Endpoint(models.Model):
    """A serverless endpoint: workers made from `template` run its handler on queued jobs.
    `gpu_type_ids` lists GPU type ids in priority order; empty means CPU (`cpu_instance`).
    `version` grows on every edit: workers started at an older version are stale."""

    public_id = models.CharField(max_length=14, unique=True, default=new_public_id)
    team = models.ForeignKey(Team, models.CASCADE, related_name="endpoints")
    name = models.CharField(max_length=100)
    # SET_NULL: pods' template and volume deletion know nothing of endpoints; an endpoint
    # whose template is gone shows it and starts no workers until a new one is chosen.
    template = models.ForeignKey(PodTemplate, models.SET_NULL, null=True, related_name="endpoints")
    gpu_type_ids = models.JSONField(default=list, blank=True)
    cpu_instance = models.ForeignKey(
        CpuInstanceType, models.PROTECT, null=True, blank=True, related_name="+"
    )
    gpu_count = models.PositiveSmallIntegerField(default=1)
    workers_min = models.PositiveSmallIntegerField(default=0)
    workers_max = models.PositiveSmallIntegerField(default=3)
    idle_timeout = models.PositiveIntegerField(default=5, help_text="Seconds")
    execution_timeout = models.PositiveIntegerField(default=600, help_text="Seconds")
    scaler_type = models.CharField(
        max_length=16, choices=ScalerType.choices, default=ScalerType.QUEUE_DELAY
    )
    scaler_value = models.PositiveIntegerField(default=4)
    network_volume = models.ForeignKey(
        NetworkVolume, models.SET_NULL, null=True, blank=True, related_name="endpoints"
    )
    env = models.JSONField(default=list, blank=True)  # [{"key": "A", "value": "1"}]
    version = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = EndpointQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"

    def get_absolute_url(self) -> str:
        return reverse("endpoint_detail", args=[self.team.slug, self.public_id])

    @property
    def is_gpu(self) -> bool:
        return bool(self.gpu_type_ids)


class JobQuerySet(models.QuerySet):
    def queued(self) -> JobQuerySet:
        return self.filter(status=Job.Status.IN_QUEUE)


class Job(models.Model):
    class Status(models.TextChoices):
        IN_QUEUE = "IN_QUEUE"
        IN_PROGRESS = "IN_PROGRESS"
        COMPLETED = "COMPLETED"
        FAILED = "FAILED"
        CANCELLED = "CANCELLED"
        TIMED_OUT = "TIMED_OUT"

    FINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.TIMED_OUT})
    RETRYABLE = frozenset({Status.FAILED, Status.TIMED_OUT})
    STOPPED = frozenset({Status.CANCELLED, Status.TIMED_OUT})  # the console stops the worker's run

    public_id = models.CharField(max_length=64, unique=True, default=new_job_id)
    endpoint = models.ForeignKey(Endpoint, models.CASCADE, related_name="jobs")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.IN_QUEUE)
    input = models.JSONField()
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    webhook = models.URLField(max_length=2000, blank=True)
    is_sync = models.BooleanField(default=False)  # /runsync: results kept 1 minute, not 30
    execution_timeout = models.PositiveIntegerField(help_text="Seconds")
    worker = models.ForeignKey(
        "Worker", models.SET_NULL, null=True, blank=True, related_name="jobs"
    )
    # Every time the job went back to the queue: a user's /retry or a dead worker's re-queue
    # (/health counts a job with any as retried).
    retries = models.PositiveIntegerField(default=0)
    # Of those, the re-queues after its worker died (serverless.launch.requeue_jobs): the second
    # death fails the job, however often a user retried it before.
    requeues = models.PositiveSmallIntegerField(default=0)
    # A stop signal (cancel, timeout) the worker's job-stop channel has not fetched yet.
    stop_pending = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # When the result is deleted (set on reaching a final state).
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # The last delivery of the final status to `webhook` (serverless.webhooks): attempts made,
    # what happened ("HTTP 200", "refused: ...", "timed out ..."), and when it was accepted.
    webhook_attempts = models.PositiveSmallIntegerField(default=0)
    webhook_result = models.CharField(max_length=300, blank=True)
    webhook_delivered_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The queue: the oldest IN_QUEUE job of an endpoint, found without a scan.
            models.Index(
                fields=["endpoint", "created_at", "id"],
                condition=models.Q(status="IN_QUEUE"),
                name="serverless_job_queue",
            ),
            models.Index(fields=["endpoint", "status"], name="serverless_job_status"),
            models.Index(
                fields=["worker"], condition=models.Q(stop_pending=True), name="serverless_stop"
            ),
        ]

    def __str__(self) -> str:
        return self.public_id

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL

    @property
    def delay_ms(self) -> int | None:
        return _ms(self.created_at, self.started_at)

    @property
    def execution_ms(self) -> int | None:
        return _ms(self.started_at, self.completed_at)


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return int((end - start).total_seconds() * 1000)


class JobChunk(models.Model):
    """One streamed output of a generator handler; /stream returns each chunk once."""

    job = models.ForeignKey(Job, models.CASCADE, related_name="chunks")
    output = models.JSONField(null=True)
    delivered = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"chunk {self.pk} of {self.job_id}"


class Worker(models.Model):
    """One worker of an endpoint, known by its public id (RUNPOD_POD_ID) and authenticated by
    its own secret (RUNPOD_AI_API_KEY), of which only a SHA-256 hash is kept.

    Billing (per second, initializing excluded; serverless.metering): a worker is billable
    from `ready_at` (its first job-take or ping) to `stopped_at` (or now), never past
    `billed_until`. `metered_until` is the instant up to which its seconds are charged into
    the balance, `posted_until` the instant up to which they are posted as ledger rows (one
    per worker and hour, key `worker:<public_id>:compute:<period>`); the seconds between the
    two are the worker's open accrual."""

    class State(models.TextChoices):
        INITIALIZING = "initializing"
        IDLE = "idle"
        RUNNING = "running"
        THROTTLED = "throttled"
        UNHEALTHY = "unhealthy"
        STOPPED = "stopped"

    public_id = models.CharField(max_length=14, unique=True, default=new_public_id)
    endpoint = models.ForeignKey(Endpoint, models.CASCADE, related_name="workers")
    secret_hash = models.CharField(max_length=64, unique=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.INITIALIZING)
    version = models.PositiveIntegerField()  # the endpoint's version it was started with
    in_flight = models.JSONField(default=list, blank=True)  # job ids from the last ping
    sdk_version = models.CharField(max_length=32, blank=True)
    unhealthy_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    ready_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # When it last became idle (its first sign of life or its last job's end): a flex worker
    # idle for the endpoint's idle_timeout retires, a stale one is replaced.
    idle_since = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    metered_until = models.DateTimeField(null=True, blank=True)
    posted_until = models.DateTimeField(null=True, blank=True)
    # The pod the worker runs in (pods.Pod.Kind.WORKER); None for a worker registered by hand
    # (manage.py register_worker) or one still waiting for a machine (throttled).
    pod = models.OneToOneField(
        Pod, models.SET_NULL, null=True, blank=True, related_name="serverless_worker"
    )
    gpu_type = models.ForeignKey(GpuType, models.PROTECT, null=True, blank=True, related_name="+")
    # An active worker is one of the endpoint's workers_min (always on); a flex one was added
    # for the queue and retires after the idle timeout.
    is_flex = models.BooleanField(default=True)
    # The per-hour price it is billed at per second of ready time, fixed when it is placed.
    price = money_field(default=0)
    # Billing never goes past this instant (a job overran its execution timeout: the worker is
    # stopped, and the seconds after the timeout are not the customer's).
    billed_until = models.DateTimeField(null=True, blank=True)
    stop_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.public_id

    @staticmethod
    def generate_secret() -> str:
        return WORKER_SECRET_PREFIX + secrets.token_urlsafe(32)

    @property
    def is_stale(self) -> bool:
        return self.version < self.endpoint.version

    def billable_seconds(self, until: datetime) -> int:
        """Whole seconds of ready time up to `until` (initializing time is never billed)."""
        if self.ready_at is None:
            return 0
        end = min(until, self.stopped_at) if self.stopped_at else until
        return max(0, int((end - self.ready_at).total_seconds()))
