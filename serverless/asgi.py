"""The held requests of the job API and the worker protocol, served at the ASGI level in
front of Django (console/asgi.py wraps the application in ServerlessRouter): a held request is
a coroutine waiting on a Redis message, not a thread. Django's middleware includes sync-only
classes, so an async Django view would still hold a thread per request.

- job-take / job-take-batch (worker): held up to SERVERLESS_JOB_TAKE_HOLD seconds until a job
  is queued, then answered with it (204 when none came); the SDK asks again at once.
- job-stop (worker): held the same way until one of the worker's jobs is cancelled or times
  out, answered `{"jobsToStop": [...]}`.
- runsync (client): Django's view queues the job and answers its status; when that is not
  final yet, the answer is held here until it is, or up to ?wait=<ms> / SERVERLESS_RUNSYNC_WAIT.
- every other /v2/ route (the job API, job-done, job-stream, ping): Django's synchronous
  middleware chain and view, as a WSGI server runs them, in a thread pool (ThreadedDjango).

Database work runs in the event loop's thread pool (thread_sensitive=False), each thread with
its own connection, never on the one thread Django's ASGI handler runs every sync view on: there
the whole process's job traffic queued behind one thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.db import connections
from django.http import HttpResponse
from django.urls import set_script_prefix

from serverless import services, wakeup
from serverless.api import runsync_hold_seconds
from serverless.models import Job, Worker
from serverless.protocol import worker_secret

HELD = re.compile(
    r"^/v2/(?P<endpoint>[^/]+)/(?P<kind>job-take|job-take-batch|job-stop)/(?P<worker>[^/]+)$"
)
RUNSYNC = re.compile(r"^/v2/[^/]+/runsync$")
V2 = re.compile(r"^/v2/[^/]+/")
MAX_BATCH = 100
# The largest body a /v2/ route accepts (20 MB: /runsync, job-done) and one byte more, so the
# view still sees that a longer body is too long; the rest is never read.
MAX_BODY = 20 * 1024 * 1024 + 1


# The threads /v2/ requests and the held requests' database work run in, each with its own
# connection (or a turn of DATABASE_POOL_SIZE's pool): bounded, so a process opens at most this
# many connections here, whatever the traffic.
DB_THREADS = 8
_pool_threads: list[int] = []  # each pool thread adds itself as it starts
_pool = ThreadPoolExecutor(
    DB_THREADS, "serverless-db", initializer=lambda: _pool_threads.append(threading.get_ident())
)


# Each pool thread's own context, kept from one request to the next as a WSGI thread keeps its
# locals: Django keeps its cache clients per context, so in a new context per request the API
# throttle opened a new Redis connection (TCP connect, HELLO) for every request.
_thread_state = threading.local()


def in_thread_context(function: Callable, *args):
    """`function(*args)` in this pool thread's own long-lived context."""
    context = getattr(_thread_state, "context", None)
    if context is None:
        context = _thread_state.context = contextvars.Context()
    return context.run(function, *args)


def in_thread(function: Callable) -> Callable[..., Awaitable]:
    """`function` run in a pool thread, old database connections closed around it."""
    return database_sync_to_async(function, thread_sensitive=False, executor=_pool)


def close_connections() -> None:
    """Close every pool thread's database connection (for tests: before the test database is
    dropped). Each thread waits at a barrier for the others, so each runs exactly one close."""
    count = len(_pool_threads)
    if not count:
        return
    barrier = threading.Barrier(count)

    def close() -> None:
        connections.close_all()
        barrier.wait(timeout=10)

    for future in [_pool.submit(close) for _ in range(count)]:
        future.result()


class ThreadedDjango(ASGIHandler):
    """Django's synchronous handler, as WSGI servers run it, each request in a pool thread.

    Django's ASGI handler runs every sync view on one thread per process, and with sync-only
    middleware in the chain (WhiteNoise, ours) crosses between it and the event loop four
    times a request; here one request is one pool thread, so concurrent /v2/ requests overlap
    their database waits, as WSGI threads do."""

    def __init__(self) -> None:
        BaseHandler.__init__(self)
        self.load_middleware(is_async=False)

    async def __call__(self, scope, receive, send) -> None:
        try:
            body = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            status, headers, content = await in_thread(in_thread_context)(self.respond, scope, body)
        finally:
            body.close()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def read_body(self, receive):
        """The body, spooled to disk past FILE_UPLOAD_MAX_MEMORY_SIZE, up to MAX_BODY bytes."""
        body = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE)  # noqa: SIM115 (closed by the caller)
        size, more = 0, True
        while more and size < MAX_BODY:
            message = await receive()
            if message["type"] == "http.disconnect":
                body.close()
                raise RequestAborted()
            chunk = message.get("body", b"")[: MAX_BODY - size]
            body.write(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
        body.seek(0)
        return body

    def respond(self, scope, body) -> tuple[int, list, bytes]:
        """In the pool thread: Django's request signals, middleware and view, and the whole
        content, so that the connection tidied at request_finished is this thread's."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body)
        if request is not None:
            response = self.get_response(request)
        try:
            content = b"".join(response) if response.streaming else response.content
            return response.status_code, response_headers(response), content
        finally:
            response.close()


def response_headers(response: HttpResponse) -> list[tuple[bytes, bytes]]:
    """As Django's ASGI handler sends them: its headers and a Set-Cookie per cookie."""
    headers = [(name.encode("ascii"), value.encode("latin1")) for name, value in response.items()]
    for cookie in response.cookies.values():
        headers.append((b"Set-Cookie", cookie.output(header="").encode("ascii").strip()))
    return headers


class ServerlessRouter:
    def __init__(self, application) -> None:
        self.application = application
        self.django = ThreadedDjango()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            held = HELD.match(scope["path"])
            if held:
                return await serve_worker_poll(scope, receive, send, held)
            if RUNSYNC.match(scope["path"]) and scope["method"] == "POST":
                return await serve_runsync(self.django, scope, receive, send)
            if V2.match(scope["path"]):
                return await self.django(scope, receive, send)
        return await self.application(scope, receive, send)


async def respond(send, status: int, data=None) -> None:
    body = b"" if data is None else json.dumps(data).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def until_disconnected(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def hold(
    channel: str, fetch: Callable[[], Awaitable], seconds: float, disconnected: asyncio.Task
):
    """`fetch()` until it returns something truthy, waking on `channel`, for up to `seconds`."""
    deadline = time.monotonic() + seconds
    async with wakeup.subscription(channel) as wait:
        while not disconnected.done():
            found = await fetch()
            remaining = deadline - time.monotonic()
            if found or remaining <= 0:
                return found
            waiting = asyncio.ensure_future(wait(remaining))
            await asyncio.wait({waiting, disconnected}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
    return None


def _batch_size(params: dict, kind: str) -> int:
    if kind != "job-take-batch":
        return 1
    try:
        return min(max(int(params.get("batch_size", ["1"])[0]), 1), MAX_BATCH)
    except ValueError:
        return 1


async def serve_worker_poll(scope, receive, send, match: re.Match) -> None:
    if scope["method"] != "GET":
        return await respond(send, 405, {"error": "GET only."})
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    worker = await in_thread(services.authenticate_worker)(
        endpoint_id=match["endpoint"], worker_id=match["worker"], secret=worker_secret(headers)
    )
    if worker is None:
        return await respond(send, 401, {"error": "Unknown worker or wrong secret."})
    params = parse_qs(scope["query_string"].decode("latin-1"))
    disconnected = asyncio.ensure_future(until_disconnected(receive))
    try:
        if match["kind"] == "job-stop":
            return await _serve_stop(send, worker, disconnected)
        return await _serve_take(
            send, worker, _batch_size(params, match["kind"]), match["kind"], disconnected
        )
    finally:
        disconnected.cancel()


async def _serve_take(send, worker: Worker, count: int, kind: str, disconnected) -> None:
    claim = in_thread(services.claim_jobs)
    jobs = await hold(
        wakeup.jobs_channel(worker.endpoint_id),
        lambda: claim(worker=worker, count=count),
        settings.SERVERLESS_JOB_TAKE_HOLD,
        disconnected,
    )
    if disconnected.done():
        return None
    if not jobs:
        return await respond(send, 204)
    return await respond(send, 200, jobs if kind == "job-take-batch" else jobs[0])


async def _serve_stop(send, worker: Worker, disconnected) -> None:
    take = in_thread(services.take_stop_signals)
    job_ids = await hold(
        wakeup.stop_channel(worker.pk),
        lambda: take(worker=worker),
        settings.SERVERLESS_JOB_TAKE_HOLD,
        disconnected,
    )
    if disconnected.done():
        return None
    if not job_ids:
        return await respond(send, 204)
    return await respond(send, 200, {"jobsToStop": job_ids})


async def serve_runsync(application, scope, receive, send) -> None:
    messages: list[dict] = []

    async def capture(message: dict) -> None:
        messages.append(message)

    await application(scope, receive, capture)
    start = messages[0]
    body = b"".join(m.get("body", b"") for m in messages[1:])
    data = json.loads(body) if start["status"] == 200 else None
    if data is None or data.get("status") in Job.FINAL:
        for message in messages:
            await send(message)
        return None
    wait_ms = parse_qs(scope["query_string"].decode("latin-1")).get("wait", [None])[0]
    never = asyncio.get_running_loop().create_future()  # the body was read by Django
    final = await hold(
        wakeup.done_channel(data["id"]),
        lambda: in_thread(_final_status)(data["id"]),
        runsync_hold_seconds(wait_ms),
        never,
    )
    never.cancel()
    current = final or await in_thread(_current_status)(data["id"])
    return await respond(send, 200, current or data)


def _current_status(job_id: str) -> dict | None:
    job = Job.objects.select_related("worker").filter(public_id=job_id).first()
    return services.job_status(job) if job else None


def _final_status(job_id: str) -> dict | None:
    status = _current_status(job_id)
    return status if status and status["status"] in Job.FINAL else None
