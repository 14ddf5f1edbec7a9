"""The "process" backend: each pod is a real process tree on this host.

With bubblewrap (bwrap) usable and the console running as root, a pod is root inside its own
user namespace, mapped to an unprivileged host uid of its own (pods/runtime/sandbox.py), with no
capabilities, no_new_privs, a seccomp filter, private mount, pid, IPC, UTS, cgroup and network
namespaces, a generated /etc, read-only /usr, a private /tmp, its container disk at /root (HOME)
and its volume at the mount path; nothing else of the host. Its network is slirp4netns: outbound
traffic leaves through the host's stack, the host's loopback is unreachable, and each declared
port is forwarded from 127.0.0.1:<public port> on the host to the pod's own port, which the pod
binds (on 0.0.0.0) as given in $PORT; $RUNPOD_TCP_PORT_<port> names the public side. Memory, CPU
(a CFS quota per vCPU) and pids limits apply through cgroup v1 when the controllers are
writable. Without bwrap (or not as root) the command runs as a plain subprocess on the host's
network and the pod's log says so: that mode isolates nothing and is for development only.

Machine.runtime_settings understood here:
  "sandbox": "auto" (default: bwrap when it works) | "bwrap" (required) | "none"
  "cgroup_parent": a memory cgroup directory to create pod cgroups in (default: the console's
                   own memory cgroup, so pods stay inside whatever limits the console has)
  "pids_limit": processes and threads per pod (default 4096)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psutil
from django.conf import settings

from pods.runtime import sandbox
from pods.runtime.base import (
    WORKER_GATEWAY_TARGET,
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
    worker_gateway_dir,
)
from pods.runtime.pty import ProcessPty

log = logging.getLogger(__name__)

SHIM = Path(__file__).with_name("shim.py")
BWRAP = sandbox.BWRAP
CONTAINER_HOME = "/root"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IDLE_COMMAND = "echo '[console] no start command: the pod idles.'; exec sleep infinity"
CGROUP_ROOT = Path("/sys/fs/cgroup")
DEFAULT_PIDS_LIMIT = 4096
CFS_PERIOD_US = 100_000
SHARED_UMASK = 0o002  # pods sharing a network volume write group-writable files
PORT_TRIES = 20
# A connection to our own listener on loopback arrives at once, even under load; one the host's
# NAT sends elsewhere never does.
PORT_CHECK_SECONDS = 1.0


@cache
def bwrap_works() -> bool:
    """bwrap can be installed yet unusable (no user namespaces): try it once."""
    if not os.access(BWRAP, os.X_OK):
        return False
    probe = [BWRAP, "--unshare-all", "--unshare-user", "--disable-userns"]
    probe += [*sandbox.system_dirs(), "--proc", "/proc", "true"]
    try:
        run = subprocess.run(probe, capture_output=True, timeout=10, env=sandbox.HOST_ENV)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return run.returncode == 0


def own_cgroup(controller: str) -> Path | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return CGROUP_ROOT / controller / path.lstrip("/")
    return None


def free_port() -> int:
    """A host port for one of a pod's forwards: free to bind, and one whose connections arrive
    at what binds it. A free port on 127.0.0.1 may still be taken by the host's NAT: Podman's
    port publishing (CNI portmap) adds `DNAT 127.0.0.1:<port> -> <container>` rules, and leaves
    them behind when a container's network teardown fails. A forward on such a port never sees
    its traffic: connections go to the container, or fail (EHOSTUNREACH once its address is
    gone), while slirp4netns listens unreached."""
    for _ in range(PORT_TRIES):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            if reaches(server):
                return server.getsockname()[1]
    raise RuntimeFailure(
        f"{PORT_TRIES} free host ports in a row were redirected elsewhere: check the host's "
        "NAT rules (iptables -t nat -S) for stale DNAT rules on 127.0.0.1."
    )


def reaches(server: socket.socket) -> bool:
    """Whether a connection to the listening `server`'s address arrives at `server` itself."""
    server.settimeout(PORT_CHECK_SECONDS)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
        # A reset rather than a FIN: no TIME_WAIT is left on either end of the probe.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.setblocking(False)
        client.connect_ex(server.getsockname())
        try:
            conn, peer = server.accept()
        except OSError:  # TimeoutError included: the connection went elsewhere
            return False
        with conn:
            ours = peer == client.getsockname()
            client.close()  # first, so the reset is what ends the probe
        return ours


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


def traversable_dir(path: Path) -> Path:
    """A directory pod uids may pass through (bubblewrap opens mount sources by path as the
    pod's uid) but not list: rwx--x--x."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o711)
    return path


def check_traversable(path: Path) -> None:
    for parent in path.parents:
        if not parent.stat().st_mode & 0o001:
            raise RuntimeFailure(
                f"Pod uids cannot reach {path}: {parent} needs o+x (chmod o+x {parent})."
            )


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

    def etc_dir(self, pod_id: str) -> Path:
        return self.pod_dir(pod_id) / "etc"

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
        if bwrap_works() and os.geteuid() == 0:
            return True
        if mode == "bwrap":
            raise RuntimeFailure(
                "This machine requires the sandbox: bubblewrap and a console running as root."
            )
        return False

    def host_ids(self, spec: PodSpec) -> tuple[int, int]:
        """The pod's host uid, and its gid: a network volume's group when it mounts one."""
        uid = sandbox.claim_id(f"pod-{spec.pod_id}")
        shared = [m for m in spec.mounts if m.kind == "network_volume"]
        return uid, sandbox.claim_id(f"volume-{shared[0].name}") if shared else uid

    def start(self, spec: PodSpec) -> StartResult:
        sandboxed = self.sandboxed()
        uid, gid = self.host_ids(spec) if sandboxed else (os.geteuid(), os.getegid())
        self._prepare_dirs(spec, uid, gid)
        ports = tuple(PortMapping(p.port, free_port(), p.protocol) for p in spec.ports)
        env = self._env(spec, ports, sandboxed)
        cgroups = self._make_cgroups(spec)
        if not sandboxed:
            log.warning("no sandbox: pod %s runs as a plain subprocess", spec.pod_id)
            self._log_line(spec.pod_id, "warning: no sandbox (bubblewrap or root unavailable)")
        self._log_line(spec.pod_id, f"starting pod {spec.pod_id}")
        shared = any(m.kind == "network_volume" for m in spec.mounts)
        run = {
            "argv": ["/bin/sh", "-c", spec.command.strip() or IDLE_COMMAND],
            "env": env,
            "cwd": self._plain_cwd(spec),
            "log_path": str(self.log_path(spec.pod_id)),
            "state_dir": str(self.run_dir(spec.pod_id)),
            "cgroups": [str(path) for path in cgroups.values()],
            "umask": SHARED_UMASK if shared else 0o022,
            "sandbox": self._sandbox_run(spec, env, ports, uid, gid) if sandboxed else None,
        }
        handle = self._launch(spec.pod_id, run)
        memory = cgroups.get("memory")
        handle.update(
            sandboxed=sandboxed,
            cgroup=str(memory) if memory else None,
            cgroups=run["cgroups"],
            workdir=self._workdir(spec),
            volume_dir=str(self.mount_source(spec.mounts[0])) if spec.mounts else None,
            uid=uid,
            gid=gid,
            umask=run["umask"],
        )
        return StartResult(handle=handle, ports=ports)

    def _prepare_dirs(self, spec: PodSpec, uid: int, gid: int) -> None:
        data = Path(settings.DATA_DIR)
        data.chmod((data.stat().st_mode & 0o700) | 0o011)
        check_traversable(data)
        traversable_dir(self.pod_dir(spec.pod_id).parent)
        traversable_dir(self.pod_dir(spec.pod_id))
        self.reset_container_disk(spec.pod_id)
        os.chown(self.container_dir(spec.pod_id), uid, gid)
        run_dir = self.run_dir(spec.pod_id)
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True, mode=0o700)
        sandbox.write_etc(self.etc_dir(spec.pod_id), spec.pod_id)
        for mount in spec.mounts:
            self.ensure_volume(mount)
            source = self.mount_source(mount)
            if mount.kind == "network_volume":
                os.chown(source, os.geteuid(), gid)  # root's, unless the console is not root
                source.chmod(0o2770)  # the team's pods share it through its group
            else:
                sandbox.own_tree(source, uid, gid)
                source.chmod(0o700)

    def _env(self, spec: PodSpec, ports: tuple[PortMapping, ...], sandboxed: bool) -> dict:
        env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
        env["HOME"] = CONTAINER_HOME if sandboxed else str(self.container_dir(spec.pod_id))
        env.update(spec.env)
        for mapping in ports:
            env[f"RUNPOD_TCP_PORT_{mapping.private_port}"] = str(mapping.public_port)
        http = [m for m in ports if m.protocol == "http"]
        if http:
            # RunPod's meaning: the port the process binds. Without a network namespace of its
            # own that can only be the host port it was given.
            env["PORT"] = str(http[0].private_port if sandboxed else http[0].public_port)
        env["RUNPOD_PUBLIC_IP"] = "127.0.0.1"
        return env

    def _workdir(self, spec: PodSpec) -> str:
        return spec.mounts[0].target if spec.mounts else CONTAINER_HOME

    def _plain_cwd(self, spec: PodSpec) -> str:
        first = spec.mounts[0] if spec.mounts else None
        return str(self.mount_source(first) if first else self.container_dir(spec.pod_id))

    def _sandbox_run(self, spec: PodSpec, env: dict, ports, uid: int, gid: int) -> dict:
        run_dir = self.run_dir(spec.pod_id)
        seccomp = run_dir / "seccomp.bpf"
        seccomp.write_bytes(sandbox.seccomp_filter())
        binds = [[str(self.etc_dir(spec.pod_id)), "/etc", "ro"]]
        binds += [[host, target, "path"] for host, target in sandbox.etc_binds()]
        binds.append([str(self.container_dir(spec.pod_id)), CONTAINER_HOME, "rw"])
        binds += [[str(self.mount_source(m)), m.target, "rw"] for m in spec.mounts]
        if spec.worker_gateway:  # a serverless worker reaches the console only through it
            binds.append([str(worker_gateway_dir()), WORKER_GATEWAY_TARGET, "ro"])
        return {
            "uid": uid,
            "gid": gid,
            "options": sandbox.bwrap_options(spec.pod_id, env, self._workdir(spec)),
            "binds": binds,
            "seccomp": str(seccomp),
            "api_socket": str(run_dir / "slirp4netns.sock"),
            "ports": [[m.public_port, m.private_port] for m in ports],
        }

    def _make_cgroups(self, spec: PodSpec) -> dict[str, Path]:
        """Memory, CPU and pids limits: each controller that is writable here."""
        limits = {
            "memory": {"memory.limit_in_bytes": max(spec.memory_gb, 1) * 1024**3},
            "cpu": {
                "cpu.cfs_period_us": CFS_PERIOD_US,
                "cpu.cfs_quota_us": max(spec.vcpu, 1) * CFS_PERIOD_US,
            },
            "pids": {"pids.max": int(self.settings.get("pids_limit", DEFAULT_PIDS_LIMIT))},
        }
        made = {}
        for controller, values in limits.items():
            path = self._make_cgroup(self._cgroup_parent(controller), spec.pod_id, values)
            if path:
                made[controller] = path
        return made

    def _cgroup_parent(self, controller: str) -> Path | None:
        if controller == "memory" and self.settings.get("cgroup_parent"):
            return Path(self.settings["cgroup_parent"])
        return own_cgroup(controller)

    def _make_cgroup(self, parent: Path | None, pod_id: str, values: dict) -> Path | None:
        if not parent or not (parent / "cgroup.procs").exists():
            return None  # controller not mounted here (the limit files exist only below root)
        path = parent / f"pod-{pod_id}"
        try:
            path.mkdir(exist_ok=True)
            for name, value in values.items():
                (path / name).write_text(str(value))
        except OSError as error:
            log.warning("no %s cgroup for pod %s: %s", parent.name, pod_id, error)
            return None
        return path

    def _launch(self, pod_id: str, run: dict) -> dict:
        run_dir = self.run_dir(pod_id)
        run_file = run_dir / "run.json"
        run_file.write_text(json.dumps(run))
        run_file.chmod(0o600)  # it holds the pod's env, API key included
        shim = [sys.executable, "-I", str(SHIM), str(run_file)]
        subprocess.run(shim, check=True, timeout=10, env=sandbox.HOST_ENV, cwd="/")  # noqa: S603
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if (run_dir / "shim.json").exists():
                shim = json.loads((run_dir / "shim.json").read_text())
                started = psutil.Process(shim["shim_pid"]).create_time()
                return {"pod_id": pod_id, **shim, "shim_started": started}
            if (run_dir / "exit.json").exists():
                error = json.loads((run_dir / "exit.json").read_text()).get("error", "see its log")
                raise RuntimeFailure(f"The pod's command could not be started: {error}.")
            time.sleep(0.005)
        raise RuntimeFailure("The pod's supervisor did not report in within 15 seconds.")

    def _log_line(self, pod_id: str, text: str) -> None:
        path = self.log_path(pod_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # root's to read
        with open(fd, "a", encoding="utf-8") as log_file:
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
            # The mounted volume: the pod's own, or the network volume (older handles: own).
            volume_bytes=dir_bytes(
                Path(handle.get("volume_dir") or self.pod_dir(pod_id) / "volume")
            ),
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
        cgroups = handle.get("cgroups") or []
        if not handle.get("sandboxed"):
            return ProcessPty.spawn(list(command), env=run["env"], cwd=run["cwd"])
        target = handle.get("ns_pid")
        if not target:
            raise RuntimeFailure("The pod predates the sandbox: restart it to open a terminal.")
        env = {"TERM": "xterm-256color", **run["env"]}
        env_fd = sandbox.memfd(b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items()))
        seccomp_fd = os.open(self.run_dir(handle["pod_id"]) / "seccomp.bpf", os.O_RDONLY)
        workdir, umask = handle.get("workdir", CONTAINER_HOME), handle.get("umask", 0o022)
        argv = sandbox.terminal_argv(target, env_fd, seccomp_fd, umask, workdir, command)
        try:
            return ProcessPty.spawn(
                argv, env=sandbox.HOST_ENV, cwd="/", cgroups=cgroups, pass_fds=(env_fd, seccomp_fd)
            )
        finally:
            os.close(env_fd)
            os.close(seccomp_fd)

    # Storage -----------------------------------------------------------------------------

    def reset_container_disk(self, pod_id: str) -> None:
        container = self.container_dir(pod_id)
        shutil.rmtree(container, ignore_errors=True)
        container.mkdir(parents=True, exist_ok=True)

    def delete_pod_data(self, pod_id: str, *, volume_name: str | None) -> None:
        shutil.rmtree(self.pod_dir(pod_id), ignore_errors=True)
        if volume_name and volume_name != pod_id:
            shutil.rmtree(self.pod_dir(volume_name) / "volume", ignore_errors=True)
        for controller in ("memory", "cpu", "pids"):  # left behind when its shim was killed
            parent = self._cgroup_parent(controller)
            if parent:
                with contextlib.suppress(OSError):
                    (parent / f"pod-{pod_id}").rmdir()

    def ensure_volume(self, mount: MountSpec) -> None:
        traversable_dir(self.mount_source(mount).parent)
        self.mount_source(mount).mkdir(parents=True, exist_ok=True)

    def delete_volume(self, name: str) -> None:
        shutil.rmtree(network_volume_dir(name), ignore_errors=True)
        sandbox.release_id(f"volume-{name}")
