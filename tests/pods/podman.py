"""Podman's Docker-compatible API for the docker runtime's tests.

`make test` starts the service (scripts/podman.sh) and exports PODMAN_URL; a bare pytest run
without it starts its own service through the same script, so the tests run the same way in
development. Everything the tests create carries a per-run name prefix and is removed at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests
from docker.errors import DockerException

from pods.runtime import get_backend
from pods.runtime.docker import DockerBackend

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("PODMAN_IMAGE", "localhost/console-busybox:latest")
RUN_PREFIX = f"ct{uuid.uuid4().hex[:6]}-"


# Fixtures: a test module imports them (the runtime tests and the security tests share them).
@pytest.fixture(scope="session")
def podman_url():
    with podman_service() as url:
        if url is None:
            pytest.skip("PODMAN_URL is unset and podman is not installed (make test sets both up)")
        yield url
        remove_leftovers(url, RUN_PREFIX)


@pytest.fixture
def backend(podman_url, settings, tmp_path) -> Iterator[DockerBackend]:
    """The docker backend on Podman; whatever a test leaves (it failed half-way) goes after it."""
    settings.DATA_DIR = tmp_path  # where stopped containers' logs are kept
    yield get_backend("docker", {"base_url": podman_url, "name_prefix": RUN_PREFIX})
    remove_leftovers(podman_url, RUN_PREFIX)


@contextlib.contextmanager
def podman_service() -> Iterator[str | None]:
    """PODMAN_URL when set; else a service of our own (None when podman is not installed)."""
    if os.environ.get("PODMAN_URL"):
        yield os.environ["PODMAN_URL"]
        return
    if not shutil.which("podman"):
        yield None
        return
    script = (
        "source scripts/common.sh && source scripts/podman.sh && start_podman >&2 && "
        'printf "%s\\n%s\\n" "$PODMAN_DIR" "$PODMAN_URL"'
    )
    out = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    if out.returncode != 0:
        raise RuntimeError(f"scripts/podman.sh could not start Podman:\n{out.stderr}")
    podman_dir, url = out.stdout.split()
    try:
        yield url
    finally:
        stop = "source scripts/common.sh && source scripts/podman.sh && stop_podman"
        subprocess.run(["bash", "-c", stop], cwd=ROOT, env={**os.environ, "PODMAN_DIR": podman_dir})


def remove_leftovers(url: str, prefix: str) -> None:
    """Remove the containers and volumes whose names start with `prefix` (those of tests that
    failed half-way), each on its own: one the engine cannot remove leaves the rest to go."""
    client = docker.DockerClient(base_url=url, timeout=60)
    with contextlib.suppress(DockerException, requests.RequestException):
        for container in client.containers.list(all=True, filters={"name": prefix}):
            if container.name.startswith(prefix):
                with contextlib.suppress(DockerException, requests.RequestException):
                    container.remove(force=True, v=True)
        for volume in client.volumes.list():
            if volume.name.startswith(prefix):
                with contextlib.suppress(DockerException, requests.RequestException):
                    volume.remove(force=True)
    client.close()


def wait_for(check, *, seconds: float = 10.0, every: float = 0.1):
    """Call `check` until it returns something truthy; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {seconds} s waiting for {check}")
        time.sleep(every)


class RecordedRequests:
    """Wraps the docker SDK's HTTP session to keep every request it sends to the engine, for
    the duration of a `with` block."""

    def __init__(self, api) -> None:
        self.api = api
        self.sent: list[requests.PreparedRequest] = []
        self._send = api.send

    def __enter__(self) -> RecordedRequests:
        self.api.send = self
        return self

    def __exit__(self, *exc) -> None:
        del self.api.send  # back to the session class's own send

    def __call__(self, request: requests.PreparedRequest, **kwargs):
        self.sent.append(request)
        return self._send(request, **kwargs)

    def to(self, method: str, path: str) -> list[requests.PreparedRequest]:
        return [r for r in self.sent if r.method == method and path in (r.path_url or "")]
