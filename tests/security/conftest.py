"""Fixtures for attacks on the host: a listener standing in for the console on the host's
loopback, and an "outside" HTTP server in a network namespace the test creates (the only
addresses a test may reach besides loopback)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

OUTSIDE_HOST, OUTSIDE_PEER = "10.213.0.1", "10.213.0.2"  # a /30 of the test's own


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the process runtime's sandbox (setpriv, slirp4netns, veth) needs root")


@dataclass
class Listener:
    """A TCP server on 127.0.0.1 that counts who got through."""

    sock: socket.socket
    accepted: list[tuple] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def serve(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.accepted.append(peer)
            conn.close()


@pytest.fixture
def console_listener() -> Iterator[Listener]:
    """What a pod must never reach: a service on the host's loopback, like the console's."""
    listener = Listener(socket.create_server(("127.0.0.1", 0)))
    thread = threading.Thread(target=listener.serve, daemon=True)
    thread.start()
    yield listener
    listener.sock.close()
    thread.join(2)


def ip(*args: str) -> None:
    subprocess.run(["/usr/bin/ip", *args], check=True, capture_output=True, timeout=10)


@dataclass
class Outside:
    url: str
    token: str


SERVER = """
import http.server, sys
token = sys.argv[2].encode()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(token)))
        self.end_headers()
        self.wfile.write(token)
    def log_message(self, *args):
        pass
http.server.HTTPServer((sys.argv[1], 8099), Handler).serve_forever()
"""


@pytest.fixture
def outside_server() -> Iterator[Outside]:
    """An HTTP server at 10.213.0.2:8099 in a network namespace of its own, joined to the host
    by a veth pair: an outbound address a pod should reach through slirp4netns.

    The namespace is held by a process (`unshare --net`), not named with `ip netns add`: that
    one turns the machine-wide /run/netns into a mount point of its own, hiding the namespaces
    Podman's running containers keep there."""
    needs_root()
    tag = secrets.token_hex(3)
    host_end, peer_end = f"pe{tag}h", f"pe{tag}p"
    holder = subprocess.Popen(["/usr/bin/unshare", "--net", "/bin/sleep", "infinity"])
    inside = ["/usr/bin/nsenter", f"--net=/proc/{holder.pid}/ns/net"]
    try:
        wait_for_namespace(holder.pid)
        ip("link", "add", host_end, "type", "veth", "peer", "name", peer_end)
        ip("link", "set", peer_end, "netns", str(holder.pid))
        ip("addr", "add", f"{OUTSIDE_HOST}/30", "dev", host_end)
        ip("link", "set", host_end, "up")
        for args in (
            ("addr", "add", f"{OUTSIDE_PEER}/30", "dev", peer_end),
            ("link", "set", peer_end, "up"),
            ("link", "set", "lo", "up"),
        ):
            subprocess.run([*inside, "/usr/bin/ip", *args], check=True, capture_output=True)
        token = secrets.token_hex(8)
        argv = [*inside, "/usr/bin/python3", "-c", SERVER, OUTSIDE_PEER, token]
        server = subprocess.Popen(argv)
        try:
            wait_for_http(f"http://{OUTSIDE_PEER}:8099/")
            yield Outside(f"http://{OUTSIDE_PEER}:8099/", token)
        finally:
            server.kill()
            server.wait()
    finally:
        subprocess.run(["/usr/bin/ip", "link", "del", host_end], capture_output=True)
        holder.kill()
        holder.wait()


def wait_for_namespace(pid: int, timeout: float = 5) -> None:
    """unshare has made the namespace once its net link differs from ours."""
    deadline = time.monotonic() + timeout
    own = os.readlink("/proc/self/ns/net")
    while time.monotonic() < deadline:
        try:
            if os.readlink(f"/proc/{pid}/ns/net") != own:
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise AssertionError("unshare --net did not make a network namespace")


def wait_for_http(url: str, timeout: float = 10) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()  # noqa: S310 - the test's own server
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{url} never answered")
