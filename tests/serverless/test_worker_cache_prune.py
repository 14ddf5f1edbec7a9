"""The worker bootstrap prunes old virtualenvs from the cache on the network volume
(serverless/worker_bootstrap.py, step 3): the real script run by /bin/sh in a real directory,
with real flock holders standing in for a worker installing and a worker running."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from serverless.gateway import GATEWAY_PORT
from serverless.worker_bootstrap import CACHED_MARKER, PRUNED_MARKER, bootstrap_script

DAY = 86400


def key_of(work: Path) -> str:
    """The bootstrap's cache key for work/requirements.txt, computed as it computes it."""
    script = "{ python3 -VV; echo runpod==1.12.0; cat requirements.txt; } | sha256sum"
    return subprocess.check_output(["/bin/sh", "-c", script], cwd=work, text=True)[:16]


def age(path: Path, days: float) -> None:
    moment = time.time() - days * DAY
    os.utime(path, (moment, moment))


def a_venv(cache: Path, name: str, *, days: float, ready: bool = True) -> Path:
    venv = cache / f"venv-{name}"
    (venv / "bin").mkdir(parents=True)
    if ready:
        (venv / ".ready").touch()
        age(venv / ".ready", days)
    age(venv, days)
    return venv


def start(work: Path, command: str) -> subprocess.Popen:
    script = bootstrap_script(gateway_port=GATEWAY_PORT) + f"\nexec /bin/sh -c '{command}'"
    env = {"PATH": os.environ["PATH"], "HOME": str(work)}
    return subprocess.Popen(
        ["/bin/sh", "-c", script],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def bootstrap(work: Path) -> str:
    process = start(work, "echo started")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    return output


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen]]:
    """flock processes holding a lock as a worker would; killed at the end."""
    held: list[subprocess.Popen] = []
    yield held
    for process in held:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """The holder and its sleep (flock -o keeps the lock in flock itself, not in the sleep)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def hold(holders: list, lock: Path, *flags: str) -> subprocess.Popen:
    process = subprocess.Popen(
        ["flock", "-o", *flags, str(lock), "sleep", "60"], start_new_session=True
    )
    holders.append(process)
    deadline = time.monotonic() + 10
    while subprocess.run(["flock", "-n", "-x", str(lock), "true"]).returncode == 0:
        assert time.monotonic() < deadline, "the holder did not take its lock"
        time.sleep(0.02)
    return process


@pytest.fixture
def work(tmp_path) -> Path:
    (tmp_path / "requirements.txt").write_text("six==1.16.0\n")
    return tmp_path


def test_it_deletes_only_old_venvs_nobody_installs_or_runs(work, holders):
    cache = work / ".worker-cache"
    current = a_venv(cache, key_of(work), days=30)  # old, but the one this worker needs
    old = a_venv(cache, "old", days=8)
    abandoned = a_venv(cache, "abandoned", days=8, ready=False)  # an install that died
    recent = a_venv(cache, "recent", days=6)
    installing = a_venv(cache, "installing", days=8, ready=False)
    running = a_venv(cache, "running", days=8)
    hold(holders, cache / "venv-installing.lock")
    runner = hold(holders, cache / "venv-running.inuse", "-s")

    output = bootstrap(work)
    assert f"{CACHED_MARKER} in {current}" in output
    assert sorted(line for line in output.splitlines() if PRUNED_MARKER in line) == [
        f"{PRUNED_MARKER} {abandoned}",
        f"{PRUNED_MARKER} {old}",
    ]
    assert [v.exists() for v in (current, old, abandoned, recent, installing, running)] == [
        True,
        False,
        False,
        True,
        True,
        True,
    ]
    assert time.time() - (current / ".ready").stat().st_mtime < DAY  # used now

    stop(runner)
    bootstrap(work)
    assert not running.exists()
    assert installing.exists() and recent.exists()


def test_a_running_worker_keeps_its_venv_however_old_its_mark(work, holders):
    """The first worker runs on (its start command holds fd 9); another worker, with other
    requirements, finds its venv's mark 8 days old and still leaves it alone."""
    cache = work / ".worker-cache"
    first = a_venv(cache, key_of(work), days=0)
    worker = start(work, "echo started; exec sleep 60")
    holders.append(worker)
    assert worker.stdout.readline().startswith(CACHED_MARKER)
    assert worker.stdout.readline() == "started\n"
    age(first / ".ready", 8)

    (work / "requirements.txt").write_text("six==1.17.0\n")
    a_venv(cache, key_of(work), days=0)
    assert PRUNED_MARKER not in bootstrap(work)
    assert first.exists()

    stop(worker)
    assert f"{PRUNED_MARKER} {first}" in bootstrap(work)
    assert not first.exists()
