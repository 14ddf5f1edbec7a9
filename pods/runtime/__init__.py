"""Runtime backends behind one interface (base.py). Importing this package registers them."""

import pods.runtime.docker  # noqa: F401  (registers the "docker" backend)
from pods.runtime import process  # noqa: F401  (registers the "process" backend)
from pods.runtime.base import (
    BACKENDS,
    LogChunk,
    MountSpec,
    PodSpec,
    PortMapping,
    PortSpec,
    PtySession,
    ResourceUsage,
    RuntimeBackend,
    RuntimeFailure,
    RuntimeState,
    StartResult,
    get_backend,
    register,
    runtime_choices,
)

__all__ = [
    "BACKENDS",
    "LogChunk",
    "MountSpec",
    "PodSpec",
    "PortMapping",
    "PortSpec",
    "PtySession",
    "ResourceUsage",
    "RuntimeBackend",
    "RuntimeFailure",
    "RuntimeState",
    "StartResult",
    "get_backend",
    "register",
    "runtime_choices",
]
