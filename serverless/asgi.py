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
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.conf import settings

from serverless import services, wakeup
from serverless.api import runsync_hold_seconds
from serverless.models import Job, Worker
from serverless.protocol import worker_secret

HELD = re.compile(
    r"^/v2/(?P<endpoint>[^/]+)/(?P<kind>job-take|job-take-batch|job-stop)/(?P<worker>[^/]+)$"
)
RUNSYNC = re.compile(r"^/v2/[^/]+/runsync$")
MAX_BATCH = 100


class ServerlessRouter:
    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            held = HELD.match(scope["path"])
            if held:
                return await serve_worker_poll(scope, receive, send, held)
            if RUNSYNC.match(scope["path"]) and scope["method"] == "POST":
                return await serve_runsync(self.application, scope, receive, send)
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
    worker = await database_sync_to_async(services.authenticate_worker)(
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
    claim = database_sync_to_async(services.claim_jobs)
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
    take = database_sync_to_async(services.take_stop_signals)
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
        lambda: database_sync_to_async(_final_status)(data["id"]),
        runsync_hold_seconds(wait_ms),
        never,
    )
    never.cancel()
    current = final or await database_sync_to_async(_current_status)(data["id"])
    return await respond(send, 200, current or data)


def _current_status(job_id: str) -> dict | None:
    job = Job.objects.select_related("worker").filter(public_id=job_id).first()
    return services.job_status(job) if job else None


def _final_status(job_id: str) -> dict | None:
    status = _current_status(job_id)
    return status if status and status["status"] in Job.FINAL else None
