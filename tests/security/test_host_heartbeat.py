"""The heartbeat endpoint as a hostile host sees it: the body, the headers and the token are
the host's to choose. Nothing it sends may reach another machine, a 500, an unbounded row or
the GPU pool before staff approved the machine."""

import json

import pytest
from django.test import Client

from hosting import services
from hosting.models import HostedMachine
from pods.models import Machine
from tests.hosting.conftest import host, listed, parts, register  # noqa: F401 (fixtures)

URL = "/api/v1/hosts/heartbeat"


def post(token: str, body: bytes | str, **headers) -> int:
    headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {token}")
    return Client().post(URL, body, content_type="application/json", **headers).status_code


@pytest.fixture
def token(listed) -> str:  # noqa: F811
    return services.rotate_token(actor=None, hosted=listed)


def test_a_token_reports_for_its_own_machine_only(listed, host, parts, token):  # noqa: F811
    other = register(host, parts, name="second")
    assert post(token, json.dumps({"driver": "999"})) == 200
    other.refresh_from_db()
    assert other.last_report == {} and other.last_heartbeat_at is None


@pytest.mark.parametrize(
    "body",
    [
        "[]",
        '"text"',
        "not json",
        '{"gpus": {"a": 1}}',
        json.dumps({"gpus": [{}] * 17}),
        "[" * 8000 + "]" * 8000,  # deeper than json.loads recurses, under the size limit
    ],
)
def test_bodies_that_are_no_report_are_refused_without_a_trace(listed, token, body):  # noqa: F811
    before = HostedMachine.objects.get(pk=listed.pk).last_report
    assert post(token, body) == 400
    assert HostedMachine.objects.get(pk=listed.pk).last_report == before


def test_an_oversized_body_is_refused(listed, token):  # noqa: F811
    assert post(token, json.dumps({"driver": "x" * 20_000})) == 413


def test_what_is_stored_is_bounded_and_typed(listed, token):  # noqa: F811
    body = {
        "gpus": [{"model": "A\x00" + "B" * 500, "utilization": 1e9, "memory_used_mb": True}],
        "driver": ["550"],
        "free_disk_gb": -5,
        "extra": "x" * 1000,
        "__proto__": {"admin": True},
    }
    assert post(token, json.dumps(body)) == 200
    report = HostedMachine.objects.get(pk=listed.pk).last_report
    assert report == {
        "gpus": [
            {
                "model": "A" + "B" * 63,
                "utilization": None,
                "memory_used_mb": None,
                "memory_total_mb": None,
            }
        ],
        "driver": "",
        "free_disk_gb": None,
        "agent": "",
    }


def test_the_token_counts_only_as_a_bearer_header(listed, token):  # noqa: F811
    assert (
        Client().post(f"{URL}?token={token}", "{}", content_type="application/json").status_code
        == 401
    )
    assert post(token, "{}", HTTP_AUTHORIZATION=f"Basic {token}") == 401
    assert post(token, "{}", HTTP_AUTHORIZATION=f"Bearer {token[:-1]}") == 401
    assert Client().get(URL, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 405


def test_heartbeats_from_an_unreviewed_machine_do_not_list_it(host, parts):  # noqa: F811
    pending = register(host, parts, name="pending")
    secret = services.rotate_token(actor=None, hosted=pending)
    assert post(secret, "{}") == 200
    assert not Machine.objects.available(host).filter(pk=pending.machine_id).exists()
