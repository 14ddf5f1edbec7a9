"""The process runtime's sandbox parts that do not depend on a running pod: host uids for pods and
network volumes, the generated /etc, the seccomp filter and bubblewrap's arguments.

A pod is root inside a user namespace that maps that root to one unprivileged host uid of its
own, drawn from POD_UID_BASE .. POD_UID_BASE + POD_UID_COUNT - 1 and kept for the pod's whole
life (its volume's files are owned by it). A network volume gets a number from the same range as
its group: every pod that mounts it runs with that group as its primary gid and a umask of 002,
so pods of one team share the files they write there while keeping distinct uids.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import tempfile
from functools import cache
from pathlib import Path

from django.conf import settings

from pods.runtime.base import RuntimeFailure

BWRAP = "/usr/bin/bwrap"
SETPRIV = "/usr/bin/setpriv"
NSENTER = "/usr/bin/nsenter"
SLIRP4NETNS = "/usr/bin/slirp4netns"
# What every host-side helper gets instead of the caller's environment.
HOST_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
GUEST_DNS = "10.0.2.3"  # slirp4netns' built-in resolver
OWNER = re.compile(r"^(pod|volume)-[A-Za-z0-9_-]{1,64}$")

# Syscalls a pod has no business making: mounts, namespaces, kernel modules and keyrings, the
# clock, raw handles ("shocker"), io_uring and eBPF, whose bugs are the usual way out.
DENIED_SYSCALLS = (  # noqa: SIM905 - a list of words reads best as words
    "mount umount umount2 pivot_root chroot swapon swapoff reboot kexec_load kexec_file_load "
    "init_module finit_module delete_module bpf perf_event_open keyctl add_key request_key "
    "userfaultfd open_by_handle_at name_to_handle_at acct settimeofday clock_settime "
    "clock_adjtime adjtimex syslog quotactl lookup_dcookie iopl ioperm fsopen fsconfig fsmount "
    "fspick move_mount open_tree mount_setattr unshare setns io_uring_setup io_uring_enter "
    "io_uring_register uselib vm86 vm86old nfsservctl"
).split()
CLONE_NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | ...


# Host ids --------------------------------------------------------------------------------------


def ids_dir() -> Path:
    path = Path(settings.DATA_DIR) / "pod-ids"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    (path / "owners").mkdir(mode=0o700, exist_ok=True)
    return path


def claim_id(owner: str) -> int:
    """The host id of `owner` ("pod-<id>" or "volume-<id>"): the same one on every call until
    released, never one another live owner holds. The search starts at a hash of the owner so
    it rarely probes more than once."""
    if not OWNER.match(owner):
        raise ValueError(f"bad id owner {owner!r}")
    root = ids_dir()
    index = root / "owners" / owner
    if index.exists():
        return int(index.read_text())
    base, count = settings.POD_UID_BASE, settings.POD_UID_COUNT
    start = int.from_bytes(hashlib.sha256(owner.encode()).digest()[:8], "big") % count
    for step in range(count):
        number = base + (start + step) % count
        try:
            fd = os.open(root / str(number), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as claim:
            claim.write(owner)
        index.write_text(str(number))
        return number
    raise RuntimeFailure("Every host uid reserved for pods is taken (raise POD_UID_COUNT).")


def release_id(owner: str) -> None:
    index = ids_dir() / "owners" / owner
    try:
        number = index.read_text()
    except FileNotFoundError:
        return
    (ids_dir() / number).unlink(missing_ok=True)
    index.unlink(missing_ok=True)


def own_tree(path: Path, uid: int, gid: int) -> None:
    """Give a directory tree (written before pods had their own uid) to the pod, never following
    a symlink the pod may have planted."""
    if path.lstat().st_uid == uid:
        return
    os.chown(path, uid, gid, follow_symlinks=False)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


# /etc ---------------------------------------------------------------------------------------

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"
NSSWITCH = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n"
# Public, read-only host data that programs expect under /etc: CA certificates and Debian's
# alternatives symlinks (awk, which, ...); never shadow, ssh keys or anything else.
HOST_ETC = ("/etc/ssl/certs", "/etc/alternatives")


def write_etc(path: Path, pod_id: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o755, parents=True)
    files = {
        "passwd": PASSWD,
        "group": GROUP,
        "nsswitch.conf": NSSWITCH,
        "hostname": f"{pod_id}\n",
        "hosts": f"127.0.0.1 localhost\n::1 localhost ip6-localhost\n127.0.1.1 {pod_id}\n",
        "resolv.conf": f"nameserver {GUEST_DNS}\n",
    }
    for name, text in files.items():
        (path / name).write_text(text)
        (path / name).chmod(0o644)
    if os.path.exists("/etc/ld.so.cache"):  # an index of /usr's libraries, nothing more
        shutil.copyfile("/etc/ld.so.cache", path / "ld.so.cache")
        (path / "ld.so.cache").chmod(0o644)
    for host in HOST_ETC:
        if os.path.isdir(host):
            (path / host.removeprefix("/etc/")).mkdir(parents=True, exist_ok=True)


# seccomp ------------------------------------------------------------------------------------


@cache
def seccomp_filter() -> bytes:
    """A deny-list BPF program (EPERM) in the spirit of Docker's default profile, compiled by
    libseccomp for this machine's architecture; clone3 answers ENOSYS so libc falls back to
    clone, whose namespace flags are refused."""
    import pyseccomp as seccomp

    bpf = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    # 32-bit programs get the same rules instead of being killed by the architecture check.
    compat = {seccomp.Arch.X86_64: ("X86", "X32"), seccomp.Arch.AARCH64: ("ARM",)}
    for name in compat.get(seccomp.system_arch(), ()):
        bpf.add_arch(getattr(seccomp.Arch, name))
    for name in DENIED_SYSCALLS:
        try:
            bpf.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except (RuntimeError, ValueError, OSError):
            continue  # not a syscall on this architecture
    bpf.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    for bit in range(32):  # one rule a CLONE_NEW* bit: MASKED_EQ matches when all are set
        flag = 1 << bit
        if flag & CLONE_NAMESPACE_FLAGS:
            arg = seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag)
            bpf.add_rule(seccomp.ERRNO(errno.EPERM), "clone", arg)
    with tempfile.TemporaryFile() as program:
        bpf.export_bpf(program)
        program.seek(0)
        return program.read()


# bubblewrap ---------------------------------------------------------------------------------


def system_dirs() -> list[str]:
    """/usr read-only and the merged-/usr symlinks (or, on older hosts, the real dirs)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    return args


def bwrap_options(pod_id: str, env: dict[str, str], workdir: str) -> list[str]:
    """Everything but the bind mounts the shim adds by file descriptor (/etc, /root, volumes)."""
    args = ["--unshare-all", "--unshare-user", "--uid", "0", "--gid", "0", "--disable-userns"]
    args += ["--hostname", pod_id, "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    args += system_dirs()
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run"]
    args += ["--clearenv"]
    for name, value in env.items():
        args += ["--setenv", name, value]
    return args + ["--chdir", workdir]


def memfd(data: bytes) -> int:
    """Data handed to a helper as a descriptor: it never shows in a command line or a file."""
    fd = os.memfd_create("pod-data", 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


# Runs inside the pod (the host's /usr/bin/python3, read-only there) as the pod's root without
# capabilities: reads the pod's env from one descriptor and the seccomp filter from another,
# loads the filter, and only then execs the command with the env, so no host-side process ever
# runs with a variable the pod chose.
TERMINAL_HELPER = """
import ctypes, os, sys
env_fd, bpf_fd, umask = (int(arg) for arg in sys.argv[1:4])
workdir, argv = sys.argv[4], sys.argv[5:]
with os.fdopen(env_fd, "rb") as source:
    env = dict(item.decode().split("=", 1) for item in source.read().split(b"\\0") if item)
with os.fdopen(bpf_fd, "rb") as source:
    bpf = source.read()
class Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]
program = Program(len(bpf) // 8, bpf)
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(22, 2, ctypes.byref(program), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
    raise OSError(ctypes.get_errno(), "seccomp")
os.umask(umask)
try:
    os.chdir(workdir)
except OSError:
    os.chdir("/")
os.execve(argv[0] if argv[0].startswith("/") else "/bin/" + argv[0], argv, env)
"""
POD_PYTHON = "/usr/bin/python3"


def terminal_argv(
    ns_pid: int, env_fd: int, seccomp_fd: int, umask: int, workdir: str, command: tuple[str, ...]
) -> list[str]:
    """nsenter (as root, by absolute path, fixed env) into every namespace of the pod, the
    user namespace last so the shell is the pod's root (its host uid), then setpriv empties the
    capability sets before the helper above runs."""
    argv = [NSENTER, "-t", str(ns_pid), "-U", "-m", "-u", "-i", "-n", "-p", "-C", "-r", "--"]
    argv += [SETPRIV, "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all", "--"]
    argv += [POD_PYTHON, "-I", "-S", "-c", TERMINAL_HELPER, str(env_fd), str(seccomp_fd)]
    return [*argv, str(umask), workdir, *command]


def etc_binds() -> list[tuple[str, str]]:
    """Host paths bound read-only over the generated /etc's empty mount points."""
    return [(host, host) for host in HOST_ETC if os.path.isdir(host)]
