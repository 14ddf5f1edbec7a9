"""The HTTP and WebSocket proxy in front of pods' HTTP ports, against a real pod (process
runtime) serving a stdlib echo server, through the console's real ASGI application."""

import hashlib
import json
import tracemalloc

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client

from console.asgi import application
from pods.connect import proxy, services
from pods.models import Pod, ProxyAccess
from teams.models import AuditEvent, Membership
from tests.conftest import make_user
from tests.pods.connect_helpers import Call, echo_pod, session_cookie
from tests.pods.factories import stopped_pod

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("reap")]


def call(**kwargs):
    return async_to_sync(Call(**kwargs).run)(application)


@pytest.fixture
def pod(team, alice, parts) -> Pod:
    return echo_pod(team, alice, parts)


def prefix(pod: Pod) -> str:
    return f"/proxy/{pod.public_id}-8080"


def test_it_answers_get_through_the_path_form_without_cookies_or_hop_headers(pod, alice):
    cookie = session_cookie(alice) + b"; csrftoken=secret; app=1"
    headers = [
        (b"cookie", cookie),
        (b"connection", b"keep-alive, x-hop"),
        (b"x-hop", b"dropped"),
        (b"x-app", b"kept"),
    ]
    reply = call(method="GET", path=prefix(pod) + "/hello", query="x=1", headers=headers)
    assert reply.status == 200
    seen = json.loads(reply.body)
    assert seen["path"] == "/hello?x=1"
    received = {name.lower(): value for name, value in seen["headers"].items()}
    # Every cookie on the console's origin is the console's: none reaches the pod.
    assert "cookie" not in received
    assert received["x-app"] == "kept"
    assert "x-hop" not in received
    assert received["x-forwarded-prefix"] == prefix(pod)
    assert received["x-forwarded-for"] == "10.0.0.7"
    assert received["x-forwarded-proto"] == "http"
    assert received["host"] == "testserver"


def test_it_streams_a_post_body_to_the_pod(pod, alice):
    body = bytes(range(256)) * 4096  # 1 MiB, sent in 16 pieces
    pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    headers = [(b"cookie", session_cookie(alice)), (b"content-length", str(len(body)).encode())]
    reply = call(method="POST", path=prefix(pod) + "/upload", headers=headers, chunks=pieces)
    seen = json.loads(reply.body)
    assert reply.status == 200
    assert seen == {
        "method": "POST",
        "path": "/upload",
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "chunked": False,
    }
    chunked = [(b"cookie", session_cookie(alice)), (b"transfer-encoding", b"chunked")]
    reply = call(method="POST", path=prefix(pod) + "/c", headers=chunked, chunks=[b"ab", b"cd"])
    assert json.loads(reply.body)["length"] == 4
    assert json.loads(reply.body)["chunked"] is True


def test_it_streams_a_50_mb_download_with_bounded_memory(pod, alice):
    headers = [(b"cookie", session_cookie(alice))]
    tracemalloc.start()
    try:
        reply = call(method="GET", path=prefix(pod) + "/big", headers=headers, keep_body=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reply.status == 200
    assert reply.header("content-length") == str(50 * 1024 * 1024)
    assert reply.size == 50 * 1024 * 1024
    assert reply.chunks > 100 and reply.largest_chunk <= 1024 * 1024
    assert peak < 8 * 1024 * 1024, f"the proxy held {peak / 1024**2:.1f} MB at once"


def test_it_serves_a_team_only_page_on_the_path_form_inert_and_without_its_cookies(pod, alice):
    reply = call(
        method="GET", path=prefix(pod) + "/cookies", headers=[(b"cookie", session_cookie(alice))]
    )
    assert reply.status == 200
    assert reply.all("set-cookie") == []
    assert reply.all("content-security-policy") == [proxy.SANDBOX]
    assert "allow-same-origin" not in proxy.SANDBOX
    assert reply.all("x-content-type-options") == ["nosniff"]


def test_it_redirects_the_bare_prefix_to_its_slash(pod):
    reply = call(method="GET", path=prefix(pod), query="a=b")
    assert (reply.status, reply.header("location")) == (302, prefix(pod) + "/?a=b")


def test_it_echoes_websocket_frames_through_the_proxy(pod, alice):
    headers = [
        (b"cookie", session_cookie(alice)),
        (b"origin", b"http://testserver"),
        (b"host", b"testserver"),
    ]

    async def scenario() -> list:
        socket = WebsocketCommunicator(application, prefix(pod) + "/ws?room=1", headers=headers)
        connected, _ = await socket.connect(timeout=10)
        assert connected
        hello = await socket.receive_from(timeout=5)
        await socket.send_to(text_data="ping ü")
        text = await socket.receive_from(timeout=5)
        await socket.send_to(bytes_data=b"\x00\x01binary")
        binary = await socket.receive_from(timeout=5)
        await socket.disconnect()
        return [hello, text, binary]

    hello, text, binary = async_to_sync(scenario)()
    assert hello == "path:/ws?room=1 host:testserver"
    assert text == "ping ü"
    assert binary == b"\x00\x01binary"


def test_it_refuses_websockets_opened_from_a_foreign_page(pod, alice):
    headers = [(b"cookie", session_cookie(alice)), (b"origin", b"https://evil.example")]

    async def scenario() -> bool:
        socket = WebsocketCommunicator(application, prefix(pod) + "/ws", headers=headers)
        connected, _ = await socket.connect(timeout=10)
        return connected

    assert async_to_sync(scenario)() is False


def test_it_hides_team_only_ports_from_outsiders_and_sends_anonymous_users_to_login(
    pod, team, charlie
):
    outsider = call(
        method="GET", path=prefix(pod) + "/", headers=[(b"cookie", session_cookie(charlie))]
    )
    assert outsider.status == 404
    assert b"No such pod" in outsider.body
    anonymous = call(method="GET", path=prefix(pod) + "/x", query="y=1")
    assert anonymous.status == 302
    assert anonymous.header("location") == f"/accounts/login/?next={prefix(pod)}/x%3Fy%3D1"
    billing = make_user("billing@example.com")
    Membership.objects.create(user=billing, team=team, role="billing")
    refused = call(
        method="GET", path=prefix(pod) + "/", headers=[(b"cookie", session_cookie(billing))]
    )
    assert refused.status == 403
    basic = make_user("basic@example.com")
    Membership.objects.create(user=basic, team=team, role="basic")
    assert (
        call(
            method="GET", path=prefix(pod) + "/", headers=[(b"cookie", session_cookie(basic))]
        ).status
        == 200
    )


def test_it_serves_a_public_port_to_anyone_in_a_sandbox(pod, alice, charlie):
    services.set_proxy_access(actor=alice, pod=pod, access=ProxyAccess.PUBLIC)
    anonymous = call(method="GET", path=prefix(pod) + "/open")
    assert anonymous.status == 200
    assert json.loads(anonymous.body)["path"] == "/open"
    assert anonymous.header("content-security-policy").startswith("sandbox allow-scripts")
    outsider = call(
        method="GET", path=prefix(pod) + "/", headers=[(b"cookie", session_cookie(charlie))]
    )
    assert outsider.status == 200
    event = AuditEvent.objects.get(action="pod.proxy_access_changed")
    assert event.details["to"] == "public" and event.actor == alice


def test_it_explains_a_stopped_pod_and_a_port_that_is_not_exposed(team, alice, parts):
    parked = stopped_pod(team, parts["machine"], ports=[{"port": 8888, "protocol": "http"}])
    cookie = [(b"cookie", session_cookie(alice))]
    stopped = call(method="GET", path=f"/proxy/{parked.public_id}-8888/", headers=cookie)
    assert stopped.status == 503
    assert b"Pod not running" in stopped.body and b"is stopped" in stopped.body
    closed = call(method="GET", path=f"/proxy/{parked.public_id}-9000/", headers=cookie)
    assert closed.status == 404
    assert b"Port not exposed" in closed.body and b"<code>8888</code>" in closed.body
    missing = call(method="GET", path="/proxy/nosuchpod00000-8888/", headers=cookie)
    assert missing.status == 404


def test_it_answers_502_while_the_pods_server_is_not_listening(team, alice, parts):
    pod = echo_pod(team, alice, parts)
    Pod.objects.filter(pk=pod.pk).update(
        port_mappings=[{"private": 8080, "public": 1, "protocol": "http", "host": "127.0.0.1"}]
    )
    reply = call(method="GET", path=prefix(pod) + "/", headers=[(b"cookie", session_cookie(alice))])
    assert reply.status == 502
    assert b"Nothing listens on port 8080" in reply.body
    assert b"echo server on 8080" in reply.body  # the log tail, for a member


def test_it_reloads_while_a_pod_starts_and_not_once_it_stopped(team, alice, parts):
    starting = stopped_pod(
        team,
        parts["machine"],
        status=Pod.Status.STARTING,
        ports=[{"port": 8888, "protocol": "http"}],
    )
    cookie = [(b"cookie", session_cookie(alice))]
    reply = call(method="GET", path=f"/proxy/{starting.public_id}-8888/", headers=cookie)
    assert reply.status == 503 and b"Pod starting" in reply.body
    assert b'http-equiv="refresh"' in reply.body
    Pod.objects.filter(pk=starting.pk).update(status=Pod.Status.EXITED)
    reply = call(method="GET", path=f"/proxy/{starting.public_id}-8888/", headers=cookie)
    assert reply.status == 503 and b"Pod not running" in reply.body
    assert b'http-equiv="refresh"' not in reply.body and reply.header("retry-after") is None


def test_it_serves_the_host_form_and_signs_members_in_through_the_console(
    pod, alice, charlie, settings
):
    settings.PROXY_DOMAIN = "proxy.test"
    settings.SITE_URL = "http://console.test"
    host = f"{pod.public_id}-8080.proxy.test"
    first = call(method="GET", path="/page", query="q=1", host=host)
    assert first.status == 302
    handoff = f"http://console.test/proxy-auth/{pod.public_id}-8080/?next=/page%3Fq%3D1"
    assert first.header("location") == handoff

    outsider = Client()
    outsider.force_login(charlie)
    assert outsider.get(handoff.removeprefix("http://console.test")).status_code == 404
    member = Client()
    member.force_login(alice)
    to_pod = member.get(handoff.removeprefix("http://console.test"))["Location"]
    assert to_pod.startswith(f"http://{host}/.console-proxy-auth?token=")

    path, _, query = to_pod.removeprefix(f"http://{host}").partition("?")
    signed_in = call(method="GET", path=path, query=query.replace("%3A", ":"), host=host)
    assert (signed_in.status, signed_in.header("location")) == (302, "/page?q=1")
    cookie = signed_in.header("set-cookie").split(";")[0].encode()
    page = call(method="GET", path="/page", query="q=1", host=host, headers=[(b"cookie", cookie)])
    assert page.status == 200
    assert json.loads(page.body)["path"] == "/page?q=1"
    assert "x-forwarded-prefix" not in {k.lower() for k in json.loads(page.body)["headers"]}
    other_port = f"{pod.public_id}-9000.proxy.test"
    assert (
        call(method="GET", path="/", host=other_port, headers=[(b"cookie", cookie)]).status == 302
    )


def test_it_lists_proxy_urls_and_the_ssh_command_on_the_pod_page(pod, alice, settings):
    page = Client()
    page.force_login(alice)
    html = page.get(pod.get_absolute_url()).content.decode()
    ssh = next(m for m in pod.port_mappings if m["private"] == 22)
    assert f"{settings.SITE_URL}/proxy/{pod.public_id}-8080/" in html
    assert f"ssh root@127.0.0.1 -p {ssh['public']} -i ~/.ssh/id_ed25519" in html
    assert f"/t/acme/pods/{pod.public_id}/terminal/" in html
    settings.PROXY_DOMAIN, settings.SITE_URL = "proxy.example.com", "https://console.example.com"
    html = page.get("/t/acme/pods/?partial=table").content.decode()
    assert f"https://{pod.public_id}-8080.proxy.example.com/" in html


def test_it_links_to_the_pods_own_host_under_localhost_by_default(pod, alice, settings):
    settings.PROXY_DOMAIN, settings.SITE_URL = "localhost", "http://localhost:8123"
    page = Client()
    page.force_login(alice)
    html = page.get(pod.get_absolute_url()).content.decode()
    assert f'href="http://{pod.public_id}-8080.localhost:8123/"' in html
    settings.SITE_URL = "https://console.example.com"
    settings.PROXY_DOMAIN = "pods.example.net"
    html = page.get(pod.get_absolute_url()).content.decode()
    assert f'href="https://{pod.public_id}-8080.pods.example.net/"' in html


def test_it_echoes_websockets_on_a_public_pods_own_host(pod, alice, settings):
    services.set_proxy_access(actor=alice, pod=pod, access=ProxyAccess.PUBLIC)
    settings.PROXY_DOMAIN = "proxy.test"
    host = f"{pod.public_id}-8080.proxy.test".encode()

    async def scenario(origin: bytes) -> tuple[bool, str]:
        headers = [(b"host", host), (b"origin", origin)]
        socket = WebsocketCommunicator(application, "/socket", headers=headers)
        connected, _ = await socket.connect(timeout=10)
        hello = await socket.receive_from(timeout=5) if connected else ""
        await socket.disconnect()
        return connected, hello

    connected, hello = async_to_sync(scenario)(b"http://" + host)
    assert connected and hello == f"path:/socket host:{host.decode()}"
    other_pod = f"http://{pod.public_id}-9000.proxy.test".encode()
    assert async_to_sync(scenario)(other_pod) == (False, "")
