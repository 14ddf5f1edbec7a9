"""Per-worker bounds at the worker gateway (serverless.gateway): a worker pod is hostile code
and must not tie up the gateway's coroutines, database threads and connections for everyone.

A caller is a worker id and the secret it sends (a digest of both, so a pod sending another
worker's id with a wrong secret never spends that worker's allowance). Each caller whose id
and secret the gateway accepted is *known* and gets its own bounds:

- held requests (job-take, job-take-batch, job-stop) in flight: HELD (the SDK holds two, a
  take loop and a stop loop);
- short requests (ping, job-done, job-stream) in flight: SHORT; up to SHORT_WAITING more wait
  their turn instead of being refused, because the SDK does not retry a 429 on job-done (it
  would lose the result) and a worker running many jobs at once may finish them together;
- a token bucket of RATE requests a second, BURST at once.

A caller not known yet is authenticated by the gateway itself (one query) before anything
else, within one small allowance all such callers share (STRANGER_*: a rate, and places in
flight with a few more waiting, as many workers may start at once): a forged or random id
costs that query to refuse, so the gateway cannot let each one count as a new worker; a valid
one is known from then on (its first request included), and a held request never waits as a
stranger.
Anything over a bound is answered 429 with Retry-After (the SDK backs off: job-take 5 s, ping
its retries).

The state lives in the gateway process, not in Redis: there is one gateway daphne per host
(scripts/run.sh) and a pod reaches only its own host's socket, so one process sees all of a
worker's traffic; a Redis round trip on every worker request would load the service the limit
protects. A restart forgets the counts, which only hands out one fresh burst. Known callers are
forgotten after IDLE_FORGET seconds without a request (the SDK pings every 10 s), so the table
holds only the (worker, secret) pairs the gateway accepted lately.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

HELD = 4
SHORT = 8
SHORT_WAITING = 56
RATE = 50.0
BURST = 100.0
STRANGER_RATE = 20.0
STRANGER_BURST = 40.0
STRANGER_IN_FLIGHT = 16
STRANGER_WAITING = 48
IDLE_FORGET = 120.0
HELD_KINDS = frozenset({"job-take", "job-take-batch", "job-stop"})


class Refused(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class Unknown(Exception):
    """The id and secret name no live worker (the gateway answers 401)."""


@dataclass
class Bucket:
    rate: float
    burst: float
    tokens: float = -1.0
    stamp: float = 0.0

    def take(self, now: float) -> None:
        """Spend one token, or raise Refused with the seconds until one is back."""
        if self.tokens < 0:
            self.tokens, self.stamp = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            raise Refused(max(1, math.ceil((1 - self.tokens) / self.rate)))
        self.tokens -= 1


@dataclass
class Caller:
    bucket: Bucket
    short_turns: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(SHORT))
    held: int = 0
    short: int = 0  # in flight and waiting
    last_seen: float = 0.0


def caller_key(worker_id: str, authorization: bytes) -> bytes:
    return hashlib.sha256(worker_id.encode() + b"\0" + authorization).digest()


class Limiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.callers: dict[bytes, Caller] = {}
        self.strangers = Bucket(STRANGER_RATE, STRANGER_BURST)
        self.strangers_in_flight = 0  # and waiting
        self.stranger_turns = asyncio.Semaphore(STRANGER_IN_FLIGHT)
        self.swept = clock()

    async def run(
        self, key: bytes, kind: str, serve: Callable[[], Awaitable], accept: Callable[[], Awaitable]
    ) -> None:
        """`serve()` within the caller's bounds: Refused when over one, Unknown when the caller
        is not known and `accept()` (the gateway's authentication) says no."""
        now = self.clock()
        self.sweep(now)
        caller = self.callers.get(key) or await self._accept(key, accept, now)
        caller.last_seen = now
        caller.bucket.take(now)
        if kind in HELD_KINDS:
            return await self._held(caller, serve)
        return await self._short(caller, serve)

    async def _accept(self, key: bytes, accept: Callable[[], Awaitable], now: float) -> Caller:
        if self.strangers_in_flight >= STRANGER_IN_FLIGHT + STRANGER_WAITING:
            raise Refused(1)
        self.strangers.take(now)
        self.strangers_in_flight += 1
        try:
            async with self.stranger_turns:
                accepted = await accept()
        finally:
            self.strangers_in_flight -= 1
        if not accepted:
            raise Unknown()
        return self.callers.setdefault(key, Caller(Bucket(RATE, BURST), last_seen=now))

    async def _held(self, caller: Caller, serve: Callable) -> None:
        if caller.held >= HELD:
            raise Refused(1)
        caller.held += 1
        try:
            await serve()
        finally:
            caller.held -= 1

    async def _short(self, caller: Caller, serve: Callable) -> None:
        if caller.short >= SHORT + SHORT_WAITING:
            raise Refused(1)
        caller.short += 1
        try:
            async with caller.short_turns:
                await serve()
        finally:
            caller.short -= 1

    def sweep(self, now: float) -> None:
        """Forget known callers idle for IDLE_FORGET seconds (at most once a second)."""
        if now - self.swept < 1:
            return
        self.swept = now
        idle = [
            key
            for key, caller in self.callers.items()
            if not caller.held and not caller.short and now - caller.last_seen > IDLE_FORGET
        ]
        for key in idle:
            del self.callers[key]
