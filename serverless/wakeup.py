"""Redis pub/sub that wakes held long-polls: a queued job wakes its endpoint's job-takes, a
stop signal wakes its worker's job-stop, a finished job wakes its /runsync. A message only
says "look again": the facts are in PostgreSQL, so a lost message costs at most one re-check
interval (RECHECK_SECONDS), never a job.

One subscription per event loop serves every held request of the process: waiting needs no
thread and no Redis connection per request."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import defaultdict

import redis
import redis.asyncio
from django.conf import settings

PREFIX = "serverless:"
RECHECK_SECONDS = 5.0
_sync_client: redis.Redis | None = None
_listeners: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def jobs_channel(endpoint_id: int) -> str:
    return f"{PREFIX}jobs:{endpoint_id}"


def stop_channel(worker_id: int) -> str:
    return f"{PREFIX}stop:{worker_id}"


def done_channel(job_id: str) -> str:
    return f"{PREFIX}done:{job_id}"


def publish(channel: str) -> None:
    """Wake whoever waits on `channel` (call it from transaction.on_commit)."""
    global _sync_client
    if _sync_client is None:
        _sync_client = redis.Redis.from_url(settings.REDIS_URL)
    # On failure, waiters still re-check the database every RECHECK_SECONDS.
    with contextlib.suppress(redis.RedisError):
        _sync_client.publish(channel, b"1")


class Listener:
    """The loop's one pattern subscription, fanning messages out to asyncio events."""

    def __init__(self) -> None:
        # Per channel, the waiters' events in arrival order (a dict keeps insertion order).
        self.waiting: dict[str, dict[asyncio.Event, None]] = defaultdict(dict)
        self.ready = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except (redis.RedisError, OSError):
                self.ready.clear()
                await asyncio.sleep(1)

    async def _listen(self) -> None:
        client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
        async with client.pubsub() as pubsub:
            await pubsub.psubscribe(f"{PREFIX}*")
            self.ready.set()
            async for message in pubsub.listen():
                if message["type"] == "pmessage":
                    self.wake(message["channel"].decode())

    def wake(self, channel: str) -> None:
        """One queued job wakes one waiting job-take (the longest waiting that is not awake
        yet), not the whole herd; other channels wake every waiter."""
        waiting = self.waiting.get(channel, {})
        events = [event for event in waiting if not event.is_set()]
        if channel.startswith(f"{PREFIX}jobs:"):
            events = events[:1]
        for event in events:
            event.set()
            waiting[event] = waiting.pop(event)  # to the back: the next job wakes another


def _listener() -> Listener:
    loop = asyncio.get_running_loop()
    listener = _listeners.get(loop)
    if listener is None or listener.task.done():
        listener = Listener()
        _listeners[loop] = listener
    return listener


@contextlib.asynccontextmanager
async def subscription(channel: str):
    """`async with subscription(c) as wait: ... await wait(timeout)`: subscribe first, then
    check the database, then wait, so a message sent in between is not lost."""
    listener = _listener()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(listener.ready.wait(), 2)
    event = asyncio.Event()
    listener.waiting[channel][event] = None

    async def wait(timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), min(timeout, RECHECK_SECONDS))
        event.clear()

    try:
        yield wait
    finally:
        listener.waiting[channel].pop(event, None)
        if not listener.waiting[channel]:
            del listener.waiting[channel]
        elif event.is_set():
            listener.wake(channel)  # a wake this waiter leaves unused goes to another
