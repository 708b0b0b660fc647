"""The job socket: authenticate, check the job is visible, join its group, send a snapshot, forward
events. It changes nothing; jobs publishes the events (jobs.events, delivered by realtime.broadcast).

The socket joins its job's group through the process's fan-out (realtime.fanout), not as a channel of
its own: the layer delivers each event once per process, and the fan-out hands the encoded text to
`deliver`. Events that arrive before the snapshot has been sent are held and sent right after it.

Refusals accept first and then close with a code, because a socket refused during the handshake reaches
the browser as a bare 1006 with no reason; after accepting, the page can tell "log in again" (4401) from
"no such job" (4404) and stop reconnecting.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from . import broadcast
from .fanout import loop_fanout
from .groups import job_group
from .snapshot import job_snapshot

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
# A client may ask for a fresh snapshot (to pick up thumbnails and the poster once files exist); asking
# more often than this is slowed down, so one socket cannot turn into a query loop.
MIN_SNAPSHOT_INTERVAL_SECONDS = 0.5


class VideoJobConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None
    job_id: uuid.UUID | None = None
    _last_snapshot: float = 0.0
    # Events received before the snapshot went out, in order; None once they flow straight through.
    _held: list[str] | None = None

    async def connect(self) -> None:
        broadcast.remember_consumer_loop(asyncio.get_running_loop())
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self._refuse(CLOSE_UNAUTHENTICATED, "login required")
            return
        try:
            self.job_id = uuid.UUID(str(self.scope["url_route"]["kwargs"]["job_id"]))
        except ValueError:
            await self._refuse(CLOSE_NOT_FOUND, "no such job")
            return
        # Join before reading the snapshot: an event committed in between is then delivered after the
        # snapshot instead of being lost (at worst it repeats what the snapshot already shows).
        group = job_group(self.job_id)
        self._held = []
        await loop_fanout(self.channel_layer).join(group, self.deliver)
        self.group = group
        snapshot = await self._snapshot()
        if snapshot is None:  # not the user's job (404, not 403: existence is not revealed)
            await self._leave()
            await self._refuse(CLOSE_NOT_FOUND, "no such job")
            return
        await self.accept()
        await self.send_json({"event": "snapshot", "job": snapshot})
        # Whatever arrived meanwhile, in order; deliver keeps appending until the list is empty.
        while self._held:
            await self.send(text_data=self._held.pop(0))
        self._held = None

    async def disconnect(self, code: int) -> None:
        await self._leave()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("action") == "snapshot" and self.group:
            wait = self._last_snapshot + MIN_SNAPSHOT_INTERVAL_SECONDS - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            snapshot = await self._snapshot()
            if snapshot is None:
                await self.close(code=CLOSE_NOT_FOUND, reason="no such job")
                return
            await self.send_json({"event": "snapshot", "job": snapshot})

    async def deliver(self, text: str) -> None:
        """An event for this socket's job, already encoded (realtime.broadcast.publish), sent as is."""
        if self._held is not None:
            self._held.append(text)
            return
        await self.send(text_data=text)

    async def _snapshot(self) -> dict[str, Any] | None:
        self._last_snapshot = time.monotonic()
        return await database_sync_to_async(job_snapshot)(user=self.scope["user"], job_id=self.job_id)

    async def _refuse(self, code: int, reason: str) -> None:
        await self.accept()
        await self.close(code=code, reason=reason)

    async def _leave(self) -> None:
        if self.group is not None:
            group, self.group = self.group, None
            await loop_fanout(self.channel_layer).leave(group, self.deliver)


class NoSuchSocketConsumer(AsyncJsonWebsocketConsumer):
    """A socket to a path we do not serve: accepted, then closed with 4404 (see the module doc)."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_NOT_FOUND, reason="no such socket")
