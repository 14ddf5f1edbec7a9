"""The pod shim: supervises one pod's process tree, like a container runtime's shim.

Run by the process backend as `python -I shim.py <run.json>` with a fixed environment (no Django
here: it must start fast and outlive the console). It detaches, starts the pod and appends its
output to the pod's log, records its own and the child's pid in `shim.json`, waits, and writes
the exit code to `exit.json`. A pod whose shim is gone without an `exit.json` was lost (host or
console crash), which is how the reconciler tells "it exited" from "start it again".

A sandboxed pod (run["sandbox"]) is started in steps, as root, before its command may run:
  1. setpriv drops to the pod's host uid and starts bubblewrap, whose options arrive through a
     file descriptor (`--args`: the pod's env never shows in a host command line) and whose
     mounts are directories the shim opened (`--bind-fd`: the pod's uid needs no host path);
  2. bubblewrap reports the sandbox's pid on `--info-fd` and waits on `--block-fd`;
  3. slirp4netns joins the sandbox's network namespace (outbound traffic, host loopback off),
     ports below 1024 are opened to the pod's root, and each declared port is forwarded from
     127.0.0.1:<public> on the host;
  4. the shim releases the block and the command runs.
slirp4netns exits with the shim (`--exit-fd`), bubblewrap with it too (`--die-with-parent`).
"""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HOST_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
SETPRIV = "/usr/bin/setpriv"
BWRAP = "/usr/bin/bwrap"
NSENTER = "/usr/bin/nsenter"
SLIRP4NETNS = "/usr/bin/slirp4netns"
SETUP_SECONDS = 10


class SetupFailed(Exception):
    pass


def write_json(path: Path, data: dict) -> None:
    """Atomically, so a reader never sees half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def exit_status(returncode: int) -> int:
    # Like a shell or Docker: death by signal N is reported as 128 + N (SIGKILL -> 137).
    return 128 - returncode if returncode < 0 else returncode


def join_cgroups(cgroups: list[str], umask: int) -> None:
    """In the child before exec: everything the pod starts inherits the limits."""
    for cgroup in cgroups:
        Path(cgroup, "cgroup.procs").write_text("0")
    os.umask(umask)


def remove_cgroups(cgroups: list[str]) -> None:
    for cgroup in cgroups:
        for _ in range(50):
            try:
                os.rmdir(cgroup)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)


def memfd(data: bytes) -> int:
    fd = os.memfd_create("bwrap-args", 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def read_until_json(fd: int) -> dict:
    data = b""
    deadline = time.monotonic() + SETUP_SECONDS
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            break
        data += chunk
        try:
            return json.loads(data)
        except ValueError:
            continue
    raise SetupFailed("the sandbox did not start")


class Sandbox:
    """The steps above, holding the descriptors each one needs."""

    def __init__(self, run: dict, log) -> None:
        self.run, self.box, self.log = run, run["sandbox"], log
        self.fds: list[int] = []
        self.slirp: subprocess.Popen | None = None

    def _fd(self, fd: int) -> int:
        self.fds.append(fd)
        return fd

    def start_bwrap(self) -> subprocess.Popen:
        info_r, info_w = os.pipe()
        self.block_r, self.block_w = os.pipe()
        self.info_r = info_r
        options = list(self.box["options"])
        for source, target, how in self.box["binds"]:
            if how == "path":
                options += ["--ro-bind", source, target]
                continue
            fd = self._fd(os.open(source, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW))
            options += ["--ro-bind-fd" if how == "ro" else "--bind-fd", str(fd), target]
        seccomp = self._fd(os.open(self.box["seccomp"], os.O_RDONLY))
        options += ["--seccomp", str(seccomp), "--info-fd", str(info_w)]
        options += ["--block-fd", str(self.block_r)]
        args = self._fd(memfd(b"".join(option.encode() + b"\0" for option in options)))
        uid, gid = self.box["uid"], self.box["gid"]
        argv = [SETPRIV, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--no-new-privs"]
        argv += ["--", BWRAP, "--args", str(args), "--", *self.run["argv"]]
        child = subprocess.Popen(  # noqa: S603 - fixed binaries, the pod's argv after "--"
            argv,
            env=HOST_ENV,
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: join_cgroups(self.run["cgroups"], self.run["umask"]),
            pass_fds=(*self.fds, info_w, self.block_r),
        )
        for fd in (*self.fds, info_w, self.block_r):
            os.close(fd)
        return child

    def attach_network(self) -> int:
        ns_pid = read_until_json(self.info_r)["child-pid"]
        os.close(self.info_r)
        self._wait_for_loopback(ns_pid)
        netns = f"/proc/{ns_pid}/ns/net"
        ready_r, ready_w = os.pipe()
        exit_r, self.exit_w = os.pipe()
        socket_path = self.box["api_socket"]
        argv = [SLIRP4NETNS, "--configure", "--mtu=65520", "--disable-host-loopback"]
        argv += ["--enable-sandbox", "--enable-seccomp", "--netns-type=path"]
        argv += ["--api-socket", socket_path, "--ready-fd", str(ready_w)]
        argv += ["--exit-fd", str(exit_r), netns, "tap0"]
        with open(Path(self.run["state_dir"]) / "slirp4netns.log", "ab") as slirp_log:
            self.slirp = subprocess.Popen(  # noqa: S603 - fixed binary and arguments
                argv,
                env=HOST_ENV,
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=slirp_log,
                stderr=subprocess.STDOUT,
                pass_fds=(ready_w, exit_r),
            )
        os.close(ready_w)
        os.close(exit_r)
        ready, _, _ = select.select([ready_r], [], [], SETUP_SECONDS)
        if not ready or os.read(ready_r, 1) != b"1":
            raise SetupFailed("the pod's network did not come up")
        os.close(ready_r)
        self._open_low_ports(netns)
        for public, private in self.box["ports"]:
            self._forward(socket_path, public, private)
        return ns_pid

    def _wait_for_loopback(self, ns_pid: int) -> None:
        """bubblewrap reports the pid before it brings up the sandbox's loopback, and
        slirp4netns configuring the same namespace meanwhile makes bubblewrap's netlink call
        fail: wait until 127.0.0.1 is routed there (only once lo is up)."""
        deadline = time.monotonic() + SETUP_SECONDS
        while time.monotonic() < deadline:
            try:
                if "127.0.0.1" in Path(f"/proc/{ns_pid}/net/fib_trie").read_text():
                    return
            except OSError as error:
                raise SetupFailed("the sandbox exited while starting") from error
            time.sleep(0.001)
        raise SetupFailed("the sandbox's loopback did not come up")

    def _open_low_ports(self, netns: str) -> None:
        """The pod's root has no capabilities, yet sshd on 22 or a server on 80 must bind:
        in the pod's own network namespace every port is unprivileged."""
        script = "echo 0 > /proc/sys/net/ipv4/ip_unprivileged_port_start"
        argv = [NSENTER, f"--net={netns}", "--", "/bin/sh", "-c", script]
        subprocess.run(argv, env=HOST_ENV, check=True, timeout=SETUP_SECONDS)  # noqa: S603

    def _forward(self, socket_path: str, public: int, private: int) -> None:
        request = {"proto": "tcp", "host_addr": "127.0.0.1", "host_port": public}
        request["guest_port"] = private
        with socket.socket(socket.AF_UNIX) as api:
            api.settimeout(SETUP_SECONDS)
            api.connect(socket_path)
            api.sendall(json.dumps({"execute": "add_hostfwd", "arguments": request}).encode())
            answer = json.loads(api.recv(65536) or b"{}")
        if "return" not in answer:
            raise SetupFailed(f"port {private} could not be forwarded: {answer.get('error')}")

    def release(self) -> None:
        os.write(self.block_w, b"1")
        os.close(self.block_w)

    def stop_network(self) -> None:
        if self.slirp is None:
            return
        os.close(self.exit_w)
        try:
            self.slirp.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.slirp.kill()
            self.slirp.wait()


def start_plain(run: dict, log) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603 - argv built by the backend, no shell here
        run["argv"],
        env=run["env"],
        cwd=run["cwd"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: join_cgroups(run["cgroups"], run["umask"]),
        close_fds=True,
    )


def start(run: dict, log) -> tuple[subprocess.Popen, Sandbox | None, int | None]:
    if not run.get("sandbox"):
        return start_plain(run, log), None, None
    sandbox = Sandbox(run, log)
    child = sandbox.start_bwrap()
    try:
        ns_pid = sandbox.attach_network()
    except (SetupFailed, OSError, ValueError, KeyError, subprocess.SubprocessError):
        child.kill()
        child.wait()
        sandbox.stop_network()
        raise
    sandbox.release()
    return child, sandbox, ns_pid


def supervise(run: dict) -> None:
    state_dir = Path(run["state_dir"])
    # A handler, not SIG_IGN: ignored signals would be inherited by the pod's processes.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)
    with open(run["log_path"], "ab", buffering=0) as log:
        try:
            child, sandbox, ns_pid = start(run, log)
        except (SetupFailed, OSError, ValueError, KeyError, subprocess.SubprocessError) as error:
            log.write(f"[console] could not start the pod: {error}\n".encode())
            remove_cgroups(run["cgroups"])
            failed = {"exit_code": 127, "finished_at": time.time(), "error": str(error)}
            write_json(state_dir / "exit.json", failed)
            return
        pids = {"shim_pid": os.getpid(), "child_pid": child.pid, "ns_pid": ns_pid}
        pids["slirp_pid"] = sandbox.slirp.pid if sandbox and sandbox.slirp else None
        write_json(state_dir / "shim.json", pids)
        code = exit_status(child.wait())
        if sandbox:
            sandbox.stop_network()
        log.write(f"[console] pod process exited with code {code}\n".encode())
    remove_cgroups(run["cgroups"])
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
