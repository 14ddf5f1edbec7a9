"""The REST API's pod list against bare DRF lists of the same rows, all under one gunicorn with
2 sync workers, measured in the same run.

    ./scripts/bench.sh bench/api.py [--requests 1500] [--rounds 3] [--clients 4]

(scripts/bench.sh starts a throwaway PostgreSQL and Redis and sets DATABASE_URL and REDIS_URL.)
It builds a fresh database `bench_api` with one team, a read-write API key and 50 pods, starts
gunicorn on this module's `wsgi_app()` (the console's URLs plus two bare views), and in each
round sends the same number of requests to each view in turn, from `--clients` threads:

- API: `GET /api/v1/pods/?limit=50` with the key (authentication, role check, throttle count in
  Redis, pagination with its count, the pod serializer with prices);
- bare DRF: an APIView with no authentication, permission, throttle or pagination returning the
  same 50 rows through a plain ModelSerializer of the same columns (the goal's baseline);
- values floor: the same view returning `.values()` of those columns, no serializer at all.

It prints the database queries a request of each makes, each view's throughput and p99
latency, and the API's ratios to both baselines (goals against bare DRF: throughput >= 50 %,
p99 <= 2x).
"""

import argparse
import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PODS = 50
BARE_PATH = "/bench/bare-pods/"
FLOOR_PATH = "/bench/pod-values/"
API_PATH = f"/api/v1/pods/?limit={PODS}"
# The bare list's columns: the serializer's fields that are stored, under their column names.
BARE_COLUMNS = [
    "public_id",
    "name",
    "status",
    "status_reason",
    "cloud_type",
    "machine__data_center_id",
    "gpu_type_id",
    "gpu_count",
    "requested_gpu_count",
    "cpu_instance_id",
    "vcpu",
    "memory_gb",
    "image",
    "container_disk_gb",
    "volume_gb",
    "volume_mount_path",
    "network_volume__public_id",
    "template__public_id",
    "start_command",
    "env",
    "ports",
    "pricing",
    "bid_per_gpu",
    "created_at",
    "started_at",
    "stopped_at",
    "terminated_at",
]


def environment() -> dict[str, str]:
    """The bench database on the given server, and settings for both processes."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")) or not os.environ.get("REDIS_URL"):
        sys.exit("bench/api.py needs DATABASE_URL and REDIS_URL (see its docstring)")
    base, _, _ = url.rpartition("/")
    return {
        "DJANGO_SETTINGS_MODULE": "console.settings",
        "DATABASE_URL": f"{base}/bench_api",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench"),
        "DEBUG": "0",
        "SECURE_COOKIES": "0",
        "LOG_LEVEL": "WARNING",
        # The throttle still counts every request in Redis; only its limit is out of reach.
        "API_RATE_LIMIT": "100000000/min",
    }


# Served by gunicorn ---------------------------------------------------------------------------


def bare_views() -> dict:
    """Two lists of the same rows with nothing around them (no authentication, permission,
    throttle or pagination): DRF's plain way (a ModelSerializer of the same columns), and the
    floor (`.values()` of them, no serializer)."""
    from rest_framework import serializers
    from rest_framework.permissions import AllowAny
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from pods.models import Pod

    class PlainPodSerializer(serializers.ModelSerializer):
        class Meta:
            model = Pod
            fields = [column.partition("__")[0] for column in BARE_COLUMNS]

    class Bare(APIView):
        authentication_classes: list = []
        permission_classes = [AllowAny]
        throttle_classes: list = []

        def rows(self):
            return Pod.objects.filter(team__slug="bench").order_by("-created_at", "-id")[:PODS]

    class BareSerializer(Bare):
        def get(self, request):
            return Response(PlainPodSerializer(self.rows(), many=True).data)

    class BareValues(Bare):
        def get(self, request):
            return Response(list(self.rows().values(*BARE_COLUMNS)))

    return {BARE_PATH: BareSerializer.as_view(), FLOOR_PATH: BareValues.as_view()}


def add_bare_view() -> None:
    """The console's URLs plus the bare list. A class as ROOT_URLCONF, standing in for a
    module: Django's resolver takes its `urlpatterns` (and caches it by hash)."""
    from django.conf import settings
    from django.urls import include, path

    urls = [path(url.lstrip("/"), view) for url, view in bare_views().items()]
    urls.append(path("", include(settings.ROOT_URLCONF)))
    settings.ROOT_URLCONF = type("BenchUrls", (), {"urlpatterns": urls})


def wsgi_app():
    """gunicorn's app factory (`bench.api:wsgi_app()`)."""
    import django

    django.setup()
    from django.core.wsgi import get_wsgi_application

    add_bare_view()
    return get_wsgi_application()


# The run --------------------------------------------------------------------------------------


def build() -> str:
    """The team, its key and 50 pods; returns the key's secret."""
    import psycopg
    from django.core.management import call_command

    base = os.environ["DATABASE_URL"].rpartition("/")[0]
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench_api")
        conn.execute("CREATE DATABASE bench_api")
    call_command("migrate", verbosity=0)
    from teams.models import Membership, Role, Team, User
    from teams.services import create_api_key
    from tests.pods.factories import catalogue, stopped_pod

    user = User.objects.create_user(email="bench@example.com")
    team = Team.objects.create(name="Bench", slug="bench", is_personal=False)
    Membership.objects.create(user=user, team=team, role=Role.ADMIN)
    parts = catalogue()
    for i in range(PODS):
        env = [{"key": "MODEL", "value": f"m{i}"}]
        ports = [{"port": 8888, "protocol": "http"}, {"port": 22, "protocol": "tcp"}]
        stopped_pod(team, parts["machine"], name=f"pod {i}", env=env, ports=ports)
    return create_api_key(team=team, actor=user, name="bench", permission="read_write")[1]


def targets(secret: str) -> dict[str, tuple[str, dict]]:
    return {
        "API": (API_PATH, {"Authorization": f"Bearer {secret}"}),
        "bare DRF": (BARE_PATH, {}),
        "values floor": (FLOOR_PATH, {}),
    }


def query_counts(secret: str) -> dict[str, int]:
    """Queries per request of each view, in this process (the same code gunicorn runs)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    counts = {}
    for name, (path, headers) in targets(secret).items():
        client = Client(headers=headers)
        client.get(path)  # the first request warms caches (content types, the key's last use)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(path).status_code == 200
        counts[name] = len(queries)
    return counts


def start_gunicorn(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}"]
        + ["--chdir", str(ROOT), "--log-level", "warning", "bench.api:wsgi_app()"],
        env={**os.environ},
    )
    for _ in range(300):  # up to 30 s for two workers to import Django
        try:
            get(port, BARE_PATH, {})
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    sys.exit("gunicorn did not answer within 30 s")


def get(port: int, path: str, headers: dict) -> float:
    """One request on a new connection (gunicorn's sync workers close each one); seconds."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: HTTP {response.status}")
    finally:
        conn.close()
    return time.perf_counter() - started


def load(port: int, path: str, headers: dict, requests: int, clients: int) -> tuple[float, list]:
    """`requests` GETs from `clients` threads; (elapsed seconds, latencies)."""
    latencies: list[float] = []
    share = [requests // clients + (i < requests % clients) for i in range(clients)]

    def client(count: int) -> None:
        mine = [get(port, path, headers) for _ in range(count)]
        latencies.extend(mine)  # list.extend is atomic under the GIL

    threads = [threading.Thread(target=client, args=(count,)) for count in share]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(port: int, secret: str, args: argparse.Namespace) -> dict[str, tuple[float, list]]:
    """Each round sends `--requests` to every view in turn; totals per view."""
    views = targets(secret)
    totals: dict[str, tuple[float, list]] = {name: (0.0, []) for name in views}
    for path, headers in views.values():
        load(port, path, headers, 100, args.clients)  # warm both workers' connections
    for _ in range(args.rounds):
        for name, (path, headers) in views.items():
            elapsed, latencies = load(port, path, headers, args.requests, args.clients)
            totals[name] = (totals[name][0] + elapsed, totals[name][1] + latencies)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500, help="per view and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    sys.path[0] = str(ROOT)  # not bench/: `import api` must be the console's app
    os.environ.update(environment())
    import django

    django.setup()
    add_bare_view()
    secret = build()
    counts = query_counts(secret)
    print("queries per request: " + ", ".join(f"{name} {n}" for name, n in counts.items()))
    port = free_port()
    server = start_gunicorn(port)
    try:
        totals = measure(port, secret, args)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    report(totals)


def report(totals: dict[str, tuple[float, list]]) -> None:
    rate = {name: len(lat) / elapsed for name, (elapsed, lat) in totals.items()}
    tail = {name: p99(lat) * 1000 for name, (_, lat) in totals.items()}
    for name in totals:
        print(f"{name}: {rate[name]:.0f} req/s, p99 {tail[name]:.1f} ms")
    for base in ("bare DRF", "values floor"):
        goals = " (goals >= 50 %, <= 2x)" if base == "bare DRF" else ""
        print(
            f"{PODS} pods, {len(totals['API'][1])} requests each: API / {base}: throughput "
            f"{100 * rate['API'] / rate[base]:.0f} %, p99 {tail['API'] / tail[base]:.1f}x{goals}"
        )


if __name__ == "__main__":
    main()
