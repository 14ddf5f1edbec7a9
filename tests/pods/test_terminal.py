"""The web terminal's websocket: a real shell in a real pod (process runtime, nsenter into its
namespaces), members with the "use" capability only, sessions audited."""

import json
import re

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from console.routing import websocket_urlpatterns
from pods import services
from pods.models import Pod
from teams.models import AuditEvent, Membership
from tests.conftest import make_user
from tests.pods.factories import deploy_request, fund, stopped_pod

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("reap")]

application = URLRouter(websocket_urlpatterns)


def member(team, role: str):
    user = make_user(f"{role}@example.com")
    Membership.objects.create(user=user, team=team, role=role)
    return user


@pytest.fixture
def pod(team, alice, parts) -> Pod:
    fund(team)
    pod = services.deploy_pod(actor=alice, team=team, request=deploy_request(parts["a40"]))
    pod.refresh_from_db()
    assert pod.status == Pod.Status.RUNNING
    return pod


def path(pod: Pod) -> str:
    return f"/ws/t/acme/pods/{pod.public_id}/terminal/"


async def open_terminal(pod: Pod, user) -> tuple[WebsocketCommunicator, bool]:
    communicator = WebsocketCommunicator(application, path(pod))
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=10)
    return communicator, connected


async def read_until(communicator: WebsocketCommunicator, pattern: str, timeout=10) -> str:
    output = ""
    while not re.search(pattern, output):
        message = await communicator.receive_output(timeout=timeout)
        if message["type"] != "websocket.send":
            raise AssertionError(f"closed before {pattern!r}; got {output!r}")
        output += (message.get("bytes") or b"").decode("utf-8", "replace")
    return output


def line(text: str) -> str:
    """A line of output; the shell's "# " prompt may come first, if it was printed after the
    terminal echoed what was typed."""
    return rf"(^|\n|# ){re.escape(text)}\r?\n"


async def type_line(communicator: WebsocketCommunicator, text: str) -> None:
    await communicator.send_to(text_data=json.dumps({"type": "input", "data": text + "\n"}))


def test_it_runs_echo_hi_and_reads_hi_back(pod, team):
    basic = member(team, "basic")

    async def scenario() -> str:
        communicator, connected = await open_terminal(pod, basic)
        assert connected
        await type_line(communicator, "echo hi")
        output = await read_until(communicator, line("hi"))
        await type_line(communicator, "hostname")
        output += await read_until(communicator, line(pod.public_id))
        await communicator.disconnect()
        return output

    output = async_to_sync(scenario)()
    assert "echo hi" in output  # the shell's own echo of what was typed


def test_it_resizes_the_pty(pod, alice):
    async def scenario() -> str:
        communicator, _ = await open_terminal(pod, alice)
        resize = {"type": "resize", "cols": 123, "rows": 45}
        await communicator.send_to(text_data=json.dumps(resize))
        await type_line(communicator, "stty size")
        output = await read_until(communicator, line("45 123"))
        await communicator.disconnect()
        return output

    assert "45 123" in async_to_sync(scenario)()


def test_it_refuses_billing_members_outsiders_and_anonymous_users(pod, team, charlie):
    billing = member(team, "billing")

    async def attempts() -> list[bool]:
        results = []
        for user in (billing, charlie, AnonymousUser()):
            _, connected = await open_terminal(pod, user)
            results.append(connected)
        return results

    assert async_to_sync(attempts)() == [False, False, False]
    assert not AuditEvent.objects.filter(action="pod.terminal_opened").exists()


def test_it_audits_when_a_session_opens_and_closes_but_not_what_is_typed(pod, alice):
    async def scenario() -> None:
        communicator, _ = await open_terminal(pod, alice)
        await type_line(communicator, "echo top-secret")
        await read_until(communicator, line("top-secret"))
        # The close is audited once the shell is gone: the default 1 s, under load, cancelled
        # the consumer before it wrote the event.
        await communicator.disconnect(timeout=10)

    async_to_sync(scenario)()
    opened = AuditEvent.objects.get(action="pod.terminal_opened")
    closed = AuditEvent.objects.get(action="pod.terminal_closed")
    assert opened.actor == alice and opened.resource_id == pod.public_id
    assert closed.details["session"] == opened.details["session"]
    assert closed.details["seconds"] >= 0
    everything = json.dumps(list(AuditEvent.objects.values("details")))
    assert "top-secret" not in everything


def test_it_says_why_when_the_pod_is_not_running(team, alice, parts):
    parked = stopped_pod(team, parts["machine"])

    async def scenario() -> tuple[dict, dict]:
        communicator, connected = await open_terminal(parked, alice)
        assert connected
        error = await communicator.receive_json_from(timeout=5)
        closed = await communicator.receive_output(timeout=5)
        return error, closed

    error, closed = async_to_sync(scenario)()
    assert error == {"type": "error", "message": "The pod is stopped."}
    assert closed == {"type": "websocket.close", "code": 4409}


def test_it_tells_the_browser_when_the_shell_exits(pod, alice):
    async def scenario() -> dict:
        communicator, _ = await open_terminal(pod, alice)
        await type_line(communicator, "exit")
        while True:
            message = await communicator.receive_output(timeout=10)
            if message["type"] == "websocket.send" and message.get("text"):
                return json.loads(message["text"])

    assert async_to_sync(scenario)() == {"type": "exit", "message": "The shell exited."}


def test_it_serves_the_terminal_page_with_xterm(pod, team):
    from django.test import Client

    client = Client()
    client.force_login(member(team, "basic"))
    html = client.get(f"/t/acme/pods/{pod.public_id}/terminal/").content.decode()
    assert 'data-terminal="/ws/t/acme/pods/' in html
    assert "vendor/xterm/xterm.js" in html and "js/terminal.js" in html
