"""The pod shim: supervises one pod's process tree, like a container runtime's shim.

Run by the process backend as `python shim.py <run.json>` (no Django here: it must start fast and
outlive the console). It detaches, starts the pod's command with stdout/stderr appended to the
pod's log, records its own and the child's pid in `shim.json`, waits, and writes the exit code to
`exit.json`. A pod whose shim is gone without an `exit.json` was lost (host or console crash),
which is how the reconciler tells "it exited" from "start it again".
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def write_json(path: Path, data: dict) -> None:
    """Atomically, so a reader never sees half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def exit_status(returncode: int) -> int:
    # Like a shell or Docker: death by signal N is reported as 128 + N (SIGKILL -> 137).
    return 128 - returncode if returncode < 0 else returncode


def join_cgroup(cgroup: str | None) -> None:
    if cgroup:
        Path(cgroup, "cgroup.procs").write_text("0")


def remove_cgroup(cgroup: str | None) -> None:
    if not cgroup:
        return
    for _ in range(50):
        try:
            os.rmdir(cgroup)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)


def supervise(run: dict) -> None:
    state_dir = Path(run["state_dir"])
    # A handler, not SIG_IGN: ignored signals would be inherited by the pod's processes.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)
    with open(run["log_path"], "ab", buffering=0) as log:
        try:
            child = subprocess.Popen(  # noqa: S603 - argv built by the backend, no shell here
                run["argv"],
                env=run["env"],
                cwd=run["cwd"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=lambda: join_cgroup(run.get("cgroup")),
                close_fds=True,
            )
        except OSError as error:
            log.write(f"[console] could not start the pod: {error}\n".encode())
            write_json(state_dir / "exit.json", {"exit_code": 127, "finished_at": time.time()})
            return
        write_json(state_dir / "shim.json", {"shim_pid": os.getpid(), "child_pid": child.pid})
        code = exit_status(child.wait())
        log.write(f"[console] pod process exited with code {code}\n".encode())
    remove_cgroup(run.get("cgroup"))
    write_json(state_dir / "exit.json", {"exit_code": code, "finished_at": time.time()})


def main(run_file: str) -> None:
    run = json.loads(Path(run_file).read_text())
    if os.fork():
        os._exit(0)  # the launcher's wait() returns at once; the shim lives on, reparented
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    try:
        supervise(run)
    finally:
        os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1])
