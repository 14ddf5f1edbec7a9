"""Serverless jobs through the real HTTP API and real runpod workers, next to a bare
PostgreSQL SKIP LOCKED loop doing the queue's work, measured in the same run.

    DATABASE_URL=postgres://.../postgres REDIS_URL=redis://... python bench/job_queue.py \\
        [--jobs 300] [--workers 2]

It works in a database of its own (bench_queue_<pid>, dropped at the end), serves
console.asgi with daphne on a free port, starts `--workers` processes running an unmodified
`runpod.serverless.start` worker with a trivial handler (returns its input; concurrency
CONCURRENCY, so workers take batches), submits `--jobs`
jobs with `POST /v2/<endpoint>/run` from 4 client threads and waits until all are COMPLETED.
Then the same number of jobs goes through the bare loop: 4 threads, each claiming one job
with `UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1)` and completing it.
It prints jobs/s and the p50 and p90 submit->complete latency of both (the server's own
timestamps: created_at to completed_at), and the ratio.
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# With the SDK's default concurrency of 1 a worker sleeps 1 s after each take (rp_scale.py:
# "don't go rapidly"), so it moves at most one job a second whatever the server does; a
# concurrency of CONCURRENCY makes it take batches (job-take-batch) as RunPod's own do.
CONCURRENCY = 20
HANDLER = f"""
import runpod

async def handler(job):
    return {{"echo": job["input"]}}

config = {{"handler": handler, "concurrency_modifier": lambda current: {CONCURRENCY}}}
runpod.serverless.start(config)
"""
CLIENT_THREADS = 4


def setup_django() -> tuple[str, str]:
    sys.path.insert(0, str(ROOT))
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("bench/job_queue.py needs DATABASE_URL of a PostgreSQL server (see its docstring)")
    base, _, _ = url.rpartition("/")
    name = f"bench_queue_{os.getpid()}"
    os.environ.update(
        DJANGO_SETTINGS_MODULE="console.settings",
        DATABASE_URL=f"{base}/{name}",
        SECRET_KEY=os.environ.get("SECRET_KEY", "bench"),
        LOG_LEVEL="WARNING",
        CELERY_TASK_ALWAYS_EAGER="1",
        SERVERLESS_JOB_TAKE_HOLD="5",
    )
    import psycopg

    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return base, name


def drop_database(base: str, name: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    daphne = Path(sys.executable).with_name("daphne")
    command = [str(daphne), "-b", "127.0.0.1", "-p", str(port), "console.asgi:application"]
    process = subprocess.Popen(command, cwd=ROOT, env=os.environ.copy(), stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    sys.exit("daphne did not start")


def make_endpoint():
    from pods.models import PodTemplate
    from serverless.models import Endpoint
    from teams.models import Membership, Team, User
    from teams.services import create_api_key

    user = User.objects.create_user(email="bench@example.com", password="x")
    team = Team.objects.create(name="Bench", slug="bench", is_personal=False)
    Membership.objects.create(user=user, team=team, role="admin")
    template = PodTemplate.objects.create(team=team, name="w", image="w", is_serverless=True)
    endpoint = Endpoint.objects.create(team=team, name="bench", template=template)
    _, secret = create_api_key(team=team, actor=user, name="bench", permission="read_write")
    return endpoint, secret


def start_workers(endpoint, base_url: str, count: int, script: Path) -> list[subprocess.Popen]:
    from serverless import services

    workers = []
    for _ in range(count):
        worker, secret = services.register_worker(actor=None, endpoint=endpoint)
        env = {
            "PATH": os.environ["PATH"],
            "HOME": tempfile.mkdtemp(prefix="bench-worker-"),
            "RUNPOD_LOG_LEVEL": "ERROR",
            **services.worker_env(worker=worker, secret=secret, base_url=base_url),
        }
        workers.append(
            subprocess.Popen(
                [sys.executable, str(script)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
    return workers


def submit_all(base_url: str, endpoint_id: str, secret: str, jobs: int) -> None:
    import httpx

    def submit(count: int) -> None:
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
            for n in range(count):
                reply = client.post(f"/v2/{endpoint_id}/run", json={"input": {"n": n}})
                reply.raise_for_status()

    share = [jobs // CLIENT_THREADS + (i < jobs % CLIENT_THREADS) for i in range(CLIENT_THREADS)]
    threads = [threading.Thread(target=submit, args=(n,)) for n in share]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def wait_completed(endpoint, jobs: int, timeout: float = 600) -> None:
    from serverless.models import Job

    deadline = time.monotonic() + timeout
    while Job.objects.filter(endpoint=endpoint, status="COMPLETED").count() < jobs:
        if time.monotonic() > deadline:
            sys.exit("the jobs did not complete in time")
        time.sleep(0.2)


def summary(endpoint) -> tuple[float, float, float]:
    """jobs/s (first submission to last completion), p50 and p90 latency in ms."""
    from serverless.models import Job

    rows = list(Job.objects.filter(endpoint=endpoint).values_list("created_at", "completed_at"))
    latencies = [(done - created).total_seconds() * 1000 for created, done in rows]
    span = (max(d for _, d in rows) - min(c for c, _ in rows)).total_seconds()
    return len(rows) / span, statistics.median(latencies), statistics.quantiles(latencies, n=10)[8]


BARE_CLAIM = """
UPDATE bench_jobs SET status = 'IN_PROGRESS', started_at = clock_timestamp()
WHERE id = (SELECT id FROM bench_jobs WHERE status = 'IN_QUEUE' ORDER BY id
            FOR UPDATE SKIP LOCKED LIMIT 1)
RETURNING id, input
"""


def bare_loop(url: str, jobs: int) -> tuple[float, float, float]:
    """The queue's work with nothing else: insert, claim with SKIP LOCKED, complete."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE bench_jobs (id bigserial PRIMARY KEY, status text, input jsonb,"
            " output jsonb, created_at timestamptz DEFAULT clock_timestamp(),"
            " started_at timestamptz, completed_at timestamptz)"
        )
        conn.execute("CREATE INDEX ON bench_jobs (id) WHERE status = 'IN_QUEUE'")

    def produce(count: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            for n in range(count):
                conn.execute(
                    "INSERT INTO bench_jobs (status, input) VALUES ('IN_QUEUE', %s)",
                    [f'{{"n": {n}}}'],
                )

    def consume(stop: threading.Event) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute(BARE_CLAIM).fetchone()
                if row is None:
                    time.sleep(0.001)
                    continue
                conn.execute(
                    "UPDATE bench_jobs SET status = 'COMPLETED', output = input,"
                    " completed_at = clock_timestamp() WHERE id = %s",
                    [row[0]],
                )

    stop = threading.Event()
    consumers = [threading.Thread(target=consume, args=(stop,)) for _ in range(CLIENT_THREADS)]
    for thread in consumers:
        thread.start()
    share = [jobs // CLIENT_THREADS + (i < jobs % CLIENT_THREADS) for i in range(CLIENT_THREADS)]
    producers = [threading.Thread(target=produce, args=(n,)) for n in share]
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join()
    with psycopg.connect(url, autocommit=True) as conn:
        while (
            conn.execute("SELECT count(*) FROM bench_jobs WHERE status = 'COMPLETED'").fetchone()[0]
            < jobs
        ):
            time.sleep(0.05)
        stop.set()
        for thread in consumers:
            thread.join()
        rows = conn.execute("SELECT created_at, completed_at FROM bench_jobs").fetchall()
    latencies = [(done - created).total_seconds() * 1000 for created, done in rows]
    span = (max(d for _, d in rows) - min(c for c, _ in rows)).total_seconds()
    return len(rows) / span, statistics.median(latencies), statistics.quantiles(latencies, n=10)[8]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    base, name = setup_django()
    port = free_port()
    server = start_server(port)
    workers: list[subprocess.Popen] = []
    try:
        endpoint, secret = make_endpoint()
        with tempfile.TemporaryDirectory() as scratch:
            script = Path(scratch) / "handler.py"
            script.write_text(HANDLER)
            base_url = f"http://127.0.0.1:{port}"
            workers = start_workers(endpoint, base_url, args.workers, script)
            time.sleep(3)  # the workers import runpod and start polling
            submit_all(base_url, endpoint.public_id, secret, args.jobs)
            wait_completed(endpoint, args.jobs)
        api = summary(endpoint)
        bare = bare_loop(os.environ["DATABASE_URL"], args.jobs)
        print(
            f"{args.jobs} jobs, {args.workers} runpod workers: HTTP API {api[0]:.0f} jobs/s, "
            f"p50 {api[1]:.0f} ms, p90 {api[2]:.0f} ms; bare SKIP LOCKED loop "
            f"{bare[0]:.0f} jobs/s, p50 {bare[1]:.1f} ms, p90 {bare[2]:.1f} ms; "
            f"the API moves {api[0] / bare[0]:.3f}x the bare loop's jobs/s"
        )
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        drop_database(base, name)


if __name__ == "__main__":
    main()
