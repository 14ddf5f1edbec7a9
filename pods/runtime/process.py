"""The "process" backend: each pod is a real process tree on this host.

With bubblewrap (bwrap) installed the pod gets private pid, mount, IPC and UTS namespaces, a
read-only view of the host's /usr and /etc, a private /tmp, its container disk at /root (HOME)
and its volume bind-mounted at the mount path; the network is shared, so a declared port is
served by the pod listening on the host port it was mapped to (passed in as $PORT and
$RUNPOD_TCP_PORT_<port>). A cgroup v1 memory limit applies when the memory controller is
writable. Without bwrap the command runs as a plain subprocess and the pod's log says so.

Machine.runtime_settings understood here:
  "sandbox": "auto" (default: bwrap when it works) | "bwrap" (required) | "none"
  "cgroup_parent": a memory cgroup directory to create pod cgroups in (default: the console's
                   own memory cgroup, so pods stay inside whatever limits the console has)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psutil

from pods.runtime.base import (
    LogChunk,
    MountSpec,
    PodSpec,
    PortMapping,
    ResourceUsage,
    RuntimeBackend,
    RuntimeFailure,
    RuntimeState,
    StartResult,
    network_volume_dir,
    pod_data_dir,
    register,
)
from pods.runtime.pty import ProcessPty

log = logging.getLogger(__name__)

SHIM = Path(__file__).with_name("shim.py")
BWRAP = "/usr/bin/bwrap"
CONTAINER_HOME = "/root"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IDLE_COMMAND = "echo '[console] no start command: the pod idles.'; exec sleep infinity"
MEMORY_CGROUP_ROOT = Path("/sys/fs/cgroup/memory")


@cache
def bwrap_works() -> bool:
    """bwrap can be installed yet unusable (no user namespaces): try it once."""
    if not os.access(BWRAP, os.X_OK):
        return False
    probe = [BWRAP, "--unshare-pid", "--ro-bind", "/", "/", "--proc", "/proc", "true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def own_memory_cgroup() -> Path | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return MEMORY_CGROUP_ROOT / path.lstrip("/")
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_alive(pid: int, started: float | None) -> bool:
    try:
        proc = psutil.Process(pid)
        if started is not None and abs(proc.create_time() - started) > 0.01:
            return False  # the pid was reused by another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


@register
@dataclass
class ProcessBackend(RuntimeBackend):
    name = "process"

    # Paths -------------------------------------------------------------------------------

    def pod_dir(self, pod_id: str) -> Path:
        return pod_data_dir(pod_id)

    def container_dir(self, pod_id: str) -> Path:
        return self.pod_dir(pod_id) / "container"

    def run_dir(self, pod_id: str) -> Path:
        return self.pod_dir(pod_id) / "run"

    def log_path(self, pod_id: str) -> Path:
        return self.pod_dir(pod_id) / "pod.log"

    def mount_source(self, mount: MountSpec) -> Path:
        if mount.kind == "network_volume":
            return network_volume_dir(mount.name)
        return self.pod_dir(mount.name) / "volume"

    # Starting ----------------------------------------------------------------------------

    def sandboxed(self) -> bool:
        mode = self.settings.get("sandbox", "auto")
        if mode == "none":
            return False
        if bwrap_works():
            return True
        if mode == "bwrap":
            raise RuntimeFailure("This machine requires bubblewrap, which is not usable here.")
        return False

    def start(self, spec: PodSpec) -> StartResult:
        sandboxed = self.sandboxed()
        self._prepare_dirs(spec)
        ports = tuple(PortMapping(p.port, free_port(), p.protocol) for p in spec.ports)
        env = self._env(spec, ports, sandboxed)
        cgroup = self._make_cgroup(spec)
        argv, cwd = self._argv(spec, sandboxed)
        if not sandboxed:
            log.warning("bubblewrap unavailable: pod %s runs as a plain subprocess", spec.pod_id)
            self._log_line(spec.pod_id, "warning: no sandbox (bubblewrap unavailable)")
        self._log_line(spec.pod_id, f"starting pod {spec.pod_id}")
        run = {
            "argv": argv,
            "env": env,
            "cwd": cwd,
            "log_path": str(self.log_path(spec.pod_id)),
            "state_dir": str(self.run_dir(spec.pod_id)),
            "cgroup": str(cgroup) if cgroup else None,
        }
        handle = self._launch(spec.pod_id, run)
        handle.update(sandboxed=sandboxed, cgroup=run["cgroup"], workdir=self._workdir(spec))
        return StartResult(handle=handle, ports=ports)

    def _prepare_dirs(self, spec: PodSpec) -> None:
        self.reset_container_disk(spec.pod_id)
        run_dir = self.run_dir(spec.pod_id)
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True, mode=0o700)
        for mount in spec.mounts:
            self.ensure_volume(mount)

    def _env(self, spec: PodSpec, ports: tuple[PortMapping, ...], sandboxed: bool) -> dict:
        env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
        env["HOME"] = CONTAINER_HOME if sandboxed else str(self.container_dir(spec.pod_id))
        env.update(spec.env)
        for mapping in ports:
            env[f"RUNPOD_TCP_PORT_{mapping.private_port}"] = str(mapping.public_port)
        http = [m for m in ports if m.protocol == "http"]
        if http:
            env["PORT"] = str(http[0].public_port)
        env["RUNPOD_PUBLIC_IP"] = "127.0.0.1"
        return env

    def _workdir(self, spec: PodSpec) -> str:
        return spec.mounts[0].target if spec.mounts else CONTAINER_HOME

    def _argv(self, spec: PodSpec, sandboxed: bool) -> tuple[list[str], str]:
        shell = ["/bin/sh", "-c", spec.command.strip() or IDLE_COMMAND]
        if not sandboxed:
            first = spec.mounts[0] if spec.mounts else None
            cwd = self.mount_source(first) if first else self.container_dir(spec.pod_id)
            return shell, str(cwd)
        return [*self._bwrap_args(spec), "--", *shell], "/"

    def _bwrap_args(self, spec: PodSpec) -> list[str]:
        args = [BWRAP, "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        args += ["--unshare-cgroup-try", "--hostname", spec.pod_id]
        args += ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(top):
                args += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                args += ["--ro-bind", top, top]
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run"]
        args += ["--bind", str(self.container_dir(spec.pod_id)), CONTAINER_HOME]
        for mount in spec.mounts:
            args += ["--bind", str(self.mount_source(mount)), mount.target]
        return [*args, "--chdir", self._workdir(spec)]

    def _make_cgroup(self, spec: PodSpec) -> Path | None:
        parent = self.settings.get("cgroup_parent") or own_memory_cgroup()
        if not parent or not Path(parent, "memory.limit_in_bytes").exists():
            return None
        path = Path(parent) / f"pod-{spec.pod_id}"
        try:
            path.mkdir(exist_ok=True)
            limit = max(spec.memory_gb, 1) * 1024**3
            (path / "memory.limit_in_bytes").write_text(str(limit))
        except OSError as error:
            log.warning("no memory cgroup for pod %s: %s", spec.pod_id, error)
            return None
        return path

    def _launch(self, pod_id: str, run: dict) -> dict:
        run_dir = self.run_dir(pod_id)
        run_file = run_dir / "run.json"
        run_file.write_text(json.dumps(run))
        run_file.chmod(0o600)  # it holds the pod's env, API key included
        subprocess.run([sys.executable, str(SHIM), str(run_file)], check=True, timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if (run_dir / "shim.json").exists():
                shim = json.loads((run_dir / "shim.json").read_text())
                started = psutil.Process(shim["shim_pid"]).create_time()
                return {"pod_id": pod_id, **shim, "shim_started": started}
            if (run_dir / "exit.json").exists():
                raise RuntimeFailure("The pod's command could not be started; see its log.")
            time.sleep(0.01)
        raise RuntimeFailure("The pod's supervisor did not report in within 10 seconds.")

    def _log_line(self, pod_id: str, text: str) -> None:
        path = self.log_path(pod_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as log_file:
            log_file.write(f"[console] {time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")

    # Inspecting --------------------------------------------------------------------------

    def _shim_alive(self, handle: dict) -> bool:
        if not handle.get("shim_pid"):
            return False
        return process_alive(handle["shim_pid"], handle.get("shim_started"))

    def _exit_code(self, handle: dict) -> int | None:
        exit_file = self.run_dir(handle["pod_id"]) / "exit.json"
        try:
            return json.loads(exit_file.read_text())["exit_code"]
        except (OSError, ValueError, KeyError):
            return None

    def poll(self, handle: dict) -> RuntimeState:
        if self._shim_alive(handle):
            return RuntimeState("running")
        code = self._exit_code(handle)
        return RuntimeState("lost") if code is None else RuntimeState("exited", code)

    def _all_pids(self, handle: dict) -> list[int]:
        cgroup = handle.get("cgroup")
        if cgroup and Path(cgroup, "cgroup.procs").exists():
            try:
                text = Path(cgroup, "cgroup.procs").read_text()
                return [int(pid) for pid in text.split()]
            except OSError:
                pass
        try:
            child = psutil.Process(handle["child_pid"])
            return [child.pid, *(p.pid for p in child.children(recursive=True))]
        except (psutil.Error, KeyError):
            return []

    def _payload_pids(self, handle: dict) -> list[int]:
        """The pod's own processes: bwrap's supervisor processes only pass signals on as a
        SIGKILL of everything, which would skip the grace period."""
        pids = []
        for pid in self._all_pids(handle):
            try:
                if psutil.Process(pid).exe() != BWRAP:
                    pids.append(pid)
            except psutil.Error:
                continue
        return pids

    def read_logs(self, handle: dict, *, cursor: str | None = None, limit: int = 65536) -> LogChunk:
        path = self.log_path(handle["pod_id"])
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return LogChunk("", "0")
        start = max(size - limit, 0) if cursor is None else int(cursor)
        if start > size:
            start = 0  # the log was replaced: start over
        with open(path, "rb") as log_file:
            log_file.seek(start)
            data = log_file.read(limit)
        return LogChunk(data.decode("utf-8", "replace"), str(start + len(data)))

    def usage(self, handle: dict) -> ResourceUsage:
        cpu, memory, count = 0.0, 0, 0
        for pid in self._all_pids(handle) if self._shim_alive(handle) else []:
            try:
                proc = psutil.Process(pid)
                times = proc.cpu_times()
                cpu += times.user + times.system
                memory += proc.memory_info().rss
                count += 1
            except psutil.Error:
                continue
        limit = None
        if handle.get("cgroup"):
            try:
                limit = int(Path(handle["cgroup"], "memory.limit_in_bytes").read_text())
            except (OSError, ValueError):
                limit = None
        pod_id = handle["pod_id"]
        return ResourceUsage(
            cpu_seconds=round(cpu, 2),
            memory_bytes=memory,
            memory_limit_bytes=limit,
            processes=count,
            volume_bytes=dir_bytes(self.pod_dir(pod_id) / "volume"),
            container_disk_bytes=dir_bytes(self.container_dir(pod_id)),
        )

    # Stopping ----------------------------------------------------------------------------

    def _signal(self, pids: list[int], sig: int) -> None:
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue

    def _wait_for_exit(self, handle: dict, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self._shim_alive(handle):
                return True
            time.sleep(0.05)
        return not self._shim_alive(handle)

    def stop(self, handle: dict, *, grace_seconds: float = 5.0) -> int | None:
        if not self._shim_alive(handle):
            return self._exit_code(handle)
        self._signal(self._payload_pids(handle) or [handle["child_pid"]], signal.SIGTERM)
        if not self._wait_for_exit(handle, grace_seconds):
            self._log_line(handle["pod_id"], f"still running after {grace_seconds:g}s: SIGKILL")
            self._signal([handle["child_pid"], *self._all_pids(handle)], signal.SIGKILL)
            self._wait_for_exit(handle, 10)
        return self._exit_code(handle)

    def open_shell(self, handle: dict, *, command: tuple[str, ...] = ("/bin/sh",)) -> ProcessPty:
        if not self._shim_alive(handle):
            raise RuntimeFailure("The pod is not running.")
        run = json.loads((self.run_dir(handle["pod_id"]) / "run.json").read_text())
        if handle.get("sandboxed"):
            target = self._namespace_init(handle)
            argv = ["nsenter", "-t", str(target), "-m", "-u", "-i", "-p", "-r"]
            argv += ["--", "/bin/sh", "-c", 'cd "$1" && shift && exec "$@"', "sh"]
            argv += [handle.get("workdir", CONTAINER_HOME), *command]
            return ProcessPty.spawn(argv, env=run["env"], cwd="/", cgroup=handle.get("cgroup"))
        return ProcessPty.spawn(list(command), env=run["env"], cwd=run["cwd"])

    def _namespace_init(self, handle: dict) -> int:
        """The pid-1 of the pod's namespaces: bwrap's child of the outer bwrap."""
        try:
            children = psutil.Process(handle["child_pid"]).children()
        except psutil.Error:
            children = []
        if not children:
            raise RuntimeFailure("The pod's namespaces are gone.")
        return children[0].pid

    # Storage -----------------------------------------------------------------------------

    def reset_container_disk(self, pod_id: str) -> None:
        container = self.container_dir(pod_id)
        shutil.rmtree(container, ignore_errors=True)
        container.mkdir(parents=True, exist_ok=True)

    def delete_pod_data(self, pod_id: str, *, volume_name: str | None) -> None:
        shutil.rmtree(self.pod_dir(pod_id), ignore_errors=True)
        if volume_name and volume_name != pod_id:
            shutil.rmtree(self.pod_dir(volume_name) / "volume", ignore_errors=True)

    def ensure_volume(self, mount: MountSpec) -> None:
        self.mount_source(mount).mkdir(parents=True, exist_ok=True)

    def delete_volume(self, name: str) -> None:
        shutil.rmtree(network_volume_dir(name), ignore_errors=True)
