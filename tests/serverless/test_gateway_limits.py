"""The worker gateway's per-worker bounds (serverless.gateway_limits), driven through the
gateway's ASGI middleware with a console stand-in that holds or answers as told, and a clock
the test moves. The live gateway under a real flood: tests/security/test_gateway_flood.py."""

from __future__ import annotations

import asyncio
import secrets

from serverless import gateway_limits as limits
from serverless.gateway import WorkerGateway
from serverless.gateway_limits import Limiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Console:
    """Holds takes and (when `hold_short`) short requests until `release` is set, and counts
    what it served and what it holds at once; its `authenticate` refuses the secret "bad"."""

    def __init__(self, hold_short: bool = False) -> None:
        self.release = asyncio.Event()
        self.hold_short = hold_short
        self.served = 0
        self.holding = 0
        self.most_held = 0
        self.asked = 0

    async def authenticate(self, *, endpoint_id: str, worker_id: str, authorization: str):
        self.asked += 1
        return None if authorization == "bad" else (endpoint_id, worker_id)

    async def __call__(self, scope, receive, send) -> None:
        self.served += 1
        if "/job-take/" in scope["path"] or self.hold_short:
            self.holding += 1
            self.most_held = max(self.most_held, self.holding)
            await self.release.wait()
            self.holding -= 1
        await answer(send, 200)


async def answer(send, status: int) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def call(app, path: str, secret: str = "") -> tuple[int, dict]:
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "headers": [(b"authorization", (secret or "own").encode())],
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    return start["status"], dict(start["headers"])


def ping(worker: str = "w1") -> str:
    return f"/v2/e1/ping/{worker}"


def take(worker: str = "w1") -> str:
    return f"/v2/e1/job-take/{worker}"


def gateway(console: Console, clock: Clock | None = None) -> WorkerGateway:
    return WorkerGateway(console, console.authenticate, Limiter(clock or Clock()))


def test_it_holds_at_most_four_takes_of_a_worker_and_refuses_the_rest_with_retry_after():
    async def scenario():
        console = Console()
        app = gateway(console)
        assert (await call(app, ping()))[0] == 200  # the worker is now known
        flood = [asyncio.ensure_future(call(app, take())) for _ in range(50)]
        await asyncio.sleep(0.05)
        refused = [task.result() for task in flood if task.done()]
        other = await call(app, ping("w2"))  # another worker, a stranger still
        console.release.set()
        held = await asyncio.gather(*flood)
        return console, refused, held, other

    console, refused, held, other = asyncio.run(scenario())
    assert console.most_held == limits.HELD
    assert len(refused) == 50 - limits.HELD
    assert {status for status, _ in refused} == {429}
    assert {headers[b"retry-after"] for _, headers in refused} == {b"1"}
    assert sorted(status for status, _ in held).count(200) == limits.HELD
    assert other[0] == 200


def test_short_requests_over_the_cap_wait_their_turn_and_only_a_flood_beyond_is_refused():
    """Job-done is never refused for a busy worker (the SDK does not retry a 429 there): past
    SHORT in flight requests wait, and only past SHORT + SHORT_WAITING are they refused."""

    async def scenario():
        console = Console()
        app = gateway(console)
        await call(app, ping())
        console.hold_short = True
        sent = limits.SHORT + limits.SHORT_WAITING + 10
        flood = [asyncio.ensure_future(call(app, "/v2/e1/job-done/w1/j1")) for _ in range(sent)]
        await asyncio.sleep(0.05)
        refused = [task.result()[0] for task in flood if task.done()]
        most_held = console.most_held
        console.release.set()
        answered = [status for status, _ in await asyncio.gather(*flood)]
        return most_held, refused, answered

    most_held, refused, answered = asyncio.run(scenario())
    assert most_held == limits.SHORT
    assert refused == [429] * 10
    assert answered.count(200) == limits.SHORT + limits.SHORT_WAITING


def test_a_worker_over_its_rate_gets_429_until_its_tokens_come_back():
    async def scenario(clock: Clock):
        app = gateway(Console(), clock)
        first = await call(app, ping())
        statuses = [(await call(app, ping()))[0] for _ in range(int(limits.BURST) + 5)]
        refused = await call(app, ping())
        clock.now += 2 / limits.RATE
        again = await call(app, ping())
        return first, statuses, refused, again

    first, statuses, refused, again = asyncio.run(scenario(Clock()))
    assert first[0] == 200
    assert statuses.count(200) == limits.BURST - 1  # the first ping took a token too
    assert statuses.count(429) == 6
    assert (refused[0], refused[1][b"retry-after"]) == (429, b"1")
    assert again[0] == 200


def test_forged_ids_share_one_small_allowance_and_leave_nothing_behind():
    """Random worker ids or a known worker's id with a wrong secret are strangers: together
    they get STRANGER_BURST authentications, answered 401 by the gateway, a known worker is
    served throughout, and no state is kept for them."""

    async def scenario():
        console = Console()
        limiter = Limiter(Clock())
        app = WorkerGateway(console, console.authenticate, limiter)
        await call(app, ping())
        statuses = [(await call(app, ping(secrets.token_hex(8)), "bad"))[0] for _ in range(500)]
        statuses += [(await call(app, ping(), "bad"))[0] for _ in range(20)]
        own = await call(app, ping())
        return console, limiter, statuses, own

    console, limiter, statuses, own = asyncio.run(scenario())
    assert statuses.count(401) == limits.STRANGER_BURST - 1  # the known worker's first ping
    assert statuses.count(429) == 520 - statuses.count(401)
    assert console.asked == limits.STRANGER_BURST
    assert console.served == 2  # the known worker's pings only
    assert own[0] == 200
    assert len(limiter.callers) == 1
    assert limiter.strangers_in_flight == 0


def test_a_known_worker_is_forgotten_after_it_went_quiet():
    async def scenario(clock: Clock):
        limiter = Limiter(clock)
        console = Console()
        app = WorkerGateway(console, console.authenticate, limiter)
        await call(app, ping())
        clock.now += limits.IDLE_FORGET - 1
        await call(app, ping("w2"))
        kept = len(limiter.callers)
        clock.now += limits.IDLE_FORGET + 1
        await call(app, ping("w3"), "bad")
        return kept, len(limiter.callers)

    assert asyncio.run(scenario(Clock())) == (2, 0)
