"""The proxy's own pages for a port that does not answer, tried as an attacker: the pod's log
is shown there (to its team), so a pod that prints markup must not get script, a redirect or
styles onto the page, and a public pod's log must not reach strangers."""

import pytest
from asgiref.sync import async_to_sync

from console.asgi import application
from pods import services as pod_services
from pods.connect import services
from pods.lifecycle import log_tail
from pods.models import Pod, ProxyAccess
from tests.pods.conftest import parts, pods_settings, reap  # noqa: F401 (fixtures)
from tests.pods.connect_helpers import Call, session_cookie
from tests.pods.factories import deploy_request, fund
from tests.waiting import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("reap")]

# Prints markup (a script, an image with a handler, a redirect, a style) and an install line,
# then never listens on its declared port.
HOSTILE_INSTALLER = (
    "echo '<script>alert(document.cookie)</script><img src=x onerror=alert(1)>'; "
    'echo \'<meta http-equiv="refresh" content="0;url=https://evil.example/"><style>\'; '
    "echo 'Installing the app (first start only)...'; exec sleep 600"
)


def call(pod: Pod, headers=()) -> object:
    path = f"/proxy/{pod.public_id}-8080/"
    return async_to_sync(Call(method="GET", path=path, headers=list(headers)).run)(application)


def quiet_pod(team, alice, parts, command: str) -> Pod:  # noqa: F811
    fund(team)
    ports = [{"port": 8080, "protocol": "http"}]
    request = deploy_request(parts["a40"], start_command=command, ports=ports)
    pod = pod_services.deploy_pod(actor=alice, team=team, request=request)
    wait_for(lambda: "Installing" in log_tail(pod) or "quiet" in log_tail(pod), timeout=15)
    return pod


def test_a_pods_log_cannot_put_markup_on_the_waiting_page(team, alice, parts):  # noqa: F811
    pod = quiet_pod(team, alice, parts, HOSTILE_INSTALLER)
    reply = call(pod, [(b"cookie", session_cookie(alice))])
    assert reply.status == 502
    assert b"Still installing" in reply.body and b"nothing listens on port 8080" in reply.body
    # Escaped, on a page whose CSP runs no script at all.
    assert b"&lt;script&gt;alert(document.cookie)&lt;/script&gt;" in reply.body
    for planted in (b"<script", b"<img src=x", b'evil.example/">', b"<style"):
        assert planted not in reply.body
    csp = reply.header("content-security-policy")
    assert csp.startswith("default-src 'none'") and "script-src" not in csp
    assert "form-action 'none'" in csp and "frame-ancestors 'none'" in csp
    # The page's own reload (while the pod is new) is the only refresh on it.
    assert reply.body.count(b"<meta http-equiv=") == 1
    assert b'<meta http-equiv="refresh" content="5">' in reply.body
    assert reply.header("retry-after") == "5"
    assert f"/t/acme/pods/{pod.public_id}/".encode() in reply.body


def test_a_public_pods_log_is_shown_to_its_team_only(team, alice, parts, charlie):  # noqa: F811
    pod = quiet_pod(team, alice, parts, "echo 'quiet: secret-token-123'; exec sleep 600")
    services.set_proxy_access(actor=alice, pod=pod, access=ProxyAccess.PUBLIC)
    member = call(pod, [(b"cookie", session_cookie(alice))])
    assert member.status == 502 and b"secret-token-123" in member.body
    assert b"No answer from the pod" in member.body
    for headers in ([], [(b"cookie", session_cookie(charlie))]):
        stranger = call(pod, headers)
        assert stranger.status == 502
        assert b"Nothing listens on port 8080" in stranger.body
        assert b"secret-token-123" not in stranger.body and b"/t/acme/" not in stranger.body
