"""Serverless workers as real pods on the process runtime: the sandboxed pod has no way to the
console but the worker gateway (its socket mounted in, a forwarder on the pod's own loopback),
its runpod package and the handler's requirements are installed from the package registry
into the endpoint's network volume, and the next worker finds them there.

The handler and its requirements.txt are files on the network volume, as a user puts them
there (README, "Serverless workers"); the template's start command runs the handler."""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterator

import pytest

from pods.models import Machine, NetworkVolume, Pod, PodTemplate
from pods.runtime import get_backend
from pods.runtime.base import network_volume_dir
from serverless.gateway import GATEWAY_PORT, worker_api_base
from serverless.launch import start_worker, stop_worker
from serverless.models import Job, Worker
from serverless.worker_bootstrap import CACHED_MARKER, INSTALLED_MARKER
from tests.api.test_api_keys import make_key
from tests.pods.conftest import parts, pods_settings, reap  # noqa: F401 (fixtures)
from tests.pods.factories import fund
from tests.pods.podman import RUN_PREFIX, podman_url  # noqa: F401 (a fixture)
from tests.sdk_driver import Sdk, sdk_process
from tests.security.conftest import needs_root
from tests.serverless.factories import an_endpoint
from tests.serverless.gateway_live import (  # noqa: F401 (fixtures)
    gateway,
    gateway_data_dir,
    worker_settings,
)
from tests.serverless.live import asgi_server, child_env  # noqa: F401 (a fixture)
from tests.serverless.worker_image import worker_image
from tests.waiting import wait_for

# pods_settings (eager Celery: a deployed pod boots on commit) before worker_settings, whose
# DATA_DIR, shared with the gateway, wins.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pods_settings", "worker_settings", "reap"),
]

HANDLER = """import os

import humanize
import runpod


def handler(job):
    return {"words": humanize.intword(job["input"]["n"]), "worker": os.environ["RUNPOD_POD_ID"]}


runpod.serverless.start({"handler": handler})
"""


@pytest.fixture
def sdk(asgi_server, team, alice, tmp_path) -> Iterator[Sdk]:  # noqa: F811
    _, secret = make_key(team, alice)
    with sdk_process(asgi_server, secret, child_env(HOME=str(tmp_path))) as sdk:
        yield sdk


def endpoint_with_handler(team, data_center):
    """An endpoint whose template runs handler.py from its network volume, with the handler's
    requirements.txt next to it: the files a user uploads to the volume."""
    fund(team)
    volume = NetworkVolume.objects.create(
        team=team, name="code", size_gb=10, data_center=data_center
    )
    files = network_volume_dir(volume.public_id)
    files.mkdir(parents=True)
    (files / "handler.py").write_text(HANDLER)
    (files / "requirements.txt").write_text("humanize==4.9.0\n")
    endpoint = an_endpoint(team, network_volume=volume)
    PodTemplate.objects.filter(pk=endpoint.template_id).update(start_command="python3 handler.py")
    endpoint.refresh_from_db()
    return endpoint


def launch(endpoint) -> tuple[Worker, float]:
    """A worker started as the autoscaler starts one, and when (time.monotonic())."""
    started = time.monotonic()
    worker = start_worker(endpoint, flex=True)
    assert worker.pod.kind == Pod.Kind.WORKER
    return worker, started


def ready_after(worker: Worker, started: float) -> float:
    """Seconds from the start until the worker reached the console (its first ping or
    job-take through the gateway)."""
    backend = get_backend("process")

    def ready():
        worker.refresh_from_db()
        pod = Pod.objects.get(pk=worker.pod_id)
        if pod.runtime_handle:
            assert backend.poll(pod.runtime_handle).state == "running", log_of(worker)[-3000:]
        return worker.ready_at is not None

    wait_for(ready, timeout=300)
    return time.monotonic() - started


def log_of(worker: Worker) -> str:
    handle = Pod.objects.get(pk=worker.pod_id).runtime_handle
    return get_backend("process").read_logs(handle, limit=1_000_000).text if handle else ""


def test_worker_pods_run_jobs_install_once_and_the_next_worker_starts_from_the_cache(
    gateway,  # noqa: F811
    sdk,
    team,
    parts,  # noqa: F811
    worker_venv_cache,
):
    """Two workers start at once on an empty cache: one installs, the other waits for it on
    the lock. A worker started later finds the set installed."""
    needs_root()
    endpoint = endpoint_with_handler(team, parts["dc"])
    run_sync = f'runpod.Endpoint("{endpoint.public_id}").run_sync({{"n": 3000000}}, timeout=60)'

    first, second = launch(endpoint), launch(endpoint)
    first_ready = ready_after(*first)
    ready_after(*second)
    worker_venv_cache.keep(network_volume_dir(endpoint.network_volume.public_id))
    workers = {first[0].public_id, second[0].public_id}
    output = sdk.call(run_sync)
    assert output["words"] == "3.0 million" and output["worker"] in workers
    logs = [log_of(first[0]), log_of(second[0])]
    assert sum(INSTALLED_MARKER in log for log in logs) == 1, logs[0][-1500:] + logs[1][-1500:]
    assert sum(f"{CACHED_MARKER} in" in log for log in logs) == 1
    for worker, _ in (first, second):
        stop_worker(worker, "the next job goes to the next worker")

    third, third_started = launch(endpoint)
    third_ready = ready_after(third, third_started)
    assert sdk.call(run_sync) == {"words": "3.0 million", "worker": third.public_id}
    log = log_of(third)
    print(f"worker ready after {first_ready:.1f} s (installing), {third_ready:.1f} s (cached)")
    assert CACHED_MARKER in log and INSTALLED_MARKER not in log, log[-2000:]
    assert third_ready < first_ready
    assert Job.objects.filter(status="COMPLETED").count() == 2


def test_a_sandboxed_worker_uses_the_gateway_and_an_unsandboxed_one_the_console(settings):
    needs_root()
    sandboxed = Pod(kind=Pod.Kind.WORKER, machine=Machine(runtime="process"))
    docker = Pod(kind=Pod.Kind.WORKER, machine=Machine(runtime="docker"))
    plain = Pod(
        kind=Pod.Kind.WORKER,
        machine=Machine(runtime="process", runtime_settings={"sandbox": "none"}),
    )
    gateway_url = f"http://127.0.0.1:{GATEWAY_PORT}"
    assert worker_api_base(sandboxed) == worker_api_base(docker) == gateway_url
    assert worker_api_base(plain) == settings.SITE_URL


DOCKER_HANDLER = """import runpod
runpod.serverless.start({"handler": lambda job: {"echo": job["input"], "image": True}})
"""


def test_a_docker_worker_container_reaches_the_gateway_and_runs_a_job(
    gateway,  # noqa: F811
    podman_url,  # noqa: F811
    sdk,
    team,
    parts,  # noqa: F811
):
    """On the docker runtime (Podman here) the image brings python and the runpod package;
    the container gets the gateway socket's directory as a read-only bind mount."""
    Machine.objects.filter(pk=parts["machine"].pk).update(
        runtime="docker", runtime_settings={"base_url": podman_url, "name_prefix": RUN_PREFIX}
    )
    fund(team)
    endpoint = an_endpoint(team)
    command = "python3 -c " + shlex.quote(DOCKER_HANDLER)
    image = worker_image(podman_url)
    PodTemplate.objects.filter(pk=endpoint.template_id).update(start_command=command, image=image)
    endpoint.refresh_from_db()
    worker = start_worker(endpoint, flex=True)
    assert (worker.pod.machine.runtime, worker.pod.kind) == ("docker", Pod.Kind.WORKER)
    wait_for(lambda: Worker.objects.filter(pk=worker.pk, ready_at__isnull=False).exists(), 120)
    run_sync = f'runpod.Endpoint("{endpoint.public_id}").run_sync({{"n": 1}}, timeout=60)'
    assert sdk.call(run_sync) == {"echo": {"n": 1}, "image": True}
    stop_worker(worker, "done")
