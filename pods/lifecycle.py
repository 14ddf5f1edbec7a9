"""The runtime side of the lifecycle, run by Celery tasks: boot a pod, halt it, and reconcile
what the database wants with what the machines really run.

Each step claims its pod with a row lock or a conditional UPDATE, so a task that runs twice, or
two reconcilers at once, cannot start a pod twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from pods import live
from pods.metering import STOP_GRACE, change_status
from pods.models import Pod
from pods.runtime import MountSpec, PodSpec, PortSpec, RuntimeBackend, RuntimeFailure, get_backend
from teams import audit
from teams import services as team_services
from teams.models import ApiKey

log = logging.getLogger(__name__)

# A pod stuck in a transitional status this long had its task lost (worker crash) or its
# machine did not answer: the reconciler redoes it, and staff see it (PodAdmin's "stuck").
STUCK_AFTER = timedelta(seconds=60)
TRANSITIONAL = (Pod.Status.CREATED, Pod.Status.STARTING, Pod.Status.STOPPING)
CONSOLE_ENV = ("RUNPOD_POD_ID", "RUNPOD_API_KEY", "RUNPOD_POD_HOSTNAME", "RUNPOD_GPU_COUNT")
CONSOLE_ENV += ("RUNPOD_CPU_COUNT", "RUNPOD_DC_ID", "RUNPOD_API_BASE_URL", "RUNPOD_PUBLIC_IP")
CONSOLE_ENV += ("PORT",)


def backend_for(pod: Pod) -> RuntimeBackend:
    return get_backend(pod.machine.runtime, pod.machine.runtime_settings)


def _system_audit(pod: Pod, action: str, **details) -> None:
    audit.record(
        actor=None,
        team=pod.team,
        action=f"pod.{action}",
        resource_type="pod",
        resource_id=pod.public_id,
        details={"status": pod.status, **details},
    )


def log_tail(pod: Pod, lines: int = 20) -> str:
    try:
        text = backend_for(pod).read_logs({"pod_id": pod.public_id}, limit=8192).text
    except (RuntimeFailure, OSError):
        return ""
    return "\n".join(text.splitlines()[-lines:])


# The pod's API key: issued for each run, revoked when it stops ----------------------------


def issue_api_key(pod: Pod) -> str:
    """A fresh key for this run of the pod (RUNPOD_API_KEY); the last run's key is revoked.
    Only its hash is stored; the secret lives in the pod's environment."""
    revoke_api_key(pod)
    pod.api_key, secret = team_services.issue_pod_api_key(
        team=pod.team, pod_public_id=pod.public_id
    )
    return secret


def revoke_api_key(pod: Pod) -> None:
    """The run is over (stopped, exited, failed, terminated, or replaced by a new run)."""
    key = ApiKey.objects.filter(pk=pod.api_key_id).first() if pod.api_key_id else None
    if key is not None:
        team_services.revoke_api_key(key=key, actor=None, reason="the pod's run ended")
    pod.api_key = None


def build_spec(pod: Pod, api_key: str) -> PodSpec:
    env = {row["key"]: row["value"] for row in pod.env if row["key"] not in CONSOLE_ENV}
    env.update(
        RUNPOD_POD_ID=pod.public_id,
        RUNPOD_POD_HOSTNAME=pod.public_id,
        RUNPOD_API_KEY=api_key,
        RUNPOD_GPU_COUNT=str(pod.gpu_count),
        RUNPOD_CPU_COUNT=str(pod.vcpu),
        RUNPOD_DC_ID=pod.machine.data_center_id,
        RUNPOD_API_BASE_URL=settings.SITE_URL,
    )
    from pods.connect.spec import authorized_keys, registry_auth

    keys = authorized_keys(pod.team)
    if keys:
        env.setdefault("PUBLIC_KEY", keys)  # a PUBLIC_KEY the user set themselves wins
    mounts = []
    if pod.network_volume_id:
        name = pod.network_volume.public_id
        mounts.append(MountSpec(name, pod.volume_mount_path, "network_volume"))
    elif pod.volume_gb:
        mounts.append(MountSpec(pod.public_id, pod.volume_mount_path, "volume", pod.volume_gb))
    return PodSpec(
        pod_id=pod.public_id,
        image=pod.image,
        command=pod.start_command,
        env=env,
        ports=tuple(PortSpec(p["port"], p["protocol"]) for p in pod.ports),
        mounts=tuple(mounts),
        container_disk_gb=pod.container_disk_gb,
        vcpu=pod.vcpu,
        memory_gb=pod.memory_gb,
        gpu_count=pod.gpu_count,
        working_dir=pod.volume_mount_path,
        registry_auth=registry_auth(pod.team, pod.image),
        worker_gateway=pod.kind == Pod.Kind.WORKER,
    )


# Boot --------------------------------------------------------------------------------------


def _claim_for_boot(pod_id: int) -> bool:
    with transaction.atomic():
        pod = Pod.objects.select_related("team").select_for_update(of=("self",)).get(pk=pod_id)
        if pod.status not in (Pod.Status.CREATED, Pod.Status.STARTING):
            return False
        if pod.status == Pod.Status.CREATED:
            change_status(pod, Pod.Status.STARTING)
            pod.save()
            live.record(pod, "Starting.")
        return True


def boot_pod(pod_id: int) -> None:
    """created/starting -> running (or failed with the reason and the log's last lines)."""
    if not _claim_for_boot(pod_id):
        return
    with transaction.atomic():
        pod = (
            Pod.objects.select_related("team", "machine", "network_volume")
            .select_for_update(of=("self",))
            .get(pk=pod_id)
        )
        if pod.status != Pod.Status.STARTING:
            return  # stopped or terminated while it waited
        backend = backend_for(pod)
        if pod.runtime_handle and backend.poll(pod.runtime_handle).state == "running":
            return  # a duplicate task: it is already up
        try:
            result = backend.start(build_spec(pod, issue_api_key(pod)))
        except (RuntimeFailure, OSError) as error:
            _fail(pod, f"Could not start: {error}")
            return
        pod.runtime_handle = result.handle
        pod.port_mappings = [mapping.as_dict() for mapping in result.ports]
        pod.started_at = timezone.now()
        change_status(pod, Pod.Status.RUNNING)
        pod.save()
        live.record(pod, "Running.")
        _system_audit(pod, "running", machine=pod.machine.public_id)


def _fail(pod: Pod, reason: str) -> None:
    tail = log_tail(pod)
    revoke_api_key(pod)
    change_status(pod, Pod.Status.FAILED, reason + (f"\n\nLast log lines:\n{tail}" if tail else ""))
    pod.stopped_at = timezone.now()
    pod.save()
    live.record(pod, reason)
    _system_audit(pod, "failed", reason=reason)


# Halt --------------------------------------------------------------------------------------


def halt_pod(pod_id: int) -> None:
    """Stop the pod's processes (SIGTERM, SIGKILL after 5 s), wipe its container disk, and move
    it to its next_status: exited (stop), starting (restart) or terminated (volume deleted)."""
    pod = Pod.objects.select_related("team", "machine").get(pk=pod_id)
    if pod.status != Pod.Status.STOPPING:
        return
    then = pod.next_status or Pod.Status.EXITED
    backend = backend_for(pod)
    exit_code = None
    if pod.runtime_handle:
        exit_code = backend.stop(pod.runtime_handle, grace_seconds=STOP_GRACE.total_seconds())
    backend.reset_container_disk(pod.public_id)
    with transaction.atomic():
        pod = Pod.objects.select_related("team").select_for_update(of=("self",)).get(pk=pod_id)
        if pod.status != Pod.Status.STOPPING:
            return
        revoke_api_key(pod)
        pod.next_status = ""
        pod.exit_code = exit_code
        pod.stopped_at = timezone.now()
        pod.runtime_handle = {} if then == Pod.Status.STARTING else pod.runtime_handle
        if then == Pod.Status.TERMINATED:
            _finish_terminate(pod, backend)
        else:
            # A stop keeps its reason ("Stopped by its timer", low funds, preempted).
            keep = then in (Pod.Status.EXITED, Pod.Status.PREEMPTED)
            change_status(pod, then, pod.status_reason if keep else "")
            pod.save()
            done = {Pod.Status.EXITED: "Stopped.", Pod.Status.PREEMPTED: "Preempted."}
            live.record(pod, done.get(then, "Restarting."))
    if then == Pod.Status.STARTING:
        boot_pod(pod_id)


def _finish_terminate(pod: Pod, backend: RuntimeBackend) -> None:
    volume_name = pod.volume_name
    public_id = pod.public_id
    change_status(pod, Pod.Status.TERMINATED)
    pod.terminated_at = timezone.now()
    pod.port_mappings = []
    pod.save()
    live.record(pod, "Terminated: the pod and its volume were deleted.")
    transaction.on_commit(lambda: backend.delete_pod_data(public_id, volume_name=volume_name))


# Reconcile ---------------------------------------------------------------------------------


def _claim(pod: Pod, old: str, new: str) -> bool:
    """Only one reconciler wins a given transition: the row lock decides, the status check
    refuses the loser."""
    with transaction.atomic():
        locked = Pod.objects.select_for_update(of=("self",)).filter(pk=pod.pk, status=old).first()
        if locked is None:
            return False
        change_status(locked, new)
        locked.save(update_fields=["status", "status_reason", "status_changed_at", "metered_until"])
    pod.status = new
    return True


def _process_died(pod: Pod, exit_code: int | None) -> None:
    with transaction.atomic():
        pod = Pod.objects.select_related("team").select_for_update(of=("self",)).get(pk=pod.pk)
        if pod.status != Pod.Status.RUNNING:
            return
        pod.exit_code = exit_code
        if exit_code == 0:
            revoke_api_key(pod)
            change_status(pod, Pod.Status.EXITED, "The start command finished (exit code 0).")
            pod.stopped_at = timezone.now()
            pod.save()
            live.record(pod, "Exited with code 0.")
            _system_audit(pod, "exited", exit_code=0)
        else:
            _fail(pod, f"The pod's process exited with code {exit_code}.")
    backend_for(pod).reset_container_disk(pod.public_id)


def _relaunch_lost(pod: Pod) -> None:
    """The process vanished without an exit (host or console restart): start it again with the
    same command; the volume is kept, the container disk and memory are lost."""
    if not _claim(pod, Pod.Status.RUNNING, Pod.Status.STARTING):
        return
    with transaction.atomic():
        pod.refresh_from_db()
        live.record(pod, "The machine restarted: starting again with the same command.")
        _system_audit(pod, "relaunched")
    boot_pod(pod.pk)


def check_running(pod: Pod) -> None:
    try:
        state = backend_for(pod).poll(pod.runtime_handle)
    except (RuntimeFailure, OSError):
        log.exception("could not poll pod %s", pod.public_id)
        return
    if state.state == "exited":
        _process_died(pod, state.exit_code)
    elif state.state == "lost":
        _relaunch_lost(pod)


def stuck(pods: QuerySet[Pod], now: datetime) -> QuerySet[Pod]:
    """The pods of `pods` that have been in a transitional status longer than STUCK_AFTER."""
    return pods.filter(status__in=TRANSITIONAL, status_changed_at__lt=now - STUCK_AFTER)


def redo_stuck(pod: Pod) -> None:
    """Retry the lost step; a machine that still fails leaves the pod stuck (and listed for
    staff) until the next round, without holding up the other pods."""
    try:
        if pod.status == Pod.Status.STOPPING:
            halt_pod(pod.pk)
        else:
            boot_pod(pod.pk)
    except (RuntimeFailure, OSError) as error:
        log.warning(
            "pod %s stuck %s since %s: %s", pod.public_id, pod.status, pod.status_changed_at, error
        )


def run_timers(now) -> None:
    from pods import services

    for pod in Pod.objects.live().filter(stop_at__lte=now).select_related("team"):
        if pod.can_stop():
            services.stop_pod(actor=None, pod=pod, reason="Stopped by its timer.")
        else:
            Pod.objects.filter(pk=pod.pk).update(stop_at=None)
    for pod in Pod.objects.live().filter(terminate_at__lte=now).select_related("team"):
        services.terminate_pod(actor=None, pod=pod)


def reconcile() -> None:
    """Desired vs actual, for every pod on an online machine."""
    now = timezone.now()
    pods = Pod.objects.filter(machine__is_online=True).select_related("team", "machine")
    for pod in pods.filter(status=Pod.Status.RUNNING):
        check_running(pod)
    for pod in stuck(pods, now):
        redo_stuck(pod)
    run_timers(now)
