"""The pods websockets: members with the use capability only, live status and log lines."""

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from console.routing import websocket_urlpatterns
from pods import live
from pods.runtime.base import pod_data_dir
from teams.models import Membership
from tests.conftest import make_user
from tests.pods.factories import stopped_pod

pytestmark = pytest.mark.django_db(transaction=True)

application = URLRouter(websocket_urlpatterns)


def member(team, role: str):
    user = make_user(f"{role}@example.com")
    Membership.objects.create(user=user, team=team, role=role)
    return user


async def open_socket(path: str, user) -> tuple[WebsocketCommunicator, bool]:
    communicator = WebsocketCommunicator(application, path)
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    return communicator, connected


@pytest.fixture
def pod(team, parts):
    return stopped_pod(team, parts["machine"])


def test_it_refuses_anonymous_outsiders_and_billing_members(team, pod, charlie):
    billing = member(team, "billing")

    async def attempts() -> list[bool]:
        results = []
        for user in (AnonymousUser(), charlie, billing):
            for path in ("/ws/t/acme/pods/", f"/ws/t/acme/pods/{pod.public_id}/"):
                _, connected = await open_socket(path, user)
                results.append(connected)
        return results

    assert async_to_sync(attempts)() == [False] * 6


def test_it_pushes_status_changes_to_a_basic_member_on_the_list(team, pod):
    basic = member(team, "basic")

    async def scenario() -> dict:
        communicator, connected = await open_socket("/ws/t/acme/pods/", basic)
        assert connected
        message = {"type": "pod.changed", "pod": pod.public_id, "status": "running"}
        await get_channel_layer().group_send(live.team_group(team.pk), message)
        received = await communicator.receive_json_from(timeout=2)
        await communicator.disconnect()
        return received

    assert async_to_sync(scenario)() == {
        "type": "status",
        "pod": pod.public_id,
        "status": "running",
    }


def test_it_streams_new_log_lines_after_the_cursor(team, alice, pod):
    log = pod_data_dir(pod.public_id) / "pod.log"
    log.parent.mkdir(parents=True)
    log.write_text("old line\n")

    async def scenario() -> dict:
        communicator, connected = await open_socket(f"/ws/t/acme/pods/{pod.public_id}/", alice)
        assert connected
        await communicator.send_json_to({"cursor": str(len("old line\n"))})
        with open(log, "a") as handle:
            handle.write("new line\n")
        received = await communicator.receive_json_from(timeout=3)
        await communicator.disconnect()
        return received

    message = async_to_sync(scenario)()
    assert message["type"] == "log" and message["text"] == "new line\n"
