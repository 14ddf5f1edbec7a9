"""The "docker" backend: each pod is a container on a Docker Engine (or Podman's Docker API).

A start always creates a fresh container from the image (so the container disk starts empty)
named `<prefix>pod-<pod id>`; a stop keeps it until the next start or reset, which removes it.
The pod volume and network volumes are named volumes (`<prefix>vol-<name>`, `<prefix>nv-<name>`)
that outlive the container. Declared ports are published on the engine host at random host
ports. The container runs under an init process (docker-init / catatonit) so that SIGTERM
reaches the start command, which runs as `/bin/sh -c <command>`; an empty command keeps the
image's own entrypoint and command.

Logs come from the engine with timestamps; a cursor is "<unix second>:<entries already read in
that second>", because engines print timestamps at different precisions (Podman: seconds) and
`since` takes whole seconds. Before a container is removed its log is appended to
DATA_DIR/pods/<id>/container.log, so a stopped pod's output stays readable.

Machine.runtime_settings understood here:
  "base_url":        "unix:///var/run/docker.sock" (default) or "tcp://host:2376"
  "tls_ca_cert", "tls_client_cert", "tls_client_key": paths of PEM files on the console host
  "tls_verify":      verify the engine's certificate (default true when TLS is used)
  "timeout":         seconds for one engine request (default 60)
  "name_prefix":     prefix of container and volume names (default "console-")
  "host_ip":         address ports are published on (default "127.0.0.1")
  "public_host":     address users reach published ports at (default: host_ip, or the tcp
                     URL's host when host_ip is 0.0.0.0)
  "disk_limit":      "auto" (default: a container disk quota when the storage driver has one),
                     "required" (refuse to start without one) or "off"
  "init":            run an init process as pid 1 (default true)
  "registry_auth":   {"username", "password", "registry"} used when the pod brings none
  "pids_limit":      processes and threads one pod may have (default 4096)
  "network":         the engine network pods join (default "bridge"; a network of your own,
                     e.g. one with inter-container traffic off); never "host" or another
                     container's or namespace's
  "runtime":         the engine's OCI runtime for pods, e.g. "nvidia" (GPU hosts whose daemon
                     has no default runtime set) or "runsc" (gVisor); default: the engine's
  "userns_mode":     "" (default: the engine's own), "remap" (refuse to start pods unless the
                     Docker daemon runs with userns-remap), or a Podman mode such as "auto";
                     never "host" (it switches a daemon's remapping off) or "ns:<path>"

Whatever the settings, a pod container is never privileged, holds Docker's default capabilities
minus NET_RAW, runs with no-new-privileges, a pids limit, private pid, ipc and cgroup
namespaces, no host devices (GPUs only as device requests) and no bind mount of a host path.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container, _create_container_args
from docker.tls import TLSConfig
from docker.types import DeviceRequest, Mount

from pods.runtime.base import (
    WORKER_GATEWAY_TARGET,
    LogChunk,
    MountSpec,
    PodSpec,
    PortMapping,
    PtySession,
    ResourceUsage,
    RuntimeBackend,
    RuntimeFailure,
    RuntimeState,
    StartResult,
    pod_data_dir,
    register,
    worker_gateway_dir,
)

log = logging.getLogger(__name__)

GIB = 1024**3
LOG_TAIL_ENTRIES = 5000
ARCHIVE_MAX_BYTES = 4 * 1024**2
RUNNING_STATES = ("running", "restarting", "paused")
EXITED_STATES = ("exited", "dead")
TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d) ")
TLS_SETTINGS = ("tls_ca_cert", "tls_client_cert", "tls_client_key", "tls_verify")
CLIENTS: dict[tuple, docker.DockerClient] = {}
# Engines without per-container disk quotas (overlay off xfs, vfs): learnt once per process.
NO_DISK_QUOTA: set[str] = set()
# Engines seen running with user-namespace remapping (only the positive answer is kept, so an
# operator who turns it on needs no restart).
REMAPPED: set[str] = set()
# Docker's default capability set (moby's oci/caps/defaults.go) without NET_RAW, which lets a
# pod forge packets on the bridge (ARP and DNS spoofing of neighbours). Granted in full after
# dropping ALL rather than by dropping NET_RAW alone: engines differ in their defaults (Podman
# 4 leaves out MKNOD and AUDIT_WRITE, a daemon can be configured with more), and this way a pod
# holds the same set on every engine, visible in the create request.
POD_CAPABILITIES = (
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
)
DEFAULT_PIDS_LIMIT = 4096
# Network modes that would put a pod in the host's or another container's network namespace.
SHARED_NETWORKS = ("host", "container:", "ns:")


@contextlib.contextmanager
def engine_errors(action: str) -> Iterator[None]:
    """Engine and connection errors become RuntimeFailure with what we were doing."""
    try:
        yield
    except APIError as error:
        raise RuntimeFailure(f"Could not {action}: {error.explanation or error}") from error
    except (DockerException, requests.RequestException, OSError) as error:
        raise RuntimeFailure(f"Could not {action}: {error}") from error


# Logs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogEntry:
    second: int
    text: str


def parse_log(raw: bytes | str) -> list[LogEntry]:
    """Split `docker logs --timestamps` output into entries; a line without a timestamp
    continues the entry before it (an engine splits long lines, Podman marks partial ones)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    entries: list[LogEntry] = []
    for line in text.splitlines(keepends=True):
        match = TIMESTAMP.match(line)
        if match:
            second = int(datetime.fromisoformat(match[1] + match[2]).timestamp())
            entries.append(LogEntry(second, line[match.end() :]))
        elif entries:
            entries[-1] = LogEntry(entries[-1].second, entries[-1].text + line)
    return entries


def parse_cursor(cursor: str | None) -> tuple[int, int] | None:
    try:
        second, seen = (cursor or "").split(":")
        return int(second), int(seen)
    except ValueError:
        return None


def entries_after(entries: list[LogEntry], second: int, seen: int) -> list[LogEntry]:
    """The entries after a cursor: later seconds, and in its second those past the first `seen`."""
    fresh, in_second = [], 0
    for entry in entries:
        if entry.second < second:
            continue
        if entry.second == second:
            in_second += 1
            if in_second <= seen:
                continue
        fresh.append(entry)
    return fresh


def take_bytes(entries: list[LogEntry], limit: int, *, newest: bool) -> list[LogEntry]:
    """Whole entries up to `limit` bytes (at least one), from the start or from the end."""
    ordered = reversed(entries) if newest else iter(entries)
    taken, size = [], 0
    for entry in ordered:
        size += len(entry.text.encode())
        if taken and size > limit:
            break
        taken.append(entry)
    return taken[::-1] if newest else taken


def next_cursor(cursor: tuple[int, int], taken: list[LogEntry]) -> str:
    second, seen = cursor
    if not taken:
        return f"{second}:{seen}"
    last = taken[-1].second
    count = sum(1 for entry in taken if entry.second == last)
    return f"{last}:{count + (seen if last == second else 0)}"


# The web terminal's shell --------------------------------------------------------------------


class DockerExecPty(PtySession):
    """A TTY exec in the container, spoken to over the engine's hijacked HTTP connection.

    An engine keeps an exec running when its connection closes, so the shell writes its pid to
    `pid_file` first and close() ends it (SIGHUP, then SIGKILL) with a second exec."""

    def __init__(self, api, container_id: str, exec_id: str, sock, pid_file: str) -> None:
        self.api = api
        self.container_id = container_id
        self.exec_id = exec_id
        self.response = sock  # keeps the HTTP response (and so the socket) alive
        self.sock: socket.socket = getattr(sock, "_sock", sock)
        self.pid_file = pid_file
        self.eof = False
        self.ended = False
        self.checked_at = 0.0

    def read(self, max_bytes: int = 65536, timeout: float = 0.1) -> bytes:
        if self.eof:
            return b""
        # A TLS socket may hold decrypted bytes that select() cannot see.
        buffered = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
        if not buffered and not select.select([self.sock], [], [], timeout)[0]:
            return b""
        try:
            data = self.sock.recv(max_bytes)
        except OSError:
            data = b""
        self.eof = not data
        return data

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def resize(self, cols: int, rows: int) -> None:
        with engine_errors("resize the terminal"):
            self.api.exec_resize(self.exec_id, height=rows, width=cols)

    def _running(self) -> bool:
        try:
            return bool(self.api.exec_inspect(self.exec_id).get("Running"))
        except (DockerException, requests.RequestException):
            return False

    @property
    def closed(self) -> bool:
        """EOF on the socket, or (asked of the engine at most once a second) the shell ended."""
        if self.eof or self.ended or self.sock.fileno() < 0:
            return True
        if time.monotonic() - self.checked_at >= 1.0:
            self.checked_at = time.monotonic()
            self.ended = not self._running()
        return self.ended

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
        self.eof = True
        if not self._running():
            return
        script = (
            f'p=$(cat {self.pid_file}) && kill -HUP "$p"; sleep 0.5; '
            f'kill -0 "$p" 2>/dev/null && kill -KILL "$p"; rm -f {self.pid_file}'
        )
        with contextlib.suppress(DockerException, requests.RequestException):
            exec_id = self.api.exec_create(self.container_id, ["/bin/sh", "-c", script])["Id"]
            self.api.exec_start(exec_id)


# The backend ---------------------------------------------------------------------------------


@register
@dataclass
class DockerBackend(RuntimeBackend):
    name = "docker"
    gpu_devices = True  # as device requests (the NVIDIA container toolkit)

    # The engine ------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.settings.get("base_url") or "unix:///var/run/docker.sock"

    def _tls(self) -> TLSConfig | bool:
        ca = self.settings.get("tls_ca_cert")
        cert, key = self.settings.get("tls_client_cert"), self.settings.get("tls_client_key")
        if not (ca or cert):
            return False
        verify = bool(self.settings.get("tls_verify", True))
        try:
            return TLSConfig(client_cert=(cert, key) if cert else None, ca_cert=ca, verify=verify)
        except DockerException as error:  # TLSParameterError: a file is missing
            raise RuntimeFailure(f"The machine's TLS settings are unusable: {error}") from error

    @property
    def client(self) -> docker.DockerClient:
        """One client per engine, process and thread: a backend is built for every call, and
        a new client costs a connection and a version round trip (requests' sessions are not
        meant to be shared between threads)."""
        tls = tuple(self.settings.get(key) for key in TLS_SETTINGS)
        timeout = int(self.settings.get("timeout", 60))
        key = (os.getpid(), threading.get_ident(), self.base_url, tls, timeout)
        if key not in CLIENTS:
            with engine_errors(f"connect to the container engine at {self.base_url}"):
                CLIENTS[key] = docker.DockerClient(
                    base_url=self.base_url, tls=self._tls(), timeout=timeout
                )
        return CLIENTS[key]

    def test_connection(self) -> dict:
        """What the admin's "test connection" shows: the engine's version, or RuntimeFailure."""
        with engine_errors(f"reach the container engine at {self.base_url}"):
            version = self.client.version()
        return {
            "engine": version.get("Platform", {}).get("Name", ""),
            "version": version.get("Version", ""),
            "api_version": version.get("ApiVersion", ""),
            "os": version.get("Os", ""),
            "arch": version.get("Arch", ""),
        }

    # Names -----------------------------------------------------------------------------------

    @property
    def prefix(self) -> str:
        return self.settings.get("name_prefix", "console-")

    def container_name(self, pod_id: str) -> str:
        return f"{self.prefix}pod-{pod_id}"

    def volume_name(self, mount: MountSpec) -> str:
        kind = "nv" if mount.kind == "network_volume" else "vol"
        return f"{self.prefix}{kind}-{mount.name}"

    def _container(self, pod_id: str) -> Container | None:
        with engine_errors(f"look up pod {pod_id}'s container"):
            try:
                return self.client.containers.get(self.container_name(pod_id))
            except NotFound:
                return None

    # Starting --------------------------------------------------------------------------------

    def prepare_image(self, spec: PodSpec) -> None:
        """Pull the image unless the engine has it (slow for big images: callers may run it
        before start, outside any lock)."""
        with engine_errors(f"inspect image {spec.image}"):
            try:
                self.client.images.get(spec.image)
                return
            except ImageNotFound:
                pass
        auth = spec.registry_auth or self.settings.get("registry_auth")
        config = None
        if auth:
            config = {"username": auth.get("username", ""), "password": auth.get("password", "")}
            if auth.get("registry"):
                config["serveraddress"] = auth["registry"]
        log.info("pulling %s on %s", spec.image, self.base_url)
        with engine_errors(f"pull image {spec.image}"):
            self.client.images.pull(spec.image, auth_config=config)

    def start(self, spec: PodSpec) -> StartResult:
        self.reset_container_disk(spec.pod_id)
        self.prepare_image(spec)
        for mount in spec.mounts:
            self.ensure_volume(mount)
        container, disk_limited = self._create(spec)
        with engine_errors(f"start pod {spec.pod_id}"):
            try:
                container.start()
            except APIError:
                container.remove(force=True)
                raise
            container.reload()
        handle = {
            "pod_id": spec.pod_id,
            "container": container.name,
            "container_id": container.id,
            "workdir": spec.working_dir,
            "volumes": [m.target for m in spec.mounts if m.kind == "volume"],
            "disk_limited": disk_limited,
        }
        return StartResult(handle=handle, ports=self._port_mappings(container, spec))

    def _create(self, spec: PodSpec) -> tuple[Container, bool]:
        """Create the container with a disk quota when asked and possible; an engine that
        cannot do quotas says so on create, and we note it and go on without one."""
        mode = self.settings.get("disk_limit", "auto")
        kwargs = self._create_kwargs(spec)
        userns = self._userns_mode()
        if mode != "off" and self.base_url not in NO_DISK_QUOTA:
            try:
                options = {"size": f"{spec.container_disk_gb}G"}
                return self._create_container({**kwargs, "storage_opt": options}, userns), True
            except APIError as error:
                if "storage" not in str(error.explanation).lower() or mode == "required":
                    message = f"Could not create the container: {error.explanation}"
                    raise RuntimeFailure(message) from error
                log.warning("no container disk quota on %s: %s", self.base_url, error.explanation)
                NO_DISK_QUOTA.add(self.base_url)
            except (DockerException, requests.RequestException) as error:
                raise RuntimeFailure(f"Could not create the container: {error}") from error
        if mode == "required":
            raise RuntimeFailure("This machine's engine cannot limit the container disk.")
        with engine_errors("create the container"):
            return self._create_container(kwargs, userns), False

    def _create_container(self, kwargs: dict, userns: str) -> Container:
        """containers.create(**kwargs), plus a UsernsMode: the SDK accepts only Docker's
        "host" there, while Podman takes per-container modes such as "auto"."""
        args = _create_container_args({**kwargs, "version": self.client.api._version})
        if userns:
            args["host_config"]["UsernsMode"] = userns
        return self.client.containers.get(self.client.api.create_container(**args)["Id"])

    def _create_kwargs(self, spec: PodSpec) -> dict:
        kwargs = {
            "image": spec.image,
            "name": self.container_name(spec.pod_id),
            "hostname": spec.pod_id[:63],
            "environment": self._env(spec),
            "labels": {"console.pod": spec.pod_id},
            "ports": {f"{p.port}/tcp": (self.host_ip, None) for p in spec.ports},
            "mounts": [Mount(m.target, self.volume_name(m), type="volume") for m in spec.mounts],
            "working_dir": spec.working_dir or None,
            "mem_limit": max(spec.memory_gb, 1) * GIB,
            "memswap_limit": max(spec.memory_gb, 1) * GIB,  # no swap beyond the memory limit
            "nano_cpus": max(spec.vcpu, 1) * 1_000_000_000,
            "init": bool(self.settings.get("init", True)),
            "device_requests": self._device_requests(spec),
            **self._hardening(),
        }
        if spec.worker_gateway:
            # A serverless worker's only way to the console: the gateway's socket directory,
            # read-only. A bind of this host's path, so it needs an engine on this host.
            source = str(worker_gateway_dir())
            gateway = Mount(WORKER_GATEWAY_TARGET, source, type="bind", read_only=True)
            kwargs["mounts"].append(gateway)
        if spec.command.strip():
            kwargs["entrypoint"] = ["/bin/sh", "-c"]
            kwargs["command"] = [spec.command]
        return kwargs

    def _hardening(self) -> dict:
        """What confines every pod, whatever the image asks: the pod is hostile code."""
        hardening = {
            "privileged": False,
            "cap_drop": ["ALL"],
            "cap_add": list(POD_CAPABILITIES),
            "security_opt": ["no-new-privileges"],
            "pids_limit": self._pids_limit(),
            "network_mode": self._network(),
            "ipc_mode": "private",
            "cgroupns": "private",
        }
        if self.settings.get("runtime"):
            hardening["runtime"] = str(self.settings["runtime"])
        return hardening

    def _pids_limit(self) -> int:
        limit = self.settings.get("pids_limit", DEFAULT_PIDS_LIMIT)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise RuntimeFailure(f"The machine's pids_limit must be a positive number: {limit!r}")
        return limit

    def _network(self) -> str:
        network = str(self.settings.get("network") or "bridge")
        if network.startswith(SHARED_NETWORKS):
            message = f"The machine's network {network!r} would share a namespace with the pod."
            raise RuntimeFailure(message)
        return network

    def _userns_mode(self) -> str:
        """The UsernsMode to send ("" sends none); "remap" checks the daemon does remap."""
        mode = str(self.settings.get("userns_mode") or "")
        if mode == "host" or mode.startswith("ns:"):  # ns:/proc/1/ns/user is the host's too
            raise RuntimeFailure(
                f"userns_mode {mode!r} would run pods in the host's user namespace."
            )
        if mode != "remap":
            return mode
        if self.base_url not in REMAPPED:
            with engine_errors(f"ask the engine at {self.base_url} about user namespaces"):
                options = self.client.info().get("SecurityOptions") or []
            if not any(option.startswith("name=userns") for option in options):
                raise RuntimeFailure(
                    "This machine requires user-namespace remapping, but its engine does not "
                    'run with it: set "userns-remap" in the Docker daemon\'s daemon.json.'
                )
            REMAPPED.add(self.base_url)
        return ""

    def _device_requests(self, spec: PodSpec) -> list[DeviceRequest] | None:
        """`--gpus`: the placement's device ids when it chose them, else a count; an engine
        refuses both at once."""
        if spec.gpu_count <= 0:
            return None
        if spec.gpu_device_ids:
            ids = list(spec.gpu_device_ids)
            return [DeviceRequest(driver="nvidia", device_ids=ids, capabilities=[["gpu"]])]
        return [DeviceRequest(driver="nvidia", count=spec.gpu_count, capabilities=[["gpu"]])]

    def _env(self, spec: PodSpec) -> dict[str, str]:
        env = {"RUNPOD_PUBLIC_IP": self.public_host}
        http = [p for p in spec.ports if p.protocol == "http"]
        if http:
            env["PORT"] = str(http[0].port)  # inside the container the app serves its own port
        env.update(spec.env)
        return env

    @property
    def host_ip(self) -> str:
        return self.settings.get("host_ip", "127.0.0.1")

    @property
    def public_host(self) -> str:
        if self.settings.get("public_host"):
            return self.settings["public_host"]
        if self.host_ip not in ("0.0.0.0", "::", ""):  # noqa: S104 - comparing, not binding
            return self.host_ip
        return urlparse(self.base_url).hostname or "127.0.0.1"

    def _port_mappings(self, container: Container, spec: PodSpec) -> tuple[PortMapping, ...]:
        published = container.attrs["NetworkSettings"]["Ports"] or {}
        mappings = []
        for port in spec.ports:
            bindings = published.get(f"{port.port}/tcp") or []
            if not bindings:
                raise RuntimeFailure(f"The engine did not publish port {port.port}.")
            public = int(bindings[0]["HostPort"])
            mappings.append(PortMapping(port.port, public, port.protocol, self.public_host))
        return tuple(mappings)

    # Inspecting ------------------------------------------------------------------------------

    def poll(self, handle: dict) -> RuntimeState:
        container = self._container(handle["pod_id"])
        if container is None:
            return RuntimeState("lost")
        state = container.attrs["State"]
        if state["Status"] in RUNNING_STATES:
            return RuntimeState("running")
        if state["Status"] in EXITED_STATES:
            return RuntimeState("exited", state.get("ExitCode"))
        return RuntimeState("lost")  # "created": it never ran

    def read_logs(self, handle: dict, *, cursor: str | None = None, limit: int = 65536) -> LogChunk:
        pod_id = handle["pod_id"]
        after = parse_cursor(cursor)
        since = after[0] if after else None
        entries = self._archived_log(pod_id) + self._live_log(pod_id, since)
        if after is None:
            taken = take_bytes(entries, limit, newest=True)
            last = taken[-1].second if taken else 0
            cursor = f"{last}:{sum(1 for entry in entries if entry.second == last)}"
        else:
            taken = take_bytes(entries_after(entries, *after), limit, newest=False)
            cursor = next_cursor(after, taken)
        return LogChunk("".join(entry.text for entry in taken), cursor)

    def _live_log(self, pod_id: str, since: int | None) -> list[LogEntry]:
        container = self._container(pod_id)
        if container is None:
            return []
        with engine_errors(f"read pod {pod_id}'s log"):
            if since:
                raw = container.logs(timestamps=True, since=since)
            else:
                raw = container.logs(timestamps=True, tail=LOG_TAIL_ENTRIES)
        return parse_log(raw)

    def archive_path(self, pod_id: str) -> Path:
        return pod_data_dir(pod_id) / "container.log"

    def _archived_log(self, pod_id: str) -> list[LogEntry]:
        try:
            return parse_log(self.archive_path(pod_id).read_bytes())
        except FileNotFoundError:
            return []

    def _archive_log(self, container: Container, pod_id: str) -> None:
        """Keep the output of a container about to be removed (the newest 2-4 MB)."""
        try:
            raw = container.logs(timestamps=True, tail=LOG_TAIL_ENTRIES)
        except (DockerException, requests.RequestException):
            log.warning("could not save the log of pod %s", pod_id, exc_info=True)
            return
        path = self.archive_path(pod_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as archive:
            archive.write(raw if raw.endswith(b"\n") or not raw else raw + b"\n")
        if path.stat().st_size > ARCHIVE_MAX_BYTES:
            data = path.read_bytes()[-ARCHIVE_MAX_BYTES // 2 :]
            path.write_bytes(data[data.find(b"\n") + 1 :])

    def usage(self, handle: dict) -> ResourceUsage:
        container = self._container(handle["pod_id"])
        if container is None or container.attrs["State"]["Status"] not in RUNNING_STATES:
            return ResourceUsage()
        with engine_errors(f"read pod {handle['pod_id']}'s usage"):
            stats = container.stats(stream=False, one_shot=True)
            rows = self.client.api.containers(all=True, size=True, filters={"id": container.id})
        memory = stats.get("memory_stats") or {}
        detail = memory.get("stats") or {}
        # What the container really holds, as `docker stats` shows it: page cache excluded.
        cache = detail.get("inactive_file", detail.get("total_inactive_file", 0))
        return ResourceUsage(
            cpu_seconds=round(stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9, 2),
            memory_bytes=max(int(memory.get("usage", 0)) - int(cache), 0),
            memory_limit_bytes=memory.get("limit"),
            processes=int((stats.get("pids_stats") or {}).get("current", 0)),
            volume_bytes=sum(self._du(container, path) for path in handle.get("volumes", [])),
            container_disk_bytes=int(rows[0].get("SizeRw") or 0) if rows else 0,
        )

    def _du(self, container: Container, path: str) -> int:
        """A volume's size, measured inside the container (the engine may be remote)."""
        try:
            result = container.exec_run(["du", "-sk", path])
        except (DockerException, requests.RequestException):
            return 0
        first = result.output.split(b"\t", 1)[0] if result.exit_code == 0 else b""
        return int(first) * 1024 if first.isdigit() else 0

    # Stopping --------------------------------------------------------------------------------

    def stop(self, handle: dict, *, grace_seconds: float = 5.0) -> int | None:
        container = self._container(handle["pod_id"])
        if container is None:
            return None
        with engine_errors(f"stop pod {handle['pod_id']}"):
            if container.attrs["State"]["Status"] in RUNNING_STATES:
                # The engine sends SIGTERM, then SIGKILL after the grace period.
                container.stop(timeout=math.ceil(grace_seconds))
                container.wait(timeout=int(self.settings.get("timeout", 60)))
                container.reload()
        return container.attrs["State"].get("ExitCode")

    def open_shell(self, handle: dict, *, command: tuple[str, ...] = ("/bin/sh",)) -> PtySession:
        container = self._container(handle["pod_id"])
        if container is None or container.attrs["State"]["Status"] != "running":
            raise RuntimeFailure("The pod is not running.")
        pid_file = f"/tmp/.console-shell-{time.time_ns()}"
        # Record the shell's pid so close() can end it, then become the command.
        argv = ["/bin/sh", "-c", f'echo $$ >{pid_file} 2>/dev/null; exec "$@"', "sh", *command]
        api = self.client.api
        with engine_errors("open a shell in the pod"):
            exec_id = api.exec_create(
                container.id,
                argv,
                stdin=True,
                tty=True,
                environment={"TERM": "xterm-256color"},
                workdir=handle.get("workdir") or None,
            )["Id"]
            sock = api.exec_start(exec_id, socket=True, tty=True)
        return DockerExecPty(api, container.id, exec_id, sock, pid_file)

    # Storage ---------------------------------------------------------------------------------

    def reset_container_disk(self, pod_id: str) -> None:
        """Remove the container: its writable layer is the container disk. Its anonymous
        volumes go too; named volumes (the pod's and network volumes) stay."""
        container = self._container(pod_id)
        if container is None:
            return
        self._archive_log(container, pod_id)
        with engine_errors(f"remove pod {pod_id}'s container"), contextlib.suppress(NotFound):
            container.remove(force=True, v=True)

    def delete_pod_data(self, pod_id: str, *, volume_name: str | None) -> None:
        self.reset_container_disk(pod_id)
        if volume_name:
            self._remove_volume(self.volume_name(MountSpec(volume_name, "/", "volume")))
        archive = self.archive_path(pod_id)
        archive.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            archive.parent.rmdir()

    def ensure_volume(self, mount: MountSpec) -> None:
        name = self.volume_name(mount)
        with engine_errors(f"create volume {name}"):
            try:
                self.client.volumes.get(name)
            except NotFound:
                labels = {"console.volume": mount.name, "console.kind": mount.kind}
                self.client.volumes.create(name, labels=labels)

    def delete_volume(self, name: str) -> None:
        self._remove_volume(self.volume_name(MountSpec(name, "/", "network_volume")))

    def _remove_volume(self, name: str) -> None:
        with engine_errors(f"delete volume {name}"), contextlib.suppress(NotFound):
            self.client.volumes.get(name).remove()
