"""Fan-out inside one web process: one channel-layer membership per job group, however many sockets of
this process follow the job.

Channels' usual pattern puts every socket in the group itself, so the layer copies each event to every
socket's own channel, and each socket's consumer wakes a receive task, dispatches, and writes. With 500
sockets on one job that per-socket machinery, not the write, was most of the cost of an event (and on
channels_redis' core layer a process's sockets share one Redis list capped at 100 messages, so a burst
across many jobs overflowed it and events were dropped). Here one reader per event loop receives each
event once and hands the already-encoded text to the local sockets following that job.

A member is an async callable taking the event's text (VideoJobConsumer.deliver). Messages on the layer
are {"type": "job.event", "group": <group>, "text": <JSON>} (realtime.broadcast.publish).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import BaseChannelLayer

log = logging.getLogger(__name__)

Member = Callable[[str], Awaitable[None]]
# After a failed receive (Redis restarting, say), wait this long before listening again.
RETRY_SECONDS = 1.0


class LoopFanout:
    """The sockets of one event loop (one daphne process) and the layer channel that feeds them."""

    def __init__(self, layer: BaseChannelLayer) -> None:
        self.layer = layer
        self.channel: str | None = None
        self.members: dict[str, set[Member]] = {}
        self.reader: asyncio.Task[None] | None = None
        # Joins and leaves of a group must not interleave with its group_add/group_discard, or a socket
        # could be registered for a group the layer no longer sends here.
        self.lock = asyncio.Lock()

    async def join(self, group: str, member: Member) -> None:
        """Once this returns, every event published to `group` reaches `member`."""
        async with self.lock:
            if self.channel is None:
                self.channel = await self.layer.new_channel()
                self.reader = asyncio.get_running_loop().create_task(self._read(), name="realtime-fanout")
            members = self.members.get(group)
            if members is None:
                await self.layer.group_add(group, self.channel)
                members = self.members[group] = set()
            members.add(member)

    async def leave(self, group: str, member: Member) -> None:
        async with self.lock:
            members = self.members.get(group)
            if members is None or member not in members:
                return
            members.discard(member)
            if not members:
                del self.members[group]
                assert self.channel is not None
                await self.layer.group_discard(group, self.channel)

    async def _read(self) -> None:
        assert self.channel is not None
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("realtime fan-out could not receive; retrying", exc_info=True)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            await self._forward(message)

    async def _forward(self, message: dict[str, Any]) -> None:
        text = message.get("text")
        members = self.members.get(message.get("group", ""))
        if not members or not isinstance(text, str):
            return
        for member in tuple(members):  # a socket may leave while we write to the others
            try:
                await member(text)
            except Exception:  # one broken socket must not cost the others their event
                log.debug("could not forward an event to a socket", exc_info=True)


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopFanout] = weakref.WeakKeyDictionary()


def loop_fanout(layer: BaseChannelLayer) -> LoopFanout:
    """The running loop's fan-out on `layer` (a new one when the configured layer changed)."""
    loop = asyncio.get_running_loop()
    fanout = _by_loop.get(loop)
    if fanout is None or fanout.layer is not layer:
        if fanout is not None and fanout.reader is not None:
            fanout.reader.cancel()  # it listens on a layer nobody publishes to any more
        fanout = _by_loop[loop] = LoopFanout(layer)
    return fanout
