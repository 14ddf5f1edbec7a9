"""The web terminal: a websocket to a shell in a running pod (pods.runtime open_shell: nsenter
into the pod's namespaces on the process runtime, an exec with a TTY on Docker).

Protocol: the server sends the shell's output as binary frames, and JSON text frames for
events ({"type": "error"|"exit", "message"}); the browser sends JSON text frames
{"type": "input", "data": "..."} and {"type": "resize", "cols": 80, "rows": 24}. Only members
with the "use" capability may connect; opening and closing are audited, keystrokes are not.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from console import safejson
from pods.connect import services
from pods.lifecycle import backend_for
from pods.models import Pod
from pods.runtime import PtySession, RuntimeFailure
from teams.access import role_can
from teams.models import Membership

log = logging.getLogger(__name__)

REFUSED = 4403
NOT_RUNNING = 4409
READ_TIMEOUT = 0.2
MAX_SIZE = 1000


@database_sync_to_async
def allowed_pod(user, team_slug: str, pod_id: str) -> Pod | None:
    if user is None or not user.is_authenticated:
        return None
    membership = Membership.objects.filter(user=user, team__slug=team_slug).first()
    if membership is None or not role_can(membership.role, "use"):
        return None
    pods = Pod.objects.select_related("team", "machine").filter(team_id=membership.team_id)
    return pods.live().filter(public_id=pod_id).first()


class TerminalConsumer(AsyncWebsocketConsumer):
    session: PtySession | None = None

    async def connect(self) -> None:
        kwargs = self.scope["url_route"]["kwargs"]
        self.user = self.scope.get("user")
        self.pod = await allowed_pod(self.user, kwargs["team"], kwargs["pod_id"])
        if self.pod is None:
            await self.close(code=REFUSED)
            return
        await self.accept()
        try:
            if self.pod.status != Pod.Status.RUNNING:
                raise RuntimeFailure(f"The pod is {self.pod.get_status_display().lower()}.")
            backend = backend_for(self.pod)
            self.session = await asyncio.to_thread(backend.open_shell, self.pod.runtime_handle)
        except (RuntimeFailure, OSError) as error:
            await self.send(text_data=json.dumps({"type": "error", "message": str(error)}))
            await self.close(code=NOT_RUNNING)
            return
        self.session_id, self.opened_at = secrets.token_hex(6), time.monotonic()
        await self._audit(opened=True)
        self.stopping = threading.Event()
        loop = asyncio.get_running_loop()
        self.reader = threading.Thread(target=self._pump, args=(self.session, loop), daemon=True)
        self.reader.start()

    def _pump(self, session: PtySession, loop: asyncio.AbstractEventLoop) -> None:
        """The shell's output to the browser, in a thread: PtySession.read blocks."""
        while not self.stopping.is_set():
            try:
                data = session.read(65536, READ_TIMEOUT)
            except OSError:
                data = b""
            if data:
                step = self.send(bytes_data=data)
            elif session.closed:
                self.stopping.set()
                step = self._shell_ended()
            else:
                continue
            try:
                future = asyncio.run_coroutine_threadsafe(step, loop)
            except RuntimeError:  # the event loop is closed: so is the socket
                step.close()
                return
            try:
                # One chunk at a time: a slow browser slows the shell down instead of piling up.
                future.result(timeout=30)
            except (FutureTimeout, asyncio.CancelledError):
                future.cancel()
                return
            except Exception:  # noqa: BLE001 - a send on a closing socket; nothing to tell
                log.debug("terminal output stopped", exc_info=True)
                return

    async def _shell_ended(self) -> None:
        await self.send(text_data=json.dumps({"type": "exit", "message": "The shell exited."}))
        await self.close(code=1000)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        if self.session is None:
            return
        if bytes_data is not None:
            await asyncio.to_thread(self.session.write, bytes_data)
            return
        try:
            message = safejson.loads(text_data or "")
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        if message.get("type") == "input" and isinstance(message.get("data"), str):
            await asyncio.to_thread(self.session.write, message["data"].encode())
        elif message.get("type") == "resize":
            cols, rows = message.get("cols"), message.get("rows")
            if all(isinstance(n, int) and 0 < n <= MAX_SIZE for n in (cols, rows)):
                await asyncio.to_thread(self.session.resize, cols, rows)

    async def disconnect(self, code: int) -> None:
        if self.session is None:
            return
        session, self.session = self.session, None
        self.stopping.set()
        await asyncio.to_thread(self.reader.join, 2)
        await asyncio.to_thread(session.close)
        await self._audit(opened=False)

    async def _audit(self, *, opened: bool) -> None:
        seconds = int(time.monotonic() - self.opened_at)
        await database_sync_to_async(services.record_terminal)(
            actor=self.user, pod=self.pod, opened=opened, session=self.session_id, seconds=seconds
        )
