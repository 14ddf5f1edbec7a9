"""The worker bootstrap's virtualenv (runpod and a handler's requirements, 70-120 s of pip
install) built once per test session and shared between network volumes.

A worker pod sees its network volume at /runpod-volume whatever its host directory, so a venv
the bootstrap built in one volume (`.worker-cache/venv-<key>`, its paths all under
/runpod-volume) works unchanged when copied into another: `keep` takes it from the volume of
the test that installed it (test_worker_pods, which must install: it proves the install and
its lock), `seed` puts it into a new volume, where the bootstrap finds it and prints
"dependencies cached". Tests that seed (fixture `seed_worker_venv`) run after the others
(tests/serverless/conftest.py), so in a whole run they find the venv already kept; alone,
they install it themselves and keep it for the next one."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pods.runtime import sandbox

CACHE = ".worker-cache"  # serverless/worker_bootstrap.py: WORKER_CACHE_DIR's default


def _link(source: str, target: str) -> None:
    """Hard links where they can be (the cache and the volumes share /tmp): a venv's
    thousands of files are linked in a fraction of the seconds copying them takes."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


class VenvCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def keep(self, volume_dir: Path) -> None:
        """Copy the volume's installed venvs (those marked .ready) into the cache."""
        for venv in (volume_dir / CACHE).glob("venv-*/"):
            target = self.root / CACHE / venv.name
            if (venv / ".ready").exists() and not target.exists():
                shutil.copytree(venv, target, symlinks=True, copy_function=_link)

    def seed(self, volume_dir: Path) -> bool:
        """Copy the cached venvs into the volume, in the volume's group as the pods sharing it
        write them (pods.runtime.process: root's, group-writable); False when there is none."""
        if not any((self.root / CACHE).glob("venv-*/.ready")):
            return False
        target = volume_dir / CACHE
        shutil.copytree(
            self.root / CACHE, target, symlinks=True, copy_function=_link, dirs_exist_ok=True
        )
        group = sandbox.claim_id(f"volume-{volume_dir.name}")
        for path in [target, *target.rglob("*")]:
            os.chown(path, -1, group, follow_symlinks=False)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o060)  # SHARED_UMASK: group-writable
        return True


@pytest.fixture(scope="session")
def worker_venv_cache() -> Iterator[VenvCache]:
    root = Path(tempfile.mkdtemp(prefix="worker-venv-cache-"))
    yield VenvCache(root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def seed_worker_venv(worker_venv_cache: VenvCache):
    """seed(volume_dir) -> whether the venv was there to copy (the test runs late: see above)."""
    return worker_venv_cache.seed
