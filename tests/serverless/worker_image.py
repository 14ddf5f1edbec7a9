"""A serverless worker image for the docker runtime, built here (no registry is reachable):
busybox, the host's python3 with its standard library and the shared libraries they link,
and runpod 1.12.0 with its dependencies in /opt/site (PYTHONPATH), as a RunPod worker image
has the SDK preinstalled: copied from the console's own virtualenv, which the tests' runpod
client uses (the same Python minor version; pip would download them again). The tag carries
the content's version, so a built image is reused by later runs."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sysconfig
import tarfile
import tempfile
from importlib import metadata
from pathlib import Path

import docker
from docker.errors import ImageNotFound
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from serverless.worker_bootstrap import RUNPOD_REQUIREMENT

IMAGE = "localhost/console-python-worker:runpod-1.12.0-v2"
PYTHON = "/usr/bin/python3.11"
LDD_PATH = re.compile(r"(/\S+\.so[.\d]*)")
SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"]).resolve()


def linked_libraries(binaries: list[Path]) -> set[str]:
    """Every shared library the binaries load (ldd resolves them on this host)."""
    found: set[str] = set()
    for binary in binaries:
        out = subprocess.run(["/usr/bin/ldd", str(binary)], capture_output=True, text=True)
        found |= set(LDD_PATH.findall(out.stdout))
    return found


def copy_into(root: Path, path: str, source: Path | None = None) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source or os.path.realpath(path), target)


def closure(requirement: str) -> list[metadata.Distribution]:
    """The installed distributions `requirement` needs, its own dependencies' included."""
    found: dict[str, metadata.Distribution] = {}
    todo = [Requirement(requirement)]
    while todo:
        wanted = todo.pop()
        name = canonicalize_name(wanted.name)
        if name in found or (wanted.marker and not wanted.marker.evaluate({"extra": ""})):
            continue
        found[name] = metadata.distribution(name)
        todo += [Requirement(line) for line in found[name].requires or ()]
    return list(found.values())


def make_rootfs(root: Path) -> None:
    (root / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True).stdout
    for applet in applets.split():
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    for name in ("tmp", "root", "workspace", "etc"):
        (root / name).mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)
    copy_into(root, PYTHON)
    (root / "usr/bin/python3").symlink_to("python3.11")
    ignore = shutil.ignore_patterns("test", "tests", "__pycache__", "idlelib", "tkinter")
    shutil.copytree("/usr/lib/python3.11", root / "usr/lib/python3.11", ignore=ignore)
    site = root / "opt/site"
    for dist in closure(RUNPOD_REQUIREMENT):
        for file in dist.files or ():
            source = Path(dist.locate_file(file)).resolve()
            if source.is_file() and source.is_relative_to(SITE_PACKAGES):
                copy_into(site, str(source.relative_to(SITE_PACKAGES)), source)
    binaries = [Path(PYTHON), *root.joinpath("usr/lib/python3.11").rglob("*.so")]
    binaries += site.rglob("*.so*")
    for library in linked_libraries(binaries):
        if not library.startswith(str(root)):
            copy_into(root, library)


def worker_image(url: str) -> str:
    client = docker.DockerClient(base_url=url, timeout=600)
    try:
        client.images.get(IMAGE)
        return IMAGE
    except ImageNotFound:
        pass
    with tempfile.TemporaryDirectory(prefix="worker-image-") as tmp:
        make_rootfs(Path(tmp, "rootfs"))
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            tar.add(Path(tmp, "rootfs"), arcname=".")
    repository, tag = IMAGE.rsplit(":", 1)
    changes = ["ENV PYTHONPATH=/opt/site", 'CMD ["/bin/sh"]']
    # Podman's import ignores the tag it is given: it names the image <repository>:latest.
    client.api.import_image_from_data(data.getvalue(), repository=repository, changes=changes)
    client.images.get(f"{repository}:latest").tag(repository, tag)
    client.close()
    return IMAGE
