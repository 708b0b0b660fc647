"""Deliver job events to the job's channel group. jobs.events hands events over after commit through
its publisher seam, which realtime.apps fills with `publish`; a consumer (or nobody) receives them.

Delivery on the in-memory layer (the embedded default) needs care. The publishers there are threads of
the in-process render pool, while the consumers wait on daphne's event loop, and the in-memory layer's
queues are plain asyncio objects that are not thread-safe: `async_to_sync(group_send)` from a foreign
thread would run `put_nowait` on another loop, which sets the consumer's future without waking its loop,
so the event sits there until something else happens to wake it. Instead we run `group_send` on the
consumers' own loop (remembered when a consumer connects) with `run_coroutine_threadsafe`.

Cross-process layers (channels_redis) are thread-agnostic but keep one connection pool per event loop.
`async_to_sync` from a plain thread (a Celery worker, a render thread) makes a new loop per call, so every
event would open a new Redis connection (about 4 ms here, and connection churn at scale). Instead each
process keeps one publisher loop on a daemon thread and sends every event through it.

An event is encoded to JSON once, here, not once per socket: the channel-layer message carries the text
the browser receives and the group it is for, and each web process's fan-out (realtime.fanout) hands
that text to the process's sockets following the job.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import BaseChannelLayer, InMemoryChannelLayer, get_channel_layer

from .groups import job_group

log = logging.getLogger(__name__)

# How long a publisher waits for the consumers' loop to take an in-memory delivery. Generous: the loop
# only has to run one short coroutine; if it is that busy the event is dropped (and logged), never queued
# behind the publisher forever.
DELIVERY_TIMEOUT_SECONDS = 5.0

_consumer_loop: asyncio.AbstractEventLoop | None = None
_publisher_loop: asyncio.AbstractEventLoop | None = None
_publisher_lock = threading.Lock()


def _forget_loops_after_fork() -> None:
    # A forked child (a Celery prefork worker) inherits the loop objects but not the threads running
    # them, and perhaps a lock held by a thread that no longer exists: start from nothing.
    global _consumer_loop, _publisher_loop, _publisher_lock
    _consumer_loop = None
    _publisher_loop = None
    _publisher_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_loops_after_fork)


def remember_consumer_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Called by the consumer on connect: the loop that in-memory deliveries must run on."""
    global _consumer_loop
    _consumer_loop = loop


def _usable(loop: asyncio.AbstractEventLoop | None) -> bool:
    return loop is not None and loop.is_running() and not loop.is_closed()


def _publisher() -> asyncio.AbstractEventLoop:
    """This process's publisher loop, started on first use."""
    global _publisher_loop
    with _publisher_lock:
        if _publisher_loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="realtime-publisher", daemon=True).start()
            _publisher_loop = loop
        return _publisher_loop


def _run_on(loop: asyncio.AbstractEventLoop, layer: BaseChannelLayer, group: str, message: dict) -> None:
    future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop)
    try:
        future.result(timeout=DELIVERY_TIMEOUT_SECONDS)
    except TimeoutError:
        future.cancel()
        raise


def _deliver(layer: BaseChannelLayer, group: str, message: dict[str, Any]) -> None:
    loop = _consumer_loop
    if isinstance(layer, InMemoryChannelLayer) and _usable(loop):
        assert loop is not None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            # Called synchronously from code on the consumers' loop itself: blocking would deadlock it.
            loop.create_task(layer.group_send(group, message))
            return
        _run_on(loop, layer, group, message)
        return
    if isinstance(layer, InMemoryChannelLayer):
        # No consumer has connected in this process, so the groups are empty: nobody to deliver to.
        async_to_sync(layer.group_send)(group, message)
        return
    _run_on(_publisher(), layer, group, message)


def event_text(
    job_id: uuid.UUID | str, event: str, data: dict[str, Any], job: dict[str, Any] | None = None
) -> str:
    """The event as the socket sends it: {"event", "job_id", "data"[, "job"]} in compact JSON."""
    body: dict[str, Any] = {"event": event, "job_id": str(job_id), "data": data}
    if job is not None:
        body["job"] = job
    return json.dumps(body, separators=(",", ":"))


def publish(
    job_id: uuid.UUID | str, event: str, data: dict[str, Any], *, job: dict[str, Any] | None = None
) -> None:
    """Send one event to the job's group. `job` (status and progress) rides along with segment events."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        group = job_group(job_id)
        text = event_text(job_id, event, data, job)
        _deliver(layer, group, {"type": "job.event", "group": group, "text": text})
    except Exception:  # the event is advisory: the database already holds the truth
        log.warning("could not publish %s for job %s", event, job_id, exc_info=True)
