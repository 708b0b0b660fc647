"""The job socket on the embedded default's in-memory layer: who may connect, the snapshot, and events
published from worker threads (the in-process render pool) reaching a consumer promptly.

The same behaviour on Redis is in test_consumer_redis.py (run by `make test-postgres`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.core.files.base import ContentFile

from jobs import render_state, services
from jobs.events import JOB_STATUS
from jobs.events import SEGMENT_STATE as FRAME_PROGRESS
from jobs.models import JobStatus, SegmentStatus
from realtime import broadcast, consumers
from realtime.broadcast import publish
from realtime.consumers import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
from rendering.transport import inprocess_runner

from .conftest import close_code, jpeg_bytes, make_job, socket_for

pytestmark = pytest.mark.django_db(transaction=True)

IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture(autouse=True)
def _in_memory_layer(settings):
    # Explicit, so these tests mean the embedded default even when REDIS_URL happens to be set.
    settings.CHANNEL_LAYERS = IN_MEMORY


def test_anonymous_socket_is_closed_with_4401(user):
    job = make_job(user)
    assert async_to_sync(close_code)(socket_for(job.id)) == CLOSE_UNAUTHENTICATED


def test_another_users_job_is_closed_with_4404(user, other_user):
    job = make_job(user)
    assert async_to_sync(close_code)(socket_for(job.id, user=other_user)) == CLOSE_NOT_FOUND


@pytest.mark.parametrize("job_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_malformed_or_unknown_job_is_closed_with_4404(user, job_id):
    assert async_to_sync(close_code)(socket_for(job_id, user=user)) == CLOSE_NOT_FOUND


def test_foreign_origin_is_refused_at_the_handshake(user):
    job = make_job(user)

    async def scenario(communicator) -> bool:
        connected, _ = await communicator.connect(timeout=5)
        return connected

    assert async_to_sync(scenario)(socket_for(job.id, user=user, origin=b"http://evil.example")) is False


def test_snapshot_comes_first_and_shows_the_whole_job(user, no_dispatch):
    # Given a job whose first segment already finished (with a thumbnail) before anyone watched
    job = services.video_job_render(job=make_job(user))
    first = job.segments.get(index=0)
    render_state.segment_claim(segment_id=first.id, generation=job.render_generation, token="test-run")
    render_state.segment_complete(
        segment_id=first.id,
        clip=ContentFile(b"clip", name="c.mp4"),
        last_frame=None,
        thumbnail=ContentFile(jpeg_bytes(), name="t.jpg"),
        cost_usd=Decimal("0"),
    )

    async def scenario(communicator) -> dict:
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        message = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return message

    # When someone connects late, then the first message is the whole truth
    message = async_to_sync(scenario)(socket_for(job.id, user=user))
    assert message["event"] == "snapshot"
    state = message["job"]
    assert state["id"] == str(job.id) and state["status"] == JobStatus.RENDERING
    assert state["segment_count"] == 2 and state["output_url"] is None
    seg0, seg1 = state["segments"]
    assert seg0["status"] == SegmentStatus.COMPLETED and seg0["progress"] == 100
    assert seg0["thumbnail_url"].startswith("/media/jobs/") and seg0["clip_url"].endswith(".mp4")
    assert seg0["attempts"] == 1 and seg0["prompt"]
    assert seg1["status"] == SegmentStatus.QUEUED and seg1["thumbnail_url"] is None


def test_staff_may_watch_anyones_job(user, staff_user):
    job = make_job(user)

    async def scenario(communicator) -> dict:
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        message = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return message

    assert async_to_sync(scenario)(socket_for(job.id, user=staff_user))["job"]["id"] == str(job.id)


def test_a_worker_thread_publish_reaches_the_consumer_promptly(user):
    """The in-process render pool publishes from plain threads; the consumer waits on another loop."""
    job = make_job(user)
    payload = {
        "index": 0,
        "status": "rendering",
        "progress": 42.0,
        "attempt": 1,
        "provider_status": "",
        "error": "",
    }

    async def scenario(communicator) -> tuple[dict, float]:
        await communicator.connect(timeout=5)
        await communicator.receive_json_from(timeout=5)  # the snapshot
        worker = threading.Thread(
            target=publish, args=(job.id, FRAME_PROGRESS, payload), name="render-worker-x"
        )
        started = time.monotonic()
        worker.start()
        message = await communicator.receive_json_from(timeout=5)
        elapsed = time.monotonic() - started
        await asyncio.to_thread(worker.join, 5)
        await communicator.disconnect()
        return message, elapsed

    message, elapsed = async_to_sync(scenario)(socket_for(job.id, user=user))
    assert message == {"event": FRAME_PROGRESS, "job_id": str(job.id), "data": payload}
    # Without delivery on the consumer's own loop the event waits for an unrelated wake-up (here: the
    # receive timeout, 5 s).
    assert elapsed < 1.0


def test_an_event_published_while_the_snapshot_is_read_comes_right_after_it(user, monkeypatch):
    """The socket joins the job's group before reading the snapshot; an event arriving in between is
    held and sent after the snapshot, never before it (the page starts from the snapshot)."""
    job = make_job(user)
    payload = {"status": "queued", "progress": 0, "output_url": None, "error": ""}
    read_snapshot = consumers.job_snapshot

    def snapshot_with_an_event_meanwhile(**kwargs):
        publish(job.id, JOB_STATUS, payload)  # from the database thread, as a worker would
        return read_snapshot(**kwargs)

    monkeypatch.setattr(consumers, "job_snapshot", snapshot_with_an_event_meanwhile)

    async def scenario(communicator) -> list[dict]:
        await communicator.connect(timeout=5)
        messages = [await communicator.receive_json_from(timeout=5) for _ in range(2)]
        await communicator.disconnect()
        return messages

    first, second = async_to_sync(scenario)(socket_for(job.id, user=user))
    assert first["event"] == "snapshot"
    assert second == {"event": JOB_STATUS, "job_id": str(job.id), "data": payload}


def test_publish_from_the_consumers_own_loop_does_not_deadlock(user):
    job = make_job(user)

    async def scenario(communicator) -> dict:
        await communicator.connect(timeout=5)
        await communicator.receive_json_from(timeout=5)
        # A synchronous publish on the loop thread itself: it must schedule, not block the loop.
        publish(job.id, JOB_STATUS, {"status": "queued", "progress": 0, "output_url": None, "error": ""})
        message = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return message

    assert async_to_sync(scenario)(socket_for(job.id, user=user))["data"]["status"] == "queued"


def test_publish_without_a_running_consumer_loop_is_harmless(user):
    stopped = asyncio.new_event_loop()
    broadcast.remember_consumer_loop(stopped)  # e.g. the loop of a server that has shut down
    try:
        publish(make_job(user).id, JOB_STATUS, {"status": "queued"})
    finally:
        stopped.close()


@pytest.mark.slow
def test_a_real_render_streams_to_the_socket_in_order(user):
    """End to end on the embedded default: the in-process pool renders, the socket sees every step."""
    job = make_job(user, duration_seconds=2, segment_seconds=1)

    async def scenario(communicator) -> list[dict]:
        await communicator.connect(timeout=5)
        messages = [await communicator.receive_json_from(timeout=5)]
        await database_sync_to_async(services.video_job_render)(job=job)
        while not (messages[-1]["event"] == JOB_STATUS and messages[-1]["data"]["status"] == "completed"):
            messages.append(await communicator.receive_json_from(timeout=60))
        await communicator.disconnect()
        return messages

    messages = async_to_sync(scenario)(socket_for(job.id, user=user))
    assert inprocess_runner().wait_idle(timeout=60)
    assert messages[0]["event"] == "snapshot" and messages[0]["job"]["status"] == JobStatus.DRAFT
    assert messages[1]["event"] == JOB_STATUS and messages[1]["data"]["status"] == JobStatus.QUEUED
    for index in (0, 1):
        steps = [m["data"] for m in messages if m["event"] == FRAME_PROGRESS and m["data"]["index"] == index]
        # Queued when the render starts, then rendering, then completed with its thumbnail.
        assert [steps[0]["status"], steps[1]["status"], steps[-1]["status"]] == [
            SegmentStatus.QUEUED,
            SegmentStatus.RENDERING,
            SegmentStatus.COMPLETED,
        ]
        assert steps[-1]["thumbnail_url"].endswith(".jpg") and steps[-1]["clip_url"].endswith(".mp4")
        progress = [s["progress"] for s in steps]
        assert progress == sorted(progress) and progress[-1] == 100
    statuses = [m["data"]["status"] for m in messages if m["event"] == JOB_STATUS]
    assert statuses == [JobStatus.QUEUED, JobStatus.RENDERING, JobStatus.ASSEMBLING, JobStatus.COMPLETED]
    assert messages[-1]["data"]["output_url"].endswith(".mp4")
    # Assembly progress comes between the last segment and the final status.
    last_segment = max(i for i, m in enumerate(messages) if m["event"] == FRAME_PROGRESS)
    assembly = [i for i, m in enumerate(messages) if m["event"] == "job-assembly"]
    assert assembly and min(assembly) > last_segment
