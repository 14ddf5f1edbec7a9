"""The runtime interface: how the console asks a machine to run, stop and inspect a pod.

Services never talk to processes or containers directly; they build a `PodSpec`, ask
`get_backend(machine.runtime, machine.runtime_settings)` for a backend and call it. A backend
returns a JSON-serialisable `handle` (stored on the pod) that identifies what it started, so a
later call from another process (a Celery worker, the reconciler after a restart) can find it.

Backends: "process" (pods/runtime/process.py: a bubblewrap-sandboxed process tree on this host);
"docker" arrives later and implements the same methods against the Docker Engine API.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar


class RuntimeFailure(Exception):
    """A backend could not do what was asked; the message is shown to the user."""


@dataclass(frozen=True)
class PortSpec:
    """A port the pod declares: `port` inside the pod, `protocol` "http" or "tcp"."""

    port: int
    protocol: str


@dataclass(frozen=True)
class PortMapping:
    """Where a declared port is reachable from the console's host."""

    private_port: int
    public_port: int
    protocol: str
    host: str = "127.0.0.1"

    def as_dict(self) -> dict:
        return {
            "private": self.private_port,
            "public": self.public_port,
            "protocol": self.protocol,
            "host": self.host,
        }


@dataclass(frozen=True)
class MountSpec:
    """A persistent directory mounted into the pod: the pod volume or a network volume.

    `name` identifies it to the backend (a host directory for "process", a named volume for
    "docker"); `target` is the absolute path inside the pod."""

    name: str
    target: str
    kind: str  # "volume" | "network_volume"
    size_gb: int = 0


@dataclass(frozen=True)
class PodSpec:
    """Everything a backend needs to run one pod. Built by pods.services from the Pod row."""

    pod_id: str
    image: str
    command: str
    env: dict[str, str]
    ports: tuple[PortSpec, ...] = ()
    mounts: tuple[MountSpec, ...] = ()
    container_disk_gb: int = 10
    vcpu: int = 1
    memory_gb: int = 1
    gpu_count: int = 0
    gpu_device_ids: tuple[str, ...] = ()
    working_dir: str = "/"
    # Credentials for pulling `image`: {"username", "password", "registry"} (docker runtime).
    registry_auth: dict | None = None
    # A serverless worker (Pod.Kind.WORKER): the console's worker gateway socket directory
    # is mounted read-only at WORKER_GATEWAY_TARGET. No other pod gets it.
    worker_gateway: bool = False


@dataclass(frozen=True)
class StartResult:
    handle: dict
    ports: tuple[PortMapping, ...] = ()


@dataclass(frozen=True)
class RuntimeState:
    """What is really happening. `state` is one of:
    "running"  - alive;
    "exited"   - it ended on its own or was stopped; exit_code is known;
    "lost"     - it is gone without a recorded exit (host or console restart, power loss)."""

    state: str
    exit_code: int | None = None


@dataclass(frozen=True)
class LogChunk:
    """Log text since a cursor. Cursors are opaque strings; pass `cursor` back for more."""

    text: str
    cursor: str


@dataclass(frozen=True)
class ResourceUsage:
    cpu_seconds: float = 0.0
    memory_bytes: int = 0
    memory_limit_bytes: int | None = None
    processes: int = 0
    volume_bytes: int = 0
    container_disk_bytes: int = 0


class PtySession(ABC):
    """An interactive shell inside a running pod (the web terminal of the connect issue)."""

    @abstractmethod
    def read(self, max_bytes: int = 65536, timeout: float = 0.1) -> bytes:
        """Output produced since the last read; b"" when none arrived within `timeout`."""

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def resize(self, cols: int, rows: int) -> None: ...

    @property
    @abstractmethod
    def closed(self) -> bool: ...

    @abstractmethod
    def close(self) -> None: ...


@dataclass
class RuntimeBackend(ABC):
    """One way of running pods on a machine. `settings` is the machine's runtime_settings JSON."""

    settings: dict = field(default_factory=dict)
    name: ClassVar[str] = ""
    # Whether pods get the machine's GPU devices; without them GPUs are only scheduled and
    # billed (simulated), which the pod page says.
    gpu_devices: ClassVar[bool] = False

    @abstractmethod
    def start(self, spec: PodSpec) -> StartResult:
        """Start the pod (its container disk empty, its mounts kept). Raises RuntimeFailure."""

    @abstractmethod
    def stop(self, handle: dict, *, grace_seconds: float = 5.0) -> int | None:
        """SIGTERM every process of the pod, SIGKILL what is left after `grace_seconds`,
        wait for the end and return the exit code. Stopping a dead pod is a no-op."""

    @abstractmethod
    def poll(self, handle: dict) -> RuntimeState: ...

    @abstractmethod
    def read_logs(self, handle: dict, *, cursor: str | None = None, limit: int = 65536) -> LogChunk:
        """With cursor=None: the last `limit` bytes. Else what was written after the cursor."""

    @abstractmethod
    def usage(self, handle: dict) -> ResourceUsage: ...

    @abstractmethod
    def open_shell(self, handle: dict, *, command: tuple[str, ...] = ("/bin/sh",)) -> PtySession:
        """A PTY running `command` inside the running pod's namespaces/container."""

    @abstractmethod
    def reset_container_disk(self, pod_id: str) -> None:
        """Throw away the container disk (what a stop or a restart loses)."""

    @abstractmethod
    def delete_pod_data(self, pod_id: str, *, volume_name: str | None) -> None:
        """Remove everything the pod left on the machine, its volume included."""

    @abstractmethod
    def ensure_volume(self, mount: MountSpec) -> None:
        """Create the persistent volume if it does not exist yet (idempotent)."""

    @abstractmethod
    def delete_volume(self, name: str) -> None:
        """Remove a network volume's data."""


BACKENDS: dict[str, type[RuntimeBackend]] = {}


def register(cls: type[RuntimeBackend]) -> type[RuntimeBackend]:
    """Class decorator: make a backend selectable as Machine.runtime == cls.name."""
    if not cls.name:
        raise ValueError("A runtime backend needs a name.")
    BACKENDS[cls.name] = cls
    return cls


def get_backend(name: str, settings: dict | None = None) -> RuntimeBackend:
    try:
        cls = BACKENDS[name]
    except KeyError:
        raise RuntimeFailure(f"Unknown runtime backend {name!r}.") from None
    return cls(settings=dict(settings or {}))


def runtime_choices() -> list[tuple[str, str]]:
    """Machine.runtime's choices: every registered backend."""
    return [(name, name) for name in sorted(BACKENDS)]


def pod_data_dir(pod_id: str) -> Path:
    """Where a pod's files live on this host: settings.DATA_DIR/pods/<id>/."""
    from django.conf import settings

    return Path(settings.DATA_DIR) / "pods" / pod_id


# Where worker pods find the worker gateway's socket directory (serverless.gateway).
WORKER_GATEWAY_TARGET = "/run/console-gateway"
WORKER_GATEWAY_SOCKET = "gateway.sock"


def worker_gateway_dir() -> Path:
    """The host directory holding the worker gateway's Unix socket: mounted into worker pods
    (never the socket file itself, so a restarted gateway's new socket shows in running pods).
    Pod uids may traverse it, not list it; the socket itself is 0666."""
    from django.conf import settings

    path = Path(settings.DATA_DIR) / "run" / "worker-gateway"
    path.mkdir(parents=True, exist_ok=True)
    for directory in (path.parent, path):
        directory.chmod(0o711)
    return path


def network_volume_dir(name: str) -> Path:
    from django.conf import settings

    return Path(settings.DATA_DIR) / "network-volumes" / name
