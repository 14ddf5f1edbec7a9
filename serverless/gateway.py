"""The worker gateway: how a serverless worker's pod reaches the console, and nothing else of it.

A worker pod is hostile (it runs the customer's handler on attacker-chosen input) and, like
every pod, cannot reach the console's TCP port, PostgreSQL or Redis. Yet its runpod SDK must
reach the worker protocol. So the console also serves a restricted ASGI application
(`serverless.worker_asgi`, daphne on a Unix socket in `pods.runtime.base.worker_gateway_dir()`)
that admits only the worker routes (job-take, job-take-batch, job-stop, ping, job-done,
job-stream) and answers 404 to everything else. The socket's directory is mounted read-only
into WORKER pods only, and inside the pod's own network namespace a forwarder
(serverless.worker_bootstrap) listens on 127.0.0.1:GATEWAY_PORT and relays to the socket,
because the SDK (aiohttp) speaks TCP URLs only.

Everything of the request the pod chose beyond path, method, body and a few plain headers is
dropped: Host, Forwarded / X-Forwarded-*, cookies, and daphne's Daphne-Root-Path, whose root
path would otherwise make Django route a different path than the one checked here. Each worker's
requests in flight and per second are bounded (serverless.gateway_limits: 429 with Retry-After
beyond); daphne (Twisted) already refuses a request line plus headers over 16 KB or with more
than 500 headers (400).
"""

from __future__ import annotations

import re
import shlex
from urllib.parse import urlsplit

from django.conf import settings

from pods.models import Pod
from pods.runtime import RuntimeFailure, get_backend
from serverless.gateway_limits import Limiter, Refused, Unknown, caller_key
from serverless.worker_bootstrap import bootstrap_script

# The forwarder's port inside a worker pod's network namespace (its own loopback).
GATEWAY_PORT = 18765

SEGMENT = r"[^/]+"
WORKER_ROUTE = re.compile(
    rf"^/v2/(?P<endpoint>{SEGMENT})/(?:"
    rf"(?P<one>job-take|job-take-batch|job-stop|ping)/(?P<worker>{SEGMENT})"
    rf"|(?P<two>job-done|job-stream)/(?P<poster>{SEGMENT})/{SEGMENT})$"
)
# What a worker's request keeps of its headers; the gateway sets Host and the scheme itself.
KEPT_HEADERS = frozenset(
    {b"authorization", b"content-type", b"content-length", b"accept", b"user-agent"}
)


def worker_route(method: str, path: str) -> re.Match | None:
    return WORKER_ROUTE.match(path) if method in {"GET", "POST"} else None


class WorkerGateway:
    """ASGI middleware admitting only worker routes to `application` (the console's serverless
    router and Django, never the pod proxy or websockets), each worker within the bounds of
    serverless.gateway_limits."""

    def __init__(self, application, authenticate, limiter: Limiter | None = None) -> None:
        """`authenticate(endpoint_id=, worker_id=, authorization=)`: awaitable, the worker or
        None (serverless.worker_asgi.authenticate in a thread), asked for callers not known."""
        self.application = application
        self.authenticate = authenticate
        self.limiter = limiter or Limiter()
        site = urlsplit(settings.SITE_URL)
        self.scheme = site.scheme or "http"
        self.host = (site.netloc or "localhost").encode("latin-1")
        self.server = (site.hostname or "localhost", site.port or 80)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4404})
            return
        if scope["type"] != "http":
            return
        route = worker_route(scope["method"], scope["path"])
        if route is None:
            await not_found(send)
            return
        await self.limited(route, self.clean(scope), receive, send)

    async def limited(self, route: re.Match, scope: dict, receive, send) -> None:
        kind = route["one"] or route["two"]
        worker_id = route["worker"] or route["poster"]
        authorization = dict(scope["headers"]).get(b"authorization", b"")

        async def accept() -> bool:
            found = await self.authenticate(
                endpoint_id=route["endpoint"],
                worker_id=worker_id,
                authorization=authorization.decode("latin-1"),
            )
            return found is not None

        try:
            await self.limiter.run(
                caller_key(worker_id, authorization),
                kind,
                lambda: self.application(scope, receive, send),
                accept,
            )
        except Refused as refusal:
            await too_many(send, refusal.retry_after)
        except Unknown:
            await answer(send, 401, b'{"error": "Unknown worker or wrong secret."}')

    def clean(self, scope: dict) -> dict:
        headers = [(name, value) for name, value in scope["headers"] if name in KEPT_HEADERS]
        headers += [(b"host", self.host), (b"x-forwarded-proto", self.scheme.encode())]
        return {
            **scope,
            "headers": headers,
            "root_path": "",
            "scheme": self.scheme,
            "server": self.server,
            "client": ("worker-gateway", 0),
        }


async def not_found(send) -> None:
    await answer(send, 404, b'{"error": "Not found."}')


async def too_many(send, retry_after: int) -> None:
    body = b'{"error": "Too many requests from this worker."}'
    await answer(send, 429, body, [(b"retry-after", str(retry_after).encode())])


async def answer(send, status: int, body: bytes, extra: list | None = None) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": body})


def uses_gateway(pod: Pod) -> bool:
    """Whether the pod has a network namespace of its own (and so the gateway): every Docker
    pod, and a process-runtime pod in the sandbox. An unsandboxed dev pod shares the host's
    network and reaches the console directly."""
    machine = pod.machine
    if machine is None or machine.runtime != "process":
        return True
    try:
        return get_backend("process", machine.runtime_settings).sandboxed()
    except RuntimeFailure:
        return True  # the sandbox is required but unusable: the pod will not start anyway


def worker_api_base(pod: Pod) -> str:
    """The base URL of the worker protocol for the worker running in `pod` (its
    RUNPOD_WEBHOOK_* variables are built from it by serverless.services.worker_env)."""
    if uses_gateway(pod):
        return f"http://127.0.0.1:{GATEWAY_PORT}"
    return settings.SITE_URL


def worker_command(command: str) -> str:
    """The worker pod's start command: the template's `command` after the forwarder and the
    dependency bootstrap (serverless.worker_bootstrap), which end by exec'ing it."""
    return bootstrap_script(gateway_port=GATEWAY_PORT) + f"\nexec /bin/sh -c {shlex.quote(command)}"
