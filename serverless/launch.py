"""Workers are pods: starting one creates its Worker row and deploys a `kind=WORKER` pod
through pods.services (placed, run and isolated like every pod); stopping one terminates that
pod. The autoscaler (serverless.autoscaler) decides when; this module only does it.

A worker whose GPUs no machine has free is THROTTLED: the row stays, without a pod, and the
next autoscaler pass tries to place it again (place_worker)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from urllib.parse import quote

from django.db import transaction
from django.utils import timezone

from pods import services as pod_services
from pods.models import CloudType, GpuType, Pod
from pods.services import DeployRequest, PodError
from serverless import metering, wakeup
from serverless.gateway import worker_api_base, worker_command
from serverless.models import Endpoint, Job, Worker, hash_secret
from serverless.services import RETENTION, worker_env
from teams import audit

VOLUME_PATH = "/runpod-volume"
# Secure Cloud first: a worker is an on-demand pod, and tier-3/4 machines are the default.
CLOUD_ORDER = (CloudType.SECURE, CloudType.COMMUNITY)
DEATH_ERROR = (
    "The job's worker died twice while running it (the job had been re-queued once already)."
)


class LaunchError(Exception):
    """The endpoint cannot start workers at all (no template, no GPU or CPU type, funds)."""


def _audit(worker: Worker, action: str, **details) -> None:
    audit.record(
        actor=None,  # the system: the autoscaler acts for the endpoint's team
        team=worker.endpoint.team,
        action=f"worker.{action}",
        resource_type="worker",
        resource_id=worker.public_id,
        details={"endpoint": worker.endpoint.public_id, **details},
    )


def _env_list(values: dict[str, str]) -> list[dict]:
    return [{"key": key, "value": value} for key, value in values.items()]


def _request(worker: Worker, gpu: GpuType | None, cloud: str) -> DeployRequest:
    """The pod a worker runs in: the template's image, command and disks, the endpoint's
    network volume (at /runpod-volume, where RunPod mounts it in workers), env = template env
    + endpoint env (the worker protocol's variables follow once the pod is placed)."""
    endpoint, template = worker.endpoint, worker.endpoint.template
    return DeployRequest(
        name=f"{endpoint.name} worker"[:100],
        cloud_type=cloud,
        image=template.image,
        container_disk_gb=template.container_disk_gb,
        volume_gb=template.volume_gb,
        volume_mount_path=VOLUME_PATH if endpoint.network_volume_id else template.volume_mount_path,
        gpu_type=gpu,
        gpu_count=endpoint.gpu_count if gpu else 0,
        cpu_instance=None if gpu else endpoint.cpu_instance,
        template=template,
        network_volume=endpoint.network_volume,
        start_command=template.start_command,
        env=[*template.env, *endpoint.env],
        kind=Pod.Kind.WORKER,
    )


def _choices(endpoint: Endpoint) -> list[GpuType | None]:
    """What to place on, in the endpoint's priority order (None: its CPU instance)."""
    if endpoint.template is None:
        raise LaunchError("The endpoint has no template: choose one to start workers.")
    if not endpoint.is_gpu:
        if endpoint.cpu_instance is None:
            raise LaunchError("The endpoint names neither GPU types nor a CPU instance.")
        return [None]
    found = GpuType.objects.in_bulk(endpoint.gpu_type_ids)
    return [found[gpu_id] for gpu_id in endpoint.gpu_type_ids if gpu_id in found]


def _price(endpoint: Endpoint, gpu: GpuType | None) -> Decimal:
    if gpu is None:
        return endpoint.cpu_instance.serverless_price
    return gpu.serverless_price * endpoint.gpu_count


def _deploy(worker: Worker) -> tuple[Pod, GpuType | None] | None:
    """The first GPU type (then cloud) that places, or None when none does. A refusal for
    funds is no shortage of machines: it is raised."""
    endpoint = worker.endpoint
    for gpu in _choices(endpoint):
        for cloud in CLOUD_ORDER:
            request = _request(worker, gpu, cloud)
            try:
                return pod_services.deploy_pod(actor=None, team=endpoint.team, request=request), gpu
            except PodError as error:
                if error.code != "placement":
                    raise LaunchError(str(error)) from error
    return None


def _arm(worker: Worker, pod: Pod) -> None:
    """Make the placed pod a worker before it boots (on commit): the worker takes the pod's
    id (RunPod's worker id is its pod's, and the pod runtime sets RUNPOD_POD_ID to it), gets a
    new secret (only its hash is kept; the pod's env is where it goes) and the protocol's
    variables, pointed at the gateway, whose forwarder the start command runs first."""
    secret = Worker.generate_secret()
    worker.public_id, worker.secret_hash = pod.public_id, hash_secret(secret)
    gpu = quote(worker.gpu_type_id, safe="") if worker.gpu_type_id else ""
    base_url = worker_api_base(pod)
    protocol = worker_env(worker=worker, secret=secret, base_url=base_url, gpu=gpu)
    pod.env = [*pod.env, *_env_list(protocol)]
    pod.start_command = worker_command(worker.endpoint.template.start_command)
    pod.save(update_fields=["env", "start_command"])


def _check_funds(endpoint: Endpoint) -> None:
    """Low funds would stop the worker at the next tick: start none (serverless.metering)."""
    choices = _choices(endpoint)
    price = _price(endpoint, choices[0]) if choices else Decimal(0)
    if refused := metering.refusal(endpoint.team, price):
        raise LaunchError(refused)


@transaction.atomic
def place_worker(worker: Worker) -> Worker:
    """Deploy the worker's pod, or leave it THROTTLED when no machine has its GPUs free."""
    _check_funds(worker.endpoint)
    placed = _deploy(worker)
    if placed is None:
        was = worker.state
        worker.state = Worker.State.THROTTLED
        worker.save(update_fields=["state"])
        if was != Worker.State.THROTTLED:
            _audit(worker, "throttled", gpu_types=worker.endpoint.gpu_type_ids)
        return worker
    worker.pod, worker.gpu_type = placed
    _arm(worker, worker.pod)
    worker.price = _price(worker.endpoint, worker.gpu_type)
    worker.state = Worker.State.INITIALIZING
    worker.created_at = timezone.now()  # the start-up timeout counts from the placement
    fields = ["public_id", "secret_hash", "pod", "gpu_type", "price", "state", "created_at"]
    worker.save(update_fields=fields)
    _audit(worker, "started", pod=worker.pod.public_id, gpu=worker.gpu_type_id or "cpu")
    return worker


@transaction.atomic
def start_worker(endpoint: Endpoint, *, flex: bool) -> Worker:
    """A new worker of the endpoint at its current version, its pod deployed (or THROTTLED)."""
    worker = Worker.objects.create(
        endpoint=endpoint,
        secret_hash=hash_secret(Worker.generate_secret()),  # replaced once placed (_arm)
        version=endpoint.version,
        is_flex=flex,
    )
    return place_worker(worker)


def requeue_jobs(worker: Worker, now: datetime) -> dict[str, int]:
    """The worker's running jobs go back to the queue once (counted as retried); a job that
    was re-queued after a worker's death before fails instead, so a job that kills its workers
    cannot loop. A user's /retry is not a death: it does not count here."""
    running = Job.objects.select_for_update().filter(worker=worker, status=Job.Status.IN_PROGRESS)
    counts = {"requeued": 0, "failed": 0}
    for job in running:
        if job.requeues >= 1:
            job.status, job.error, job.completed_at = Job.Status.FAILED, DEATH_ERROR, now
            job.expires_at = now + RETENTION[job.is_sync]
            _publish(wakeup.done_channel(job.public_id))  # a runsync waiter answers now
            counts["failed"] += 1
        else:
            job.status, job.worker, job.started_at = Job.Status.IN_QUEUE, None, None
            job.retries += 1
            job.requeues += 1
            counts["requeued"] += 1
        job.save()
    if counts["requeued"]:
        _publish(wakeup.jobs_channel(worker.endpoint_id))  # held job-takes look again
    return counts


def _publish(channel: str) -> None:
    transaction.on_commit(lambda: wakeup.publish(channel))


@transaction.atomic
def stop_worker(
    worker: Worker, reason: str, *, now: datetime | None = None, billed_until=None
) -> dict[str, int]:
    """Terminate the worker's pod and mark it STOPPED; jobs it still ran are re-queued once
    (the counts say how many were re-queued or failed). `billed_until` caps its billing (a job
    overran its execution timeout)."""
    now = now or timezone.now()
    worker = Worker.objects.select_for_update().select_related("endpoint__team").get(pk=worker.pk)
    if worker.state == Worker.State.STOPPED:
        return {}
    jobs = requeue_jobs(worker, now)
    if worker.pod_id is not None:
        pod = Pod.objects.get(pk=worker.pod_id)
        if pod.can_terminate():
            pod_services.terminate_pod(actor=None, pod=pod)
    worker.state, worker.stopped_at, worker.stop_reason = Worker.State.STOPPED, now, reason[:300]
    fields = ["state", "stopped_at", "stop_reason"]
    if billed_until is not None:
        worker.billed_until = billed_until
        fields.append("billed_until")
    worker.save(update_fields=fields)
    metering.settle_worker(worker, at=now)  # every second up to the stop is charged now
    _audit(worker, "stopped", reason=reason[:300], **jobs)
    return jobs
