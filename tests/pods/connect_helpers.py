"""Helpers for the connect tests: a pod running a stdlib HTTP + WebSocket echo server, a raw
ASGI client for the proxy, and session cookies for the cast."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.test import Client

from pods import services
from pods.models import Pod
from tests.pods.factories import deploy_request, fund

# Runs with the host's python3 inside the sandbox (stdlib only; the console's venv is not
# mounted there). GET echoes what arrived, POST hashes the body, /big sends 50 MB, /cookies sets
# cookies, and an Upgrade: websocket request gets an echo socket that first reports its path.
ECHO_SERVER = r"""python3 -u - <<'PY'
import base64, hashlib, http.server, json, os, struct
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def reply(self, body, extra=()):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.headers.get("Upgrade", "").lower() == "websocket":
            return self.echo_socket()
        if self.path == "/big":
            self.send_response(200)
            self.send_header("Content-Length", str(50 * 1024 * 1024))
            self.end_headers()
            chunk = b"x" * 65536
            for _ in range(800):
                self.wfile.write(chunk)
            return
        extra = []
        if self.path == "/cookies":
            extra = [("Set-Cookie", "sessionid=planted; Path=/"), ("Set-Cookie", "app=2; Path=/")]
        seen = {"method": "GET", "path": self.path, "headers": dict(self.headers.items())}
        self.reply(json.dumps(seen).encode(), extra)
    def body(self):
        if "Content-Length" in self.headers:
            return self.rfile.read(int(self.headers["Content-Length"]))
        data = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            data += self.rfile.read(size)
            self.rfile.readline()
            if not size:
                return data
    def do_POST(self):
        data = self.body()
        seen = {"method": "POST", "path": self.path, "length": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "chunked": "Content-Length" not in self.headers}
        self.reply(json.dumps(seen).encode())
    def frame(self, opcode, data):
        size = len(data)
        if size < 126:
            head = bytes([128 | opcode, size])
        elif size < 65536:
            head = bytes([128 | opcode, 126]) + struct.pack(">H", size)
        else:
            head = bytes([128 | opcode, 127]) + struct.pack(">Q", size)
        self.wfile.write(head + data)
    def echo_socket(self):
        key = self.headers["Sec-WebSocket-Key"] + GUID
        accept = base64.b64encode(hashlib.sha1(key.encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.frame(1, ("path:" + self.path + " host:" + self.headers["Host"]).encode())
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            opcode, size = head[0] & 15, head[1] & 127
            if size == 126:
                size = struct.unpack(">H", self.rfile.read(2))[0]
            elif size == 127:
                size = struct.unpack(">Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if head[1] & 128 else bytes(4)
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(size)))
            if opcode == 8:
                return self.frame(8, data[:2])
            self.frame(10 if opcode == 9 else opcode, data)
port = int(os.environ["PORT"])
print(f"echo server on {port}", flush=True)
http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
PY"""


def echo_pod(team, user, parts, **overrides) -> Pod:
    """A running pod serving ECHO_SERVER on its HTTP port 8080 (and a TCP 22 mapping)."""
    fund(team)
    values = dict(
        start_command=ECHO_SERVER,
        ports=[{"port": 8080, "protocol": "http"}, {"port": 22, "protocol": "tcp"}],
    )
    values.update(overrides)
    pod = services.deploy_pod(actor=user, team=team, request=deploy_request(parts["a40"], **values))
    pod.refresh_from_db()
    assert pod.status == Pod.Status.RUNNING, pod.status_reason
    wait_listening(pod, 8080)
    return pod


def wait_listening(pod: Pod, port: int, timeout: float = 15.0) -> None:
    mapping = next(m for m in pod.port_mappings if m["private"] == port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(mapping["host"], mapping["public"]):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on pod port {port}")


def answers(host: str, port: int) -> bool:
    """The host side of a port forward accepts at once; only a connection that stays open
    (the server waits for a request) means the pod's server is there: slirp4netns closes it
    when the pod refuses. A connect that hangs is no server: it is how a port the host's NAT
    sends elsewhere looks (tests/pods/test_host_ports.py)."""
    try:
        sock = socket.create_connection((host, port), timeout=1)
    except OSError:  # refused, unreachable, or no answer to the SYN (TimeoutError)
        return False
    with sock:
        sock.settimeout(0.2)
        try:
            return sock.recv(1) != b""
        except TimeoutError:
            return True
        except OSError:
            return False


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}".encode()


@dataclass
class Reply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    size: int = 0
    largest_chunk: int = 0
    chunks: int = 0

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v.decode() for k, v in self.headers if k.decode().lower() == name.lower()]


@dataclass
class Call:
    """One HTTP request to an ASGI app, its body sent in `chunks`; with keep_body=False the
    response body is only counted, so the caller holds none of it."""

    method: str
    path: str
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    query: str = ""
    keep_body: bool = True
    host: str = "testserver"

    async def run(self, app) -> Reply:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": self.method,
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": self.query.encode(),
            "headers": [(b"host", self.host.encode()), *self.headers],
            "client": ("10.0.0.7", 50000),
            "server": ("testserver", 80),
        }
        pending = list(self.chunks) or [b""]
        reply = Reply(0, [])

        async def receive() -> dict:
            if pending:
                body = pending.pop(0)
                return {"type": "http.request", "body": body, "more_body": bool(pending)}
            await asyncio.Event().wait()  # the client stays connected

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                reply.status, reply.headers = message["status"], message["headers"]
            else:
                chunk = message.get("body", b"")
                reply.size += len(chunk)
                reply.chunks += 1
                reply.largest_chunk = max(reply.largest_chunk, len(chunk))
                if self.keep_body:
                    reply.body += chunk

        await app(scope, receive, send)
        return reply
