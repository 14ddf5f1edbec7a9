"""How long from "Deploy" to a running pod on the process runtime, and to its first HTTP answer.

    ./scripts/bench.sh bench/pod_start.py [--pods 10]

(scripts/bench.sh starts a throwaway PostgreSQL and Redis and sets DATABASE_URL and REDIS_URL.)
It builds a throwaway console (a fresh database `bench_pod_start` on that server, pod data in a
temporary directory, eager Celery), seeds the catalogue, deploys the official HTTP demo
template N times one after another, and prints the medians.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django(data_dir: str) -> None:
    # In bench/'s place, not before it: bench/queue.py would shadow the standard library's queue.
    sys.path[0] = str(ROOT)
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")) or not os.environ.get("REDIS_URL"):
        sys.exit("bench/pod_start.py needs DATABASE_URL and REDIS_URL (see its docstring)")
    base, _, _ = url.rpartition("/")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="console.settings",
        DATABASE_URL=f"{base}/bench_pod_start",
        DATA_DIR=data_dir,
        CELERY_TASK_ALWAYS_EAGER="1",
        SECRET_KEY=os.environ.get("SECRET_KEY", "bench"),
        LOG_LEVEL="WARNING",
    )
    import psycopg

    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench_pod_start")
        conn.execute("CREATE DATABASE bench_pod_start")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def first_answer(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
            return
        except OSError:
            time.sleep(0.005)
    raise RuntimeError(f"no answer on port {port}")


def run(pods: int) -> None:
    from billing.services import adjust_balance
    from pods import seed, services
    from pods.models import GpuType, Pod, PodTemplate
    from pods.runtime.process import bwrap_works
    from teams.models import Team

    seed.run(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the run
    team = Team.objects.create(name="Bench", slug="bench", is_personal=False)
    adjust_balance(team=team, amount=Decimal("1000"), reason="bench", actor=None, key="bench")
    template = PodTemplate.objects.get(name="HTTP demo", team=None)
    gpu = GpuType.objects.get(id="NVIDIA RTX A6000")
    to_running, to_http = [], []
    for i in range(pods):
        request = services.DeployRequest(
            name=f"bench {i}",
            cloud_type="COMMUNITY",
            image=template.image,
            container_disk_gb=template.container_disk_gb,
            volume_gb=template.volume_gb,
            gpu_type=gpu,
            gpu_count=1,
            template=template,
            start_command=template.start_command,
            env=template.env,
            ports=template.ports,
        )
        started = time.perf_counter()
        pod = services.deploy_pod(actor=None, team=team, request=request)
        pod.refresh_from_db()
        assert pod.status == Pod.Status.RUNNING, pod.status_reason
        to_running.append(time.perf_counter() - started)
        first_answer(pod.port_mappings[0]["public"])
        to_http.append(time.perf_counter() - started)
        services.terminate_pod(actor=None, pod=pod)
    sandbox = "bubblewrap" if bwrap_works() else "plain subprocess"
    running_ms = statistics.median(to_running) * 1000
    http_ms = statistics.median(to_http) * 1000
    print(
        f"{pods} pods ({sandbox}): median deploy -> running {running_ms:.0f} ms, "
        f"deploy -> first HTTP answer {http_ms:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pod-start-bench-") as data_dir:
        setup_django(data_dir)
        run(args.pods)


if __name__ == "__main__":
    main()
