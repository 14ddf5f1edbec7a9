"""Websockets for the pods pages: status changes for a team's list, and for one pod its status
changes plus its log, tailed live. Anonymous users and non-members are refused; members need the
"use" capability (Billing members see no pods)."""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from pods import live
from pods.lifecycle import backend_for
from pods.models import Pod
from pods.runtime import RuntimeFailure
from teams.access import role_can
from teams.models import Membership

LOG_POLL_SECONDS = 0.5
REFUSED = 4403


@database_sync_to_async
def _team_for(user, team_slug: str):
    if not user.is_authenticated:
        return None
    membership = (
        Membership.objects.select_related("team").filter(user=user, team__slug=team_slug).first()
    )
    if membership is None or not role_can(membership.role, "use"):
        return None
    return membership.team


@database_sync_to_async
def _pod_for(team, pod_id: str) -> Pod | None:
    return Pod.objects.select_related("machine").filter(team=team, public_id=pod_id).first()


class PodListConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        kwargs = self.scope["url_route"]["kwargs"]
        team = await _team_for(self.scope.get("user"), kwargs["team"])
        if team is None:
            await self.close(code=REFUSED)
            return
        self.group = live.team_group(team.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def pod_changed(self, event: dict) -> None:
        await self.send_json({"type": "status", "pod": event["pod"], "status": event["status"]})


class PodConsumer(AsyncJsonWebsocketConsumer):
    """One pod: {"type": "status", ...} on every change and {"type": "log", "text"} as its log
    grows. The client may send {"cursor": "..."} first to resume after the page's own tail."""

    async def connect(self) -> None:
        kwargs = self.scope["url_route"]["kwargs"]
        team = await _team_for(self.scope.get("user"), kwargs["team"])
        pod = await _pod_for(team, kwargs["pod_id"]) if team else None
        if pod is None:
            await self.close(code=REFUSED)
            return
        self.pod = pod
        self.cursor: str | None = None
        self.group = live.pod_group(pod.public_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self.tail = asyncio.ensure_future(self._tail_logs())

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "tail"):
            self.tail.cancel()
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: dict, **kwargs) -> None:
        if isinstance(content.get("cursor"), str) and content["cursor"].isdigit():
            self.cursor = content["cursor"]

    async def pod_changed(self, event: dict) -> None:
        await self.send_json({"type": "status", "pod": event["pod"], "status": event["status"]})

    def _read(self):
        backend = backend_for(self.pod)
        return backend.read_logs({"pod_id": self.pod.public_id}, cursor=self.cursor)

    async def _tail_logs(self) -> None:
        await asyncio.sleep(LOG_POLL_SECONDS)  # leave the client time to send its cursor
        while True:
            try:
                chunk = await asyncio.to_thread(self._read)
            except (RuntimeFailure, OSError):
                chunk = None
            if chunk is not None:
                if chunk.text and self.cursor is not None:
                    await self.send_json(
                        {"type": "log", "text": chunk.text, "cursor": chunk.cursor}
                    )
                self.cursor = chunk.cursor
            await asyncio.sleep(LOG_POLL_SECONDS)
