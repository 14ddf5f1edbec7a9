"""Pushing pod changes to browsers over Channels, and the pod timeline.

Groups: "pods.team.<team id>" (the pods list) and "pods.pod.<public id>" (one pod's page).
Messages are sent on commit, so a browser never sees a state that was rolled back.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from pods.models import Pod, PodEvent
from teams.models import User

log = logging.getLogger(__name__)


def team_group(team_id: int) -> str:
    return f"pods.team.{team_id}"


def pod_group(public_id: str) -> str:
    return f"pods.pod.{public_id}"


def _send(team_id: int, public_id: str, status: str) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "pod.changed", "pod": public_id, "status": status}
    if _in_event_loop():
        # async_to_sync refuses to run in a thread whose event loop is running (a sync write
        # made from async code, e.g. a Playwright-driven test): send from a thread of its own.
        sender = threading.Thread(target=_group_send, args=(layer, team_id, public_id, message))
        sender.start()
        sender.join(timeout=5)
        return
    _group_send(layer, team_id, public_id, message)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _group_send(layer, team_id: int, public_id: str, message: dict) -> None:
    try:
        async_to_sync(layer.group_send)(team_group(team_id), message)
        async_to_sync(layer.group_send)(pod_group(public_id), message)
    except Exception:
        # A browser that misses an update catches up on its next load; never fail a write.
        log.exception("could not push pod %s update", public_id)


def push(pod: Pod) -> None:
    """Tell browsers about the pod's new state once the transaction commits."""
    team_id, public_id, status = pod.team_id, pod.public_id, pod.status
    transaction.on_commit(lambda: _send(team_id, public_id, status))


def record(pod: Pod, message: str, *, actor=None) -> PodEvent:
    """Add a timeline entry for the pod's current status and push the change."""
    # A person, or nobody: a pod acting with its own key (api PodPrincipal) is no user row.
    actor = actor if isinstance(actor, User) else None
    event = PodEvent.objects.create(pod=pod, status=pod.status, message=message, actor=actor)
    push(pod)
    return event
