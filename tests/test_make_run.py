"""`make run` on the real stack: scripts/run.sh started as a new user starts it (nothing
configured but a fresh DATA_DIR and a free port), then checked from outside the way another
terminal uses it: `DATA_DIR=... manage.py ...` with no DATABASE_URL or REDIS_URL set.

The tests share one running console (module fixture) and run in file order; the last one
restarts it. Stopping is Ctrl-C (SIGINT to the process group) and must leave no process."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psutil
import psycopg
import pytest
import redis
import requests
from websockets.asyncio.client import connect

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
# A fresh DATA_DIR: initdb, migrations, the seed, then eight processes (two daphnes, Celery
# worker and beat, the Stripe emulator...) importing Django at once on two shared cores.
START_SECONDS = 150
STOP_SECONDS = 30
PUSH_SECONDS = 2.0

# A session for the demo login (seeded by make run), its team, and where the websocket goes.
LOGIN = """
import json
from django.conf import settings
from django.db import connection
from django.test import Client
from teams.models import Team, User

user = User.objects.get(email=settings.DEMO_USER_EMAIL)
client = Client()
client.force_login(user)
team = Team.objects.filter(memberships__user=user).first()
cookie = settings.SESSION_COOKIE_NAME
print(json.dumps({
    "vendor": connection.vendor,
    "port": connection.settings_dict["PORT"],
    "layer": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "broker": settings.CELERY_BROKER_URL.split(":")[0],
    "cookie": f"{cookie}={client.cookies[cookie].value}",
    "team": team.slug,
}))
"""

# A pod whose stop was requested, handed to the worker: the worker's halt moves it to "exited"
# and pushes that. `sent` is when the task was queued.
HALT_IN_THE_WORKER = """
import json, time
from pods.models import Machine, Pod
from pods.tasks import halt_pod_task
from teams.models import Team

team = Team.objects.get(slug="{team}")
machine = Machine.objects.filter(gpu_count__gt=0).first()
pod = Pod.objects.create(team=team, name="push-test", machine=machine,
    cloud_type=machine.cloud_type, gpu_type=machine.gpu_type, gpu_count=1,
    requested_gpu_count=1, vcpu=4, memory_gb=8, image="img", container_disk_gb=0, volume_gb=0,
    status="stopping", next_status="exited")
sent = time.time()
halt_pod_task.delay(pod.pk)
print(json.dumps({{"pod": pod.public_id, "sent": sent}}))
"""

# What the metering test charged, and a count that a lost database would change.
CHARGED = """
from django.db.models import Sum
from billing.models import LedgerEntry
from teams.models import User
total = LedgerEntry.objects.filter(team__slug="make-run-meter", kind="usage_compute").aggregate(
    total=Sum("amount"))["total"]
print("charged", -total, "users", User.objects.count())
"""

# 29 minutes of a $2.00/h pod, from a whole hour, charged by `manage.py meter --until`. One
# transaction: beat's own ticks never see the pod running, so they charge none of its minutes.
METER_29_MINUTES = (
    """
from datetime import timedelta
from decimal import Decimal
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from billing.services import adjust_balance
from pods.metering import change_status
from pods.models import GpuType, Machine, Pod
from teams.models import Team

hour = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
with transaction.atomic():
    team = Team.objects.create(name="Meter", slug="make-run-meter", is_personal=False)
    adjust_balance(team=team, amount=Decimal("10"), reason="test", actor=None, key="make-run")
    gpu = GpuType.objects.create(id="Make Run 2.00", display_name="Two", memory_gb=16,
        secure_price=Decimal("2.00"), community_price=Decimal("2.00"), min_bid=Decimal("1"))
    machine = Machine.objects.filter(gpu_count__gt=0, cloud_type="SECURE").first()
    pod = Pod.objects.create(team=team, name="meter", machine=machine, cloud_type="SECURE",
        gpu_type=gpu, gpu_count=1, requested_gpu_count=1, vcpu=4, memory_gb=8, image="img",
        container_disk_gb=0, volume_gb=0, status="running", metered_until=hour)
    until = hour + timedelta(minutes=29)
    call_command("meter", until=until.isoformat())
    # Terminated the one way a status changes: its open usage is posted as a ledger row.
    pod = Pod.objects.select_for_update().get(pk=pod.pk)
    change_status(pod, "terminated", at=until)
    pod.save()
call_command("check_ledger")
"""
    + CHARGED
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def user_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """A terminal with nothing configured: no DATABASE_URL, REDIS_URL, DEBUG or SECRET_KEY."""
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    env.update(DATA_DIR=str(data_dir), VENV=str(Path(sys.executable).parent.parent), **extra)
    return env


class Console:
    """scripts/run.sh in its own process group, as a terminal runs it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.pids: set[tuple[int, float]] = set()
        self.output = data_dir / "run-output.log"

    def start(self) -> None:
        """Run it, and return once the site answers and the worker takes tasks."""
        self.output.touch()
        offset = len(self.output.read_text())
        with self.output.open("a") as out:
            self.process = subprocess.Popen(
                [str(ROOT / "scripts" / "run.sh")],
                cwd=ROOT,
                env=user_env(self.data_dir, PORT=str(self.port)),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_SECONDS
        while not self._ready(offset):
            assert self.process.poll() is None, f"run.sh exited:\n{self.log_tail()}"
            assert time.monotonic() < deadline, f"not up in {START_SECONDS} s:\n{self.log_tail()}"
            time.sleep(0.5)
        self._remember_processes()

    def _ready(self, offset: int) -> bool:
        lines = self.output.read_text()[offset:].splitlines()
        if not any(line.startswith("[worker]") and line.endswith(" ready.") for line in lines):
            return False
        try:
            return requests.get(self.url("/healthz"), timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def _remember_processes(self) -> None:
        """Every process of this run: run.sh's descendants and the two daemonized services."""
        root = psutil.Process(self.process.pid)
        procs = [root, *root.children(recursive=True)]
        for pid in (self.postgres_pid(), self.redis_pid()):
            procs.append(psutil.Process(pid))
        self.pids |= {(proc.pid, proc.create_time()) for proc in procs}

    def postgres_pid(self) -> int:
        return int((self.data_dir / "postgres/data/postmaster.pid").read_text().split()[0])

    def redis_pid(self) -> int:
        return int((self.data_dir / "redis/redis.pid").read_text())

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log_tail(self) -> str:
        return self.output.read_text()[-4000:]

    def stop(self) -> None:
        """Ctrl-C, then nothing of this run may be left (whatever is, is killed after the
        failure is recorded, so a failing run leaves no process either)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill_what_is_left()
            raise AssertionError(f"run.sh still running after Ctrl-C:\n{self.log_tail()}")
        left = self.left_behind()
        if left:
            self.kill_what_is_left()
        assert left == [], self.log_tail()

    def alive(self) -> list[psutil.Process]:
        procs = []
        for pid, started in self.pids:
            try:
                proc = psutil.Process(pid)
                if proc.create_time() == started and proc.status() != psutil.STATUS_ZOMBIE:
                    procs.append(proc)
            except psutil.NoSuchProcess:
                continue
        for proc in psutil.process_iter(["cmdline"]):
            if str(self.data_dir) in " ".join(proc.info["cmdline"] or []):
                procs.append(proc)
        return procs

    def left_behind(self) -> list[str]:
        names = []
        for proc in self.alive():
            with contextlib.suppress(psutil.NoSuchProcess):
                names.append(f"{proc.pid} {' '.join(proc.cmdline())}")
        return names

    def kill_what_is_left(self) -> None:
        for proc in self.alive():
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        if self.process is not None:
            self.process.wait(timeout=STOP_SECONDS)

    def manage(self, *args: str) -> str:
        """manage.py from another terminal: only DATA_DIR tells it where the services are."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=user_env(self.data_dir),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    @functools.cached_property
    def login(self) -> dict:
        """What LOGIN prints, once per console: a demo user's session and how Django runs."""
        return json.loads(self.shell(LOGIN))

    def shell(self, code: str) -> str:
        """The last line `manage.py shell -c CODE` prints."""
        return self.manage("shell", "-c", code).strip().splitlines()[-1]

    def services_env(self) -> dict[str, str]:
        lines = (self.data_dir / "services.env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line and line[0] != "#")

    def service_port(self, name: str) -> int:
        """The port in services.env's DATABASE_URL or REDIS_URL (...@127.0.0.1:PORT/db)."""
        return int(self.services_env()[name].rsplit(":", 1)[1].split("/")[0])


def settings_in(data_dir: Path, code: str, **env: str) -> subprocess.CompletedProcess:
    """`manage.py shell -c CODE` in a terminal with only DATA_DIR (and env) set."""
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", code],
        cwd=ROOT,
        env=user_env(data_dir, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


SHOW_URLS = (
    "from django.conf import settings as s; print(s.DATABASES['default']['PORT'], s.REDIS_URL)"
)


def test_without_a_database_the_settings_name_make_run_and_database_url(tmp_path):
    result = settings_in(tmp_path, SHOW_URLS)
    assert result.returncode != 0
    assert "ImproperlyConfigured: DATABASE_URL is not set" in result.stderr
    assert "`make run`" in result.stderr


def test_sqlite_is_refused(tmp_path):
    result = settings_in(tmp_path, SHOW_URLS, DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3")
    assert result.returncode != 0
    assert "DATABASE_URL must name a PostgreSQL database" in result.stderr


def test_services_env_is_read_when_the_variables_are_unset_and_they_win_when_set(tmp_path):
    (tmp_path / "services.env").write_text(
        "# comment\nDATABASE_URL=postgres://console:pw@127.0.0.1:5999/console\n"
        "REDIS_URL=redis://default:pw@127.0.0.1:6999/0\n"
    )
    read = settings_in(tmp_path, SHOW_URLS)
    assert read.stdout.split() == ["5999", "redis://default:pw@127.0.0.1:6999/0"], read.stderr
    wins = settings_in(tmp_path, SHOW_URLS, DATABASE_URL="postgres://other@127.0.0.1:5111/x")
    assert wins.stdout.split() == ["5111", "redis://default:pw@127.0.0.1:6999/0"], wins.stderr


@pytest.fixture(scope="module")
def console() -> Iterator[Console]:
    # Under /tmp, open to others: as root, PostgreSQL runs as the postgres user and must
    # reach DATA_DIR (pytest's own tmp_path is private to root).
    base = Path(tempfile.mkdtemp(prefix="console-make-run.", dir="/tmp"))
    base.chmod(0o755)
    running = Console(base / "data")
    running.data_dir.mkdir()
    try:
        running.start()
        yield running
    finally:
        running.stop()
        subprocess.run(["rm", "-rf", str(base)], check=False)


def test_it_runs_on_postgresql_and_redis_kept_under_data_dir(console):
    info = console.login
    assert info["vendor"] == "postgresql"
    assert info["layer"] == "channels_redis.core.RedisChannelLayer"
    assert info["broker"] == "redis"
    urls = console.services_env()
    pg_port = int(info["port"])
    assert urls["DATABASE_URL"].endswith(f"@127.0.0.1:{pg_port}/console")
    # The cluster, its pid file and socket, Redis's pid file and append-only data: in DATA_DIR.
    postmaster = (console.data_dir / "postgres/data/postmaster.pid").read_text().split()
    assert int(postmaster[3]) == pg_port
    assert "postgres" in psutil.Process(int(postmaster[0])).name()
    assert (console.data_dir / f"postgres/.s.PGSQL.{pg_port}").is_socket()
    assert "redis-server" in psutil.Process(console.redis_pid()).name()
    assert (console.data_dir / "redis/appendonlydir").is_dir()
    assert (console.data_dir / "services.env").stat().st_mode & 0o077 == 0
    assert requests.get(console.url("/accounts/login/"), timeout=10).status_code == 200


def test_its_database_and_redis_refuse_whoever_lacks_the_passwords(console):
    """Any local process can reach 127.0.0.1: services.env (0600) is the only way in."""
    pg_port = console.service_port("DATABASE_URL")
    for user in ("console", "postgres"):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(f"postgres://{user}@127.0.0.1:{pg_port}/console", connect_timeout=5)
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(
                f"postgres://{user}:guess@127.0.0.1:{pg_port}/console", connect_timeout=5
            )
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=console.service_port("REDIS_URL"), socket_timeout=5).get("celery")


async def receive_status(console: Console, cookie: str, team: str) -> tuple[dict, float, float]:
    """Connect as the demo user to the pods list socket, have the worker halt a pod, and
    return (its push, when the task was queued, when the push arrived)."""
    uri = f"ws://127.0.0.1:{console.port}/ws/t/{team}/pods/"
    headers = {"Cookie": cookie}
    origin = f"http://localhost:{console.port}"
    async with connect(uri, additional_headers=headers, origin=origin, proxy=None) as socket_:
        shell = await asyncio.create_subprocess_exec(
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            HALT_IN_THE_WORKER.format(team=team),
            cwd=ROOT,
            env=user_env(console.data_dir),
            stdout=asyncio.subprocess.PIPE,
        )
        while True:
            message = json.loads(await asyncio.wait_for(socket_.recv(), timeout=60))
            if message["status"] == "exited":
                arrived = time.time()
                break
        output, _ = await asyncio.wait_for(shell.communicate(), timeout=60)
    sent = json.loads(output.decode().strip().splitlines()[-1])
    assert message["pod"] == sent["pod"]
    return message, sent["sent"], arrived


def test_a_status_change_in_the_worker_reaches_a_websocket_within_two_seconds(console):
    info = console.login
    message, sent, arrived = asyncio.run(receive_status(console, info["cookie"], info["team"]))
    assert message["type"] == "status"
    print(f"pushed {arrived - sent:.3f} s after the task was queued")
    assert arrived - sent < PUSH_SECONDS


def test_29_minutes_of_a_two_dollar_pod_cost_exactly_96_666_cents(console):
    output = console.manage("shell", "-c", METER_29_MINUTES).strip().splitlines()
    assert output[-2].startswith("Ledger OK")
    assert Decimal(output[-1].split()[1]) == Decimal("0.9666666667")


def test_a_restart_keeps_every_row_and_stops_everything(console):
    before = console.shell(CHARGED)
    old_port = console.service_port("DATABASE_URL")
    console.stop()
    assert not (console.data_dir / "postgres/data/postmaster.pid").exists()
    # Someone else took PostgreSQL's port meanwhile: the restart picks another one.
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", old_port))
        squatter.listen()
        console.start()
    assert console.service_port("DATABASE_URL") != old_port
    assert console.shell(CHARGED) == before
    assert "charged 0.9666666667" in before
