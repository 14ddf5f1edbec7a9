"""A pseudo-terminal running a command: the process backend's shell inside a pod."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
from pathlib import Path

from pods.runtime.base import PtySession


class ProcessPty(PtySession):
    def __init__(self, proc: subprocess.Popen, master_fd: int) -> None:
        self.proc = proc
        self.master_fd = master_fd

    @classmethod
    def spawn(
        cls,
        argv: list[str],
        *,
        env: dict,
        cwd: str,
        cgroups: list[str] = (),
        pass_fds: tuple[int, ...] = (),
    ) -> ProcessPty:
        master, slave = os.openpty()

        def child_setup() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            for cgroup in cgroups:  # the shell counts against the pod's limits
                if Path(cgroup, "cgroup.procs").exists():
                    Path(cgroup, "cgroup.procs").write_text("0")

        env = {**env, "TERM": env.get("TERM", "xterm-256color")}
        proc = subprocess.Popen(  # noqa: S603 - argv built by the backend
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
            preexec_fn=child_setup,
            close_fds=True,
            pass_fds=pass_fds,
        )
        os.close(slave)
        return cls(proc, master)

    def read(self, max_bytes: int = 65536, timeout: float = 0.1) -> bytes:
        if self.master_fd < 0:
            return b""
        ready, _, _ = select.select([self.master_fd], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(self.master_fd, max_bytes)
        except OSError:  # EIO: the shell has exited
            return b""

    def write(self, data: bytes) -> None:
        os.write(self.master_fd, data)

    def resize(self, cols: int, rows: int) -> None:
        fcntl.ioctl(self.master_fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    @property
    def closed(self) -> bool:
        return self.master_fd < 0 or self.proc.poll() is not None

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGHUP)
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.master_fd >= 0:
            os.close(self.master_fd)
            self.master_fd = -1
