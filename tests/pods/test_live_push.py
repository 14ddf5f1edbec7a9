"""Pod updates reach browsers even when the write happens in a thread running an event loop
(async_to_sync refuses to run there; Playwright-driven tests write from such a thread)."""

import asyncio

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from pods import live


def joined_channel(group: str) -> str:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    return channel


async def receive_within(layer, channel: str, seconds: float) -> dict:
    return await asyncio.wait_for(layer.receive(channel), seconds)


def test_a_push_from_inside_a_running_event_loop_is_delivered():
    team_channel = joined_channel(live.team_group(424242))
    pod_channel = joined_channel(live.pod_group("loop-pod"))

    async def write_from_async_code() -> None:
        live._send(424242, "loop-pod", "running")

    asyncio.run(write_from_async_code())
    layer = get_channel_layer()
    for channel in (team_channel, pod_channel):
        message = async_to_sync(receive_within)(layer, channel, 5)
        assert message == {"type": "pod.changed", "pod": "loop-pod", "status": "running"}
