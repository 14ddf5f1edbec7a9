"""Serverless in one piece: a job sent by the runpod client makes the real autoscaler start a
worker pod (process runtime, placed through pods.services) whose handler, on the endpoint's
network volume, takes the job through the worker gateway and returns its output; once idle
for the endpoint's idle timeout the next passes retire the worker, its pod is terminated, its
GPU released, and its ready seconds are billed to the 10th decimal with check_ledger clean.

The venv of runpod and the handler's requirements comes from the session's cache
(tests/serverless/worker_cache.py) when test_worker_pods has built it; alone, this test pays
the install itself."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest

from billing import usage
from billing.management.commands.check_ledger import mismatches
from billing.models import LedgerEntry
from billing.money import ZERO
from pods.metering import meter
from pods.models import GpuType, Pod
from pods.runtime import get_backend
from pods.runtime.base import network_volume_dir
from serverless.autoscaler import autoscale
from serverless.models import Endpoint, Job, Worker
from serverless.worker_bootstrap import CACHED_MARKER, INSTALLED_MARKER
from teams.models import AuditEvent
from tests.pods.conftest import parts, pods_settings, reap  # noqa: F401 (fixtures)
from tests.security.conftest import needs_root
from tests.serverless.gateway_live import (  # noqa: F401 (fixtures)
    gateway,
    gateway_data_dir,
    worker_settings,
)
from tests.serverless.live import asgi_server  # noqa: F401 (a fixture)
from tests.serverless.test_billing import seconds_cost
from tests.serverless.test_worker_pods import endpoint_with_handler, log_of, sdk  # noqa: F401
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pods_settings", "worker_settings", "reap"),
]

IDLE_TIMEOUT = 3  # seconds
PRICE = Decimal("1.185")  # $/h: the A40's serverless price (0.79 x 1.5)


def passes_until(done, *, timeout: float, what: str, worker: Worker | None = None) -> Counter:
    """Autoscaler passes (the beat runs one every 3 s; here one every ~0.5 s) until done();
    what they did in all. On timeout the failure names `what`, the passes and the worker's
    log tail."""
    total = Counter()

    def step():
        total.update(autoscale())
        time.sleep(0.5)
        return done()

    try:
        wait_for(step, timeout=timeout)
    except AssertionError:
        log = log_of(worker)[-2500:] if worker else ""
        raise AssertionError(f"{what} within {timeout} s; the passes did {total}\n{log}") from None
    return total


def test_a_job_makes_the_autoscaler_start_a_worker_pod_which_runs_it_and_retires_when_idle(
    gateway,  # noqa: F811
    sdk,  # noqa: F811
    team,
    parts,  # noqa: F811
    seed_worker_venv,
    worker_venv_cache,
):
    needs_root()
    GpuType.objects.filter(pk=parts["a40"].pk).update(serverless_price=PRICE)
    endpoint = endpoint_with_handler(team, parts["dc"])
    Endpoint.objects.filter(pk=endpoint.pk).update(
        workers_min=0, workers_max=2, idle_timeout=IDLE_TIMEOUT
    )
    volume_dir = network_volume_dir(endpoint.network_volume.public_id)
    warm = seed_worker_venv(volume_dir)
    machine = parts["machine"]
    free_gpus = machine.free_gpus()
    assert autoscale().total() == 0  # nothing queued, no minimum: no worker

    eid = endpoint.public_id
    job_id = sdk.call(f'(job := runpod.Endpoint("{eid}").run({{"n": 3000000}})).job_id')
    job = Job.objects.get(public_id=job_id)
    assert job.status == Job.Status.IN_QUEUE
    assert autoscale()["started"] == 1
    (worker,) = Worker.objects.filter(endpoint=endpoint)
    pod = Pod.objects.get(pk=worker.pod_id)
    assert (pod.kind, pod.status, pod.machine) == (Pod.Kind.WORKER, Pod.Status.RUNNING, machine)
    deployed = AuditEvent.objects.get(action="pod.deployed", resource_id=pod.public_id)
    assert (deployed.actor, deployed.team) == (None, team)  # pods.services, by the system
    assert machine.free_gpus() == free_gpus - endpoint.gpu_count

    def completed() -> bool:
        return Job.objects.filter(pk=job.pk, status=Job.Status.COMPLETED).exists()

    served = passes_until(
        completed, timeout=90 if warm else 300, what="the worker completed the job", worker=worker
    )
    assert (served["started"], served["stopped"]) == (0, 0), served  # one worker was enough
    assert Job.objects.get(pk=job.pk).worker_id == worker.pk
    worker_venv_cache.keep(volume_dir)  # for the next test, if this one installed it
    output = {"words": "3.0 million", "worker": worker.public_id}
    assert sdk.call("job.output(timeout=30)") == output
    assert sdk.call("job.status()") == "COMPLETED"
    log = log_of(worker)
    worker.refresh_from_db()
    ready = (worker.ready_at - job.created_at).total_seconds()
    print(
        f"worker ready {ready:.1f} s after the job was sent ({'cached' if warm else 'installing'})"
    )
    assert (CACHED_MARKER in log, INSTALLED_MARKER in log) == (warm, not warm), log[-2000:]
    meter()  # a tick while the worker is up charges its seconds to the minute, posts none
    assert mismatches() == []

    def retired() -> bool:
        return Worker.objects.filter(pk=worker.pk, state=Worker.State.STOPPED).exists()

    idle = passes_until(retired, timeout=IDLE_TIMEOUT + 30, what="the idle worker retired")
    assert (idle["stopped_idle"], idle["started"]) == (1, 0), idle
    worker.refresh_from_db()
    assert worker.stop_reason == f"Idle for {IDLE_TIMEOUT} s."
    assert worker.stopped_at - worker.idle_since >= timedelta(seconds=IDLE_TIMEOUT)
    terminated = Pod.objects.filter(pk=pod.pk, status=Pod.Status.TERMINATED)
    wait_for(terminated.exists, timeout=30)
    assert get_backend("process").poll(pod.runtime_handle).state != "running"
    assert machine.free_gpus() == free_gpus
    assert_billed(worker, team)


def assert_billed(worker: Worker, team) -> None:
    """The worker's whole ready seconds at its placement price, posted as usage_serverless
    rows by its stop's settlement; the next tick adds nothing."""
    assert worker.price == PRICE * worker.endpoint.gpu_count
    start = worker.ready_at.replace(microsecond=0)
    end = start + timedelta(seconds=int((worker.stopped_at - worker.ready_at).total_seconds()))
    expected = seconds_cost(worker.price, start, end)
    assert expected > ZERO
    rows = LedgerEntry.objects.filter(kind="usage_serverless", source_id=worker.public_id)

    def posted() -> tuple:
        return (sum(rows.values_list("amount", flat=True), ZERO), rows.count())

    charged = posted()
    assert charged[0] == -expected
    assert (worker.metered_until, worker.posted_until) == (end, end)
    assert rows.order_by("period_start").first().period_start == start
    assert rows.order_by("period_end").last().period_end == end
    meter()
    assert posted() == charged
    assert [line for line in usage.open_accruals(team) if line.source_type == "worker"] == []
    assert mismatches() == []
