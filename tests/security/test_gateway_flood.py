"""A hostile worker floods the worker gateway (the real daphne on its Unix socket,
serverless.worker_asgi): held takes, pings, forged ids, oversized headers. The flood gets 429s
with Retry-After, and a sibling worker is served throughout."""

from __future__ import annotations

import contextlib
import secrets
import socket
from concurrent.futures import ThreadPoolExecutor, as_completed

import pytest

from serverless import gateway_limits as limits
from tests.pods.factories import fund
from tests.serverless.factories import a_worker, an_endpoint
from tests.serverless.gateway_live import (  # noqa: F401 (fixtures)
    gateway,
    gateway_data_dir,
    request,
    worker_settings,
)

MB = 1024 * 1024
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker_settings")]


@pytest.fixture
def workers(team):
    fund(team)
    endpoint = an_endpoint(team)
    (hostile, hostile_secret), (sibling, sibling_secret) = a_worker(endpoint), a_worker(endpoint)
    e = endpoint.public_id
    return {
        "ping": f"/v2/{e}/ping/{hostile.public_id}",
        "take": f"/v2/{e}/job-take/{hostile.public_id}",
        "auth": {"Authorization": hostile_secret},
        "sibling_ping": f"/v2/{e}/ping/{sibling.public_id}",
        "sibling_take": f"/v2/{e}/job-take/{sibling.public_id}",
        "sibling_auth": {"Authorization": sibling_secret},
        "endpoint": e,
    }


def statuses(socket, calls: list[tuple[str, dict]], threads: int) -> list[tuple[int, bytes]]:
    def one(call):
        return request(socket, "GET", *call[:1], None, call[1])

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, calls))


def test_a_worker_holding_fifty_takes_gets_four_and_its_sibling_is_still_served(
    gateway,  # noqa: F811
    workers,
):
    w = workers
    assert request(gateway, "GET", w["ping"], None, w["auth"])[0] == 200
    assert request(gateway, "GET", w["sibling_ping"], None, w["sibling_auth"])[0] == 200
    with ThreadPoolExecutor(52) as pool:
        flood = [
            pool.submit(request, gateway, "GET", w["take"], None, w["auth"]) for _ in range(50)
        ]
        refused = []
        for future in as_completed(flood):  # the refusals come at once, the held ones later
            refused.append(future.result())
            if len(refused) == 50 - limits.HELD:
                break
        still_held = sum(not future.done() for future in flood)
        sibling_ping = request(gateway, "GET", w["sibling_ping"], None, w["sibling_auth"])
        sibling_take = pool.submit(
            request, gateway, "GET", w["sibling_take"], None, w["sibling_auth"]
        )
        answers = [f.result()[0] for f in flood]
    assert still_held == limits.HELD
    assert {status for status, _ in refused} == {429}
    assert answers.count(429) == 50 - limits.HELD
    assert answers.count(204) == limits.HELD  # held the whole SERVERLESS_JOB_TAKE_HOLD
    assert all(b"Too many requests" in body for _, body in refused)
    assert sibling_ping[0] == 200
    assert sibling_take.result()[0] == 204


def test_a_ping_flood_is_cut_to_the_workers_rate_and_its_sibling_pings_through(
    gateway,  # noqa: F811
    workers,
):
    w = workers
    flood = [(w["ping"], w["auth"])] * 400
    mixed = flood[:200] + [(w["sibling_ping"], w["sibling_auth"])] + flood[200:]
    answers = [status for status, _ in statuses(gateway, mixed, threads=16)]
    sibling = answers.pop(200)
    assert sibling == 200
    assert answers.count(429) > 0
    assert set(answers) == {200, 429}
    assert answers.count(200) < 400


def test_twenty_new_workers_holding_their_first_takes_at_once_are_all_served(gateway, team):  # noqa: F811
    """A caller not known yet is authenticated by the gateway at once, so held first requests
    never sit in the strangers' 16 places."""
    fund(team)
    endpoint = an_endpoint(team)
    takes = []
    for _ in range(20):
        worker, secret = a_worker(endpoint)
        path = f"/v2/{endpoint.public_id}/job-take/{worker.public_id}"
        takes.append((path, {"Authorization": secret}))
    answers = [status for status, _ in statuses(gateway, takes, threads=20)]
    assert answers == [204] * 20


def test_forged_worker_ids_share_one_small_allowance(gateway, workers):  # noqa: F811
    w = workers
    assert request(gateway, "GET", w["sibling_ping"], None, w["sibling_auth"])[0] == 200
    forged = [
        (f"/v2/{w['endpoint']}/ping/{secrets.token_hex(6)}", {"Authorization": "guess"})
        for _ in range(300)
    ]
    answers = [status for status, _ in statuses(gateway, forged, threads=16)]
    assert set(answers) == {401, 429}
    assert answers.count(401) <= limits.STRANGER_BURST + 10 * limits.STRANGER_RATE
    assert request(gateway, "GET", w["sibling_ping"], None, w["sibling_auth"])[0] == 200


def head_answer(socket, url: str, headers: dict) -> int | str:
    """The status, or "cut off" when daphne (Twisted) drops the connection unanswered."""
    try:
        return request(socket, "GET", url, None, headers)[0]
    except ConnectionError:
        return "cut off"


def test_an_oversized_request_head_is_refused_before_the_console_sees_it(
    gateway,  # noqa: F811
    workers,
):
    """Twisted's bounds: 16 KB for the request line and headers, 500 headers."""
    w = workers
    long_header = {**w["auth"], "User-Agent": "x" * 20_000}
    many = {**w["auth"], **{f"X-Junk-{n}": "1" for n in range(600)}}
    answers = [
        head_answer(gateway, w["ping"], long_header),
        head_answer(gateway, w["ping"], many),
        head_answer(gateway, w["ping"] + "?" + "q" * 20_000, w["auth"]),
    ]
    assert set(answers) <= {400, "cut off"}, answers
    assert head_answer(gateway, w["ping"], {**w["auth"], "User-Agent": "x" * 8_000}) == 200


def test_an_endless_body_is_cut_off_past_20_mb_before_it_fills_the_disk(gateway, workers):  # noqa: F811
    """Twisted would spool the whole body to a temporary file before the gateway saw it."""
    done = workers["ping"].replace("/ping/", "/job-done/") + "/job1"
    head = (
        f"POST {done} HTTP/1.1\r\nHost: x\r\nAuthorization: {workers['auth']['Authorization']}\r\n"
        f"Content-Length: {200 * MB}\r\n\r\n"
    ).encode()
    sent, answer = 0, b""
    with socket.socket(socket.AF_UNIX) as connection:
        connection.settimeout(30)
        connection.connect(str(gateway))
        connection.sendall(head)
        chunk = b"x" * MB
        try:
            while sent < 200 * MB:
                connection.sendall(chunk)
                sent += MB
        except OSError:  # the gateway closed the connection
            pass
        with contextlib.suppress(OSError):
            answer = connection.recv(200)
    assert sent < 40 * MB
    assert answer == b"" or answer.startswith(b"HTTP/1.1 413"), answer
    assert request(gateway, "GET", workers["ping"], None, workers["auth"])[0] == 200
