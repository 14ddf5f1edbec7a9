"""Serverless jobs through the real HTTP API and real runpod workers, next to a bare
PostgreSQL SKIP LOCKED loop doing the queue's work, measured in the same run.

    ./scripts/bench.sh -m bench.queue [--jobs 300] [--workers 2] [--serial 30] [--calls 200]
        [--split]

(scripts/bench.sh starts a throwaway PostgreSQL and Redis; with your own, run
`DATABASE_URL=postgres://.../postgres REDIS_URL=redis://... python -m bench.queue` from the
project's root. `python bench/queue.py` works too: it first puts the root in place of bench/
on sys.path, where this file would shadow the standard library's `queue`.) It works in a
database of its own (bench.scratch_db: bench_queue_<pid>, dropped at the end), serves
console.asgi with daphne on a free port as `make run` does, and starts `--workers` processes
running an unmodified `runpod.serverless.start` worker with a trivial handler (returns its
input; concurrency CONCURRENCY, so workers take batches). Then:

- burst: `--jobs` jobs sent with `POST /v2/<endpoint>/run` from CLIENT_THREADS client threads,
  waited for until all are COMPLETED;
- serial: `--serial` jobs one at a time (each sent once the previous one completed), so each
  phase of one job's path is timed without a backlog: the /run round trip, queued -> taken (the
  held job-take's wake-up and claim), taken -> done (the worker runs the handler and posts
  job-done) and the client's `GET /status` round trip for the finished job;
- bare: as many jobs through the bare loop: CLIENT_THREADS threads inserting, CLIENT_THREADS
  claiming one job each with `UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT
  1)` and completing it.

It prints jobs/s and the p50 and p90 submit->complete latency of the burst and of the bare loop
(server timestamps: created_at to completed_at) and their ratio, the CPU time the servers and
the workers spent per job, then the serial phases' p50s, then the CPU time one call of /run,
/status, a take (what a held job-take runs per claim), job-done and ping costs in Django,
`--calls` calls each, in this process through serverless.asgi's handler (no HTTP). With
`--split` the layout of production (README, "Deploying for real"): the client routes and the
short worker routes on gunicorn (2 sync workers), only the held job-take and job-stop on daphne.
"""

# ruff: noqa: E402 (sys.path is fixed before any import that may import `queue`)
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == os.path.join(ROOT, "bench"):
    sys.path[0] = ROOT

import argparse
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.scratch_db import scratch_database

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
# The bench's own settings for the server: make run's connection pool for daphne, short holds,
# and no API rate limit in the way of the clients (600 requests a minute by default: the burst
# would be throttled, not measured).
SERVER_ENV = {
    "DATABASE_POOL_SIZE": "10",
    "SERVERLESS_JOB_TAKE_HOLD": "5",
    "API_RATE_LIMIT": "1000000/min",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(done: Callable[[], bool], seconds: float, what: str, step: float = 0.2) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {seconds:.0f} s")
        time.sleep(step)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def daphne(port: int) -> list[str]:
    program = str(Path(sys.executable).with_name("daphne"))
    return [program, "-b", "127.0.0.1", "-p", str(port), "console.asgi:application"]


def gunicorn(port: int) -> list[str]:
    """Production's WSGI servers for the short routes (README, "Deploying for real")."""
    program = str(Path(sys.executable).with_name("gunicorn"))
    return [program, "-w", "2", "-b", f"127.0.0.1:{port}", "console.wsgi:application"]


@contextmanager
def running_server(command: Callable[[int], list[str]], **env: str) -> Iterator[tuple[str, int]]:
    """The server `command(port)` starts (its log in a temporary file); stopped, and waited
    for, before the scratch database is dropped."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            command(port), cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=log
        )
        try:
            wait_until(lambda: server.poll() is not None or listening(port), 30, "server start")
            if server.poll() is not None:
                log.seek(0)
                raise RuntimeError("the server exited:\n" + log.read()[-3000:].decode())
            yield f"http://127.0.0.1:{port}", server.pid
        except BaseException:
            log.seek(0)
            print("the server's log tail:\n" + log.read()[-3000:].decode(), file=sys.stderr)
            raise
        finally:
            stop(server, signal.SIGTERM)


@contextmanager
def running_servers(split: bool) -> Iterator[tuple[str, str, list[int]]]:
    """(the URL of the short routes, the URL of the held ones, the servers' pids): one daphne
    for everything as under `make run`, or with `split` gunicorn for the short ones."""
    with running_server(daphne) as (held, pid):
        if not split:
            yield held, held, [pid]
            return
        with running_server(gunicorn, DATABASE_POOL_SIZE="0") as (short, wsgi_pid):
            yield short, held, [pid, wsgi_pid]


def stop(process: subprocess.Popen, how: int, group: bool = False) -> None:
    send = (lambda sig: os.killpg(process.pid, sig)) if group else process.send_signal
    send(how)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait()


def make_endpoint():
    from billing.services import adjust_balance
    from pods.models import PodTemplate
    from serverless.models import Endpoint
    from teams.models import Membership, Team, User
    from teams.services import create_api_key

    user = User.objects.create_user(email="bench@example.com", password="x")
    team = Team.objects.create(name="Bench", slug="bench", is_personal=False)
    Membership.objects.create(user=user, team=team, role="admin")
    adjust_balance(team=team, amount="1000", reason="bench credit", actor=None)  # jobs need funds
    template = PodTemplate.objects.create(team=team, name="w", image="w", is_serverless=True)
    endpoint = Endpoint.objects.create(team=team, name="bench", template=template)
    _, secret = create_api_key(team=team, actor=user, name="bench", permission="read_write")
    return endpoint, secret


@contextmanager
def running_workers(endpoint, base_url: str, held_url: str, count: int) -> Iterator[list[int]]:
    """`count` runpod worker processes, each polling job-take at `held_url` (their first take
    sets ready_at; the SDK derives job-stop from it) and posting the rest to `base_url`;
    yields their pids; killed with their process groups on the way out."""
    from serverless import services
    from serverless.models import Worker

    workers: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as scratch:
        script = Path(scratch) / "handler.py"
        script.write_text(HANDLER)
        try:
            for n in range(count):
                worker, secret = services.register_worker(actor=None, endpoint=endpoint)
                env = {
                    "PATH": os.environ["PATH"],
                    "HOME": str(Path(scratch) / f"home{n}"),
                    "RUNPOD_LOG_LEVEL": "ERROR",
                    **services.worker_env(worker=worker, secret=secret, base_url=base_url),
                }
                take = services.worker_env(worker=worker, secret=secret, base_url=held_url)
                env["RUNPOD_WEBHOOK_GET_JOB"] = take["RUNPOD_WEBHOOK_GET_JOB"]
                workers.append(
                    subprocess.Popen(
                        [sys.executable, str(script)],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
            ready = Worker.objects.filter(endpoint=endpoint, ready_at__isnull=False)
            wait_until(lambda: ready.count() == count, 60, "the workers' first job-take")
            yield [process.pid for process in workers]
        finally:
            for process in workers:
                stop(process, signal.SIGKILL, group=True)


def client(base_url: str, secret: str):
    import httpx

    headers = {"Authorization": f"Bearer {secret}"}
    return httpx.Client(base_url=base_url, headers=headers, timeout=30)


def timed(call: Callable):
    started = time.perf_counter()
    reply = call()
    reply.raise_for_status()
    return reply, (time.perf_counter() - started) * 1000


def submit_burst(base_url: str, endpoint_id: str, secret: str, jobs: int) -> list[float]:
    """Send `jobs` jobs from CLIENT_THREADS threads; their /run round trips in ms. A failed
    request fails the bench (a thread's exception is re-raised here)."""
    round_trips: list[float] = []
    errors: list[BaseException] = []

    def submit(count: int) -> None:
        try:
            with client(base_url, secret) as http:
                for n in range(count):
                    post = lambda n=n: http.post(f"/v2/{endpoint_id}/run", json={"input": n})  # noqa: E731
                    round_trips.append(timed(post)[1])
        except BaseException as error:  # re-raised by the main thread
            errors.append(error)

    share = [jobs // CLIENT_THREADS + (i < jobs % CLIENT_THREADS) for i in range(CLIENT_THREADS)]
    threads = [threading.Thread(target=submit, args=(n,)) for n in share]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return round_trips


def ms(start, end) -> float:
    return (end - start).total_seconds() * 1000


def p(values: list[float], q: int) -> float:
    """The q-th percentile (q in 1..99)."""
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes and their descendants (the runpod worker's
    heartbeat is a child process), all their threads included."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue  # it ended meanwhile
            stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    wanted, total = set(pids), 0
    for _ in range(5):  # children, grandchildren, ...
        wanted |= {pid for pid, (parent, _) in stats.items() if parent in wanted}
    total = sum(ticks for pid, (_, ticks) in stats.items() if pid in wanted)
    return total / os.sysconf("SC_CLK_TCK")


def burst(base_url: str, endpoint, secret: str, jobs: int, pids: dict) -> dict[str, float]:
    """The burst's rates and latencies, and the CPU time the server and the workers spent on
    it per job (which the machine's other load does not inflate as it does wall time)."""
    from serverless.models import Job

    cpu = {name: cpu_seconds(group) for name, group in pids.items()}
    round_trips = submit_burst(base_url, endpoint.public_id, secret, jobs)
    done = Job.objects.filter(endpoint=endpoint, status="COMPLETED")
    wait_until(lambda: done.count() >= jobs, 60 + jobs / 2, "completing the burst")
    cpu = {name: (cpu_seconds(pids[name]) - cpu[name]) * 1000 / jobs for name in pids}
    rows = list(done.values_list("created_at", "started_at", "completed_at"))
    latencies = [ms(created, completed) for created, _, completed in rows]
    span = ms(min(r[0] for r in rows), max(r[2] for r in rows)) / 1000
    return {
        "rate": len(rows) / span,
        "p50": p(latencies, 50),
        "p90": p(latencies, 90),
        "run": p(round_trips, 50),
        "queued": p([ms(c, s) for c, s, _ in rows], 50),
        "done": p([ms(s, d) for _, s, d in rows], 50),
        **{f"cpu_{name}": value for name, value in cpu.items()},
    }


def serial(base_url: str, endpoint, secret: str, jobs: int) -> dict[str, float]:
    """One job at a time: each phase of its path, p50 in ms."""
    from serverless.models import Job

    phases: dict[str, list[float]] = {"run": [], "queued": [], "done": [], "status": []}
    with client(base_url, secret) as http:
        for n in range(jobs):
            post = lambda n=n: http.post(f"/v2/{endpoint.public_id}/run", json={"input": n})  # noqa: E731
            reply, round_trip = timed(post)
            job = Job.objects.filter(public_id=reply.json()["id"])
            finished = job.filter(status="COMPLETED")
            wait_until(finished.exists, 30, "a serial job's completion", step=0.002)
            created, started, completed = job.values_list(
                "created_at", "started_at", "completed_at"
            ).get()
            status = f"/v2/{endpoint.public_id}/status/{reply.json()['id']}"
            reply, status_trip = timed(lambda: http.get(status))  # noqa: B023
            assert reply.json()["status"] == "COMPLETED", reply.text
            for name, value in (
                ("run", round_trip),
                ("queued", ms(created, started)),
                ("done", ms(started, completed)),
                ("status", status_trip),
            ):
                phases[name].append(value)
    return {name: p(values, 50) for name, values in phases.items()}


def asgi_scope(method: str, path: str, headers: dict[str, str], query: str = "") -> dict:
    headers = {**headers, "host": "127.0.0.1"}
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }


def cpu_per_call(call: Callable[[int], object], count: int) -> float:
    """Milliseconds of this process's CPU time per `call(n)`, n = 0 .. count-1."""
    started = time.process_time()
    for n in range(count):
        call(n)
    return (time.process_time() - started) * 1000 / count


def calls(endpoint, secret: str, count: int) -> dict[str, float]:
    """CPU per call of the hot routes, `count` calls each, through the Django handler
    serverless.asgi runs /v2/ requests with (middleware, DRF, the view, its queries), in this
    process: no HTTP, no thread hop. A take is what a held job-take runs per claim."""
    import io
    import json

    from serverless import services
    from serverless.asgi import ThreadedDjango

    handler = ThreadedDjango()
    worker, worker_secret = services.register_worker(actor=None, endpoint=endpoint)
    client_auth = {"authorization": f"Bearer {secret}", "content-type": "application/json"}
    worker_auth = {"authorization": worker_secret}
    root = f"/v2/{endpoint.public_id}"
    ids: list[str] = []

    def send(method: str, path: str, headers: dict, body: bytes = b"", query: str = "") -> bytes:
        headers = {**headers, "content-length": str(len(body))}
        status, _, content = handler.respond(
            asgi_scope(method, path, headers, query), io.BytesIO(body)
        )
        assert status == 200, (path, status, content)
        return content

    def run(n: int) -> None:
        body = json.dumps({"input": n}).encode()
        ids.append(json.loads(send("POST", f"{root}/run", client_auth, body))["id"])

    def take(n: int) -> None:
        found = services.authenticate_worker(
            endpoint_id=endpoint.public_id, worker_id=worker.public_id, secret=worker_secret
        )
        assert services.claim_jobs(worker=found, count=1)

    def done(n: int) -> None:
        path = f"{root}/job-done/{worker.public_id}/{ids[n]}"
        assert b"true" in send("POST", path, worker_auth, b'{"output": {"ok": 1}}', "gpu=A40")

    ping = f"{root}/ping/{worker.public_id}"
    routes = {
        "run": run,
        "status": lambda n: send("GET", f"{root}/status/{ids[n]}", client_auth),
        "take": take,
        "done": done,
        "ping": lambda n: send("GET", ping, worker_auth, query="gpu=A40"),
    }
    for call in routes.values():  # one job through untimed: first calls import and compile
        call(0)
    ids.clear()
    return {name: cpu_per_call(call, count) for name, call in routes.items()}


BARE_CLAIM = """
UPDATE bench_jobs SET status = 'IN_PROGRESS', started_at = clock_timestamp()
WHERE id = (SELECT id FROM bench_jobs WHERE status = 'IN_QUEUE' ORDER BY id
            FOR UPDATE SKIP LOCKED LIMIT 1)
RETURNING id, input
"""


def bare_loop(url: str, jobs: int) -> dict[str, float]:
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

    stop_consumers = threading.Event()
    consumers = [
        threading.Thread(target=consume, args=(stop_consumers,)) for _ in range(CLIENT_THREADS)
    ]
    for thread in consumers:
        thread.start()
    try:
        share = [
            jobs // CLIENT_THREADS + (i < jobs % CLIENT_THREADS) for i in range(CLIENT_THREADS)
        ]
        producers = [threading.Thread(target=produce, args=(n,)) for n in share]
        for thread in producers:
            thread.start()
        for thread in producers:
            thread.join()
        with psycopg.connect(url, autocommit=True) as conn:
            count = "SELECT count(*) FROM bench_jobs WHERE status = 'COMPLETED'"
            wait_until(lambda: conn.execute(count).fetchone()[0] >= jobs, 60, "the bare loop")
            rows = conn.execute("SELECT created_at, completed_at FROM bench_jobs").fetchall()
    finally:
        stop_consumers.set()
        for thread in consumers:
            thread.join()
    latencies = [ms(created, done) for created, done in rows]
    span = ms(min(c for c, _ in rows), max(d for _, d in rows)) / 1000
    return {"rate": len(rows) / span, "p50": p(latencies, 50), "p90": p(latencies, 90)}


def report(args, api: dict, bare: dict, one: dict, per_call: dict) -> str:
    servers = "daphne + gunicorn" if args.split else "daphne"
    return (
        f"{args.jobs} jobs, {args.workers} runpod workers, {servers}: "
        f"HTTP API {api['rate']:.0f} jobs/s, "
        f"p50 {api['p50']:.0f} ms, p90 {api['p90']:.0f} ms (p50 /run {api['run']:.0f} ms, "
        f"queued->taken {api['queued']:.0f} ms, taken->done {api['done']:.0f} ms); "
        f"bare SKIP LOCKED loop {bare['rate']:.0f} jobs/s, p50 {bare['p50']:.1f} ms, "
        f"p90 {bare['p90']:.1f} ms; the API moves {api['rate'] / bare['rate']:.3f}x the bare "
        f"loop's jobs/s; CPU per job: {servers} {api['cpu_server']:.1f} ms, the workers "
        f"{api['cpu_workers']:.1f} ms\n{args.serial} serial jobs, p50 of each phase: "
        f"/run {one['run']:.1f} ms, "
        f"queued->taken {one['queued']:.1f} ms, taken->done {one['done']:.1f} ms, "
        f"/status {one['status']:.1f} ms\nCPU per call in Django, {args.calls} calls each: "
        + ", ".join(f"{name} {value:.2f} ms" for name, value in per_call.items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--serial", type=int, default=30)
    parser.add_argument("--calls", type=int, default=200, help="calls per route for CPU per call")
    parser.add_argument(
        "--split",
        action="store_true",
        help="the short routes on gunicorn (2 workers), only the held ones on daphne",
    )
    args = parser.parse_args()
    with scratch_database("queue.py", "bench_queue", **SERVER_ENV):
        with running_servers(args.split) as (base_url, held_url, servers):
            endpoint, secret = make_endpoint()
            with running_workers(endpoint, base_url, held_url, args.workers) as workers:
                pids = {"server": servers, "workers": workers}
                api = burst(base_url, endpoint, secret, args.jobs, pids)
                one = serial(base_url, endpoint, secret, args.serial)
            per_call = calls(endpoint, secret, args.calls)  # the workers stopped: none takes
        bare = bare_loop(os.environ["DATABASE_URL"], args.jobs)
        print(report(args, api, bare, one, per_call))


if __name__ == "__main__":
    main()
