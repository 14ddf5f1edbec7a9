"""Serverless workers as real pods on the process runtime: the sandboxed pod has no way to the
console but the worker gateway (its socket mounted in, a forwarder on the pod's own loopback),
its runpod package and the handler's requirements are installed from the package registry
into the endpoint's network volume, and the next worker finds them there.

The handler and its requirements.txt are files on the network volume, as a user puts them
there (README, "Serverless workers"); the template's start command runs the handler."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pods.models import DataCenter, Machine, NetworkVolume, Pod
from pods.runtime.base import network_volume_dir
from serverless.gateway import GATEWAY_PORT, worker_api_base
from serverless.models import Job
from serverless.worker_bootstrap import CACHED_MARKER, INSTALLED_MARKER
from tests.api.test_api_keys import make_key
from tests.pods.factories import fund
from tests.sdk_driver import Sdk, sdk_process
from tests.security.conftest import needs_root
from tests.serverless.factories import an_endpoint
from tests.serverless.gateway_live import (  # noqa: F401 (fixtures)
    WorkerPod,
    gateway,
    gateway_data_dir,
    worker_settings,
)
from tests.serverless.live import asgi_server, child_env  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker_settings")]

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


@pytest.fixture
def pods() -> Iterator[list[WorkerPod]]:
    started: list[WorkerPod] = []
    yield started
    for pod in started:
        pod.close()


def endpoint_with_handler(team):
    fund(team)
    data_center = DataCenter.objects.create(id="EU-RO-1", name="Bucharest", country="RO")
    volume = NetworkVolume.objects.create(
        team=team, name="code", size_gb=10, data_center=data_center
    )
    files = network_volume_dir(volume.public_id)
    files.mkdir(parents=True)
    (files / "handler.py").write_text(HANDLER)
    (files / "requirements.txt").write_text("humanize==4.9.0\n")
    return an_endpoint(team, network_volume=volume)


def test_a_worker_pod_runs_a_job_and_the_next_worker_starts_from_the_cache(
    gateway,  # noqa: F811
    sdk,
    team,
    pods,
):
    needs_root()
    endpoint = endpoint_with_handler(team)
    run_sync = f'runpod.Endpoint("{endpoint.public_id}").run_sync({{"n": 3000000}}, timeout=60)'

    pods.append(WorkerPod(endpoint, "python3 handler.py"))
    first_ready = pods[0].ready_after(timeout=300)
    assert sdk.call(run_sync) == {"words": "3.0 million", "worker": pods[0].worker.public_id}
    assert INSTALLED_MARKER in pods[0].log()
    pods.pop().close()  # the next job can only go to the next worker

    pods.append(WorkerPod(endpoint, "python3 handler.py"))
    second_ready = pods[0].ready_after(timeout=60)
    assert sdk.call(run_sync) == {"words": "3.0 million", "worker": pods[0].worker.public_id}
    log = pods[0].log()
    print(f"worker ready after {first_ready:.1f} s (installing), {second_ready:.1f} s (cached)")
    assert CACHED_MARKER in log and INSTALLED_MARKER not in log, log[-2000:]
    assert second_ready < first_ready
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
