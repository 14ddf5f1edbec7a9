"""A job's webhook URL is attacker input (anyone with a key names it; a hostile pod can submit
jobs with its own key): it must not make the console call its own loopback services, the
cloud metadata address or a private network, follow a redirect there, or hang on a server
that never answers. Servers are the tests' own: on loopback, or in a network namespace the
test creates (tests/security/conftest.py)."""

import socket
import time

import pytest

from serverless import webhooks
from teams.models import AuditEvent
from tests.serverless.webhook_receivers import (  # noqa: F401 (fixtures)
    endpoint_fixture,
    finish,
    private_allowed_fixture,
    raw_server,
    serve_fixture,
)

pytestmark = pytest.mark.django_db


@pytest.mark.usefixtures("eager_tasks", "private_allowed")
def test_redirects_are_not_followed(endpoint, serve, django_capture_on_commit_callbacks):
    elsewhere = serve()
    redirecting = serve(statuses=[302], headers={"Location": elsewhere.url})
    job = finish(endpoint, redirecting.url, django_capture_on_commit_callbacks)
    assert elsewhere.requests == []
    assert job.webhook_result == "HTTP 302" and job.webhook_delivered_at is None


@pytest.mark.usefixtures("private_allowed")
def test_a_silent_server_times_out_and_an_endless_answer_is_cut(monkeypatch):
    monkeypatch.setattr(webhooks, "TIMEOUT", 0.5)
    silent = raw_server(None)
    started = time.monotonic()
    with pytest.raises(webhooks.Failed, match="timed out after 0.5 s"):
        webhooks.post(f"http://127.0.0.1:{silent.getsockname()[1]}/", b"{}")
    assert time.monotonic() - started < 2
    endless = raw_server(b"x" * 1_000_000)
    with pytest.raises(webhooks.Failed, match="not an HTTP response"):
        webhooks.post(f"http://127.0.0.1:{endless.getsockname()[1]}/", b"{}")
    silent.close()
    endless.close()


@pytest.mark.usefixtures("private_allowed")
def test_the_host_is_resolved_once_and_named_in_the_host_header(serve, monkeypatch):
    """Connecting to the address of the one lookup (a second one could rebind the name)."""
    server = serve()
    lookups = []
    real = socket.getaddrinfo

    def counting(host, *args, **kwargs):
        lookups.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    port = server.server_address[1]
    assert webhooks.post(f"http://localhost:{port}/x", b"{}") == 200
    assert lookups == ["localhost"]
    assert server.requests[0]["headers"]["Host"] == f"localhost:{port}"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",
        "http://localhost:{port}/hook",
        "http://[::ffff:127.0.0.1]:{port}/hook",
        "http://0.0.0.0:{port}/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.1/hook",
        "http://172.16.0.1/hook",
        "http://100.64.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/hook",
        "http://[fd00::1]/hook",
        "http://[::1]/hook",
        "http://[64:ff9b::7f00:1]/hook",
        "http://[2002:a00:1::]/hook",
        "http://224.0.0.1/hook",
    ],
)
def test_private_addresses_are_refused_when_the_setting_is_off(url, serve, settings):
    settings.SERVERLESS_WEBHOOK_ALLOW_PRIVATE = False
    server = serve()
    with pytest.raises(webhooks.Refused, match=r"is an? [a-z-]+ address"):
        webhooks.post(url.format(port=server.server_address[1]), b"{}")
    assert server.requests == []


@pytest.mark.usefixtures("eager_tasks")
def test_a_refused_webhook_is_recorded_and_not_retried(
    endpoint, serve, settings, django_capture_on_commit_callbacks
):
    settings.SERVERLESS_WEBHOOK_ALLOW_PRIVATE = False
    server = serve()
    job = finish(endpoint, server.url, django_capture_on_commit_callbacks)
    assert server.requests == []
    assert job.webhook_attempts == 1
    assert job.webhook_result == "refused: 127.0.0.1 is a loopback address"
    assert job.webhook_delivered_at is None
    assert AuditEvent.objects.get(action="job.webhook_failed").details["attempts"] == 1


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/x", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://example.com:99999/", "port"),
        ("http://example.com/a b", "ASCII"),
        ("http://example.com/\r\nX-Injected: 1", "ASCII"),
        ("http:///nohost", "no host"),
    ],
)
def test_urls_that_are_not_plain_http_are_refused(url, reason):
    with pytest.raises(webhooks.Refused, match=reason):
        webhooks.post(url, b"{}")


def test_public_addresses_pass_the_check():
    for address in ("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "1.1.1.1"):
        webhooks.check_address(address)  # no connection is made


def test_a_hostile_jobs_webhook_never_connects_to_the_consoles_loopback(
    endpoint, console_listener, settings, eager_tasks, django_capture_on_commit_callbacks
):
    """The hook a job names is called by the console itself, from the host: with the setting
    off, a service on the host's loopback (by address or by a name resolving there) gets no
    connection at all. With it on, the same URL connects: the check is what stops it."""
    settings.SERVERLESS_WEBHOOK_ALLOW_PRIVATE = False
    # 0.0.0.0 as a destination reaches the host's loopback on Linux: nothing binds to it here.
    for host in ("127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "0.0.0.0"):  # noqa: S104
        url = f"http://{host}:{console_listener.port}/admin/"
        job = finish(endpoint, url, django_capture_on_commit_callbacks)
        assert job.webhook_result.startswith("refused: "), job.webhook_result
    assert console_listener.accepted == []
    settings.SERVERLESS_WEBHOOK_ALLOW_PRIVATE = True
    with pytest.raises(webhooks.Failed):  # the listener hangs up without an answer
        webhooks.post(f"http://127.0.0.1:{console_listener.port}/admin/", b"{}")
    assert len(console_listener.accepted) == 1


def test_a_private_network_the_host_routes_to_is_refused(outside_server, settings):
    """10.213.0.2 is a real server on a network the host reaches (a namespace of this test's):
    refused while the setting is off; with it on, the POST arrives there (the server answers
    GETs only: 501), through the address the one lookup gave."""
    settings.SERVERLESS_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(webhooks.Refused, match="10.213.0.2 is a private address"):
        webhooks.post(outside_server.url, b"{}")
    settings.SERVERLESS_WEBHOOK_ALLOW_PRIVATE = True
    assert webhooks.post(outside_server.url, b"{}") == 501
