"""The job socket on the production layer: channels_redis on a real Redis server, PostgreSQL, the full
ASGI stack (origin check, session cookie through AuthMiddlewareStack, routing). Events are produced by
the real services, published after commit. Every test runs on both Redis layers (CHANNEL_LAYER=core
and pubsub): production may use either.

Run by `make test-postgres` (DATABASE_URL and REDIS_URL set).
"""

from __future__ import annotations

import asyncio
import json
import os
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings
from django.core.files.base import ContentFile
from redis.asyncio import Redis

from jobs import render_state, services
from jobs.events import JOB_ASSEMBLY, JOB_STATUS
from jobs.events import SEGMENT_STATE as FRAME_PROGRESS
from jobs.models import JobStatus, SegmentStatus, VideoJob
from realtime.broadcast import publish
from realtime.consumers import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
from realtime.groups import job_group

from .conftest import close_code, jpeg_bytes, make_job, socket_for

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

# Longer than channels_redis's 5 s blocking receive plus a read timeout of the same length.
QUIET_SECONDS = 11.0


@pytest.fixture(autouse=True, params=["core", "pubsub"])
def _on_redis(request, settings):
    if not settings.REDIS_URL:
        pytest.fail("REDIS_URL must be set for the Redis socket tests (make test-postgres sets it)")
    backend = settings.CHANNEL_LAYER_BACKENDS[request.param]
    # The production hosts (with their timeouts) and the options of the layer under test; channels drops its
    # cached layer when the setting changes.
    hosts = settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"]
    config = {"hosts": hosts, **settings.CHANNEL_LAYER_OPTIONS[request.param]}
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": backend, "CONFIG": config}}
    layer = get_channel_layer()
    assert f"{type(layer).__module__}.{type(layer).__name__}" == backend, layer


async def group_size(group: str) -> int:
    """How many sockets the layer holds in `group`, asked of Redis. Call it on the loop the sockets
    ran on: the pub/sub layer's subscriptions belong to that loop's connection."""
    layer = get_channel_layer()
    if isinstance(layer, RedisPubSubChannelLayer):
        # A group is a Redis subscription of each process with members in it (dropped with the last).
        client = Redis.from_url(settings.REDIS_URL)
        try:
            [(_, subscribers)] = await client.pubsub_numsub(layer._get_group_channel_name(group))
        finally:
            await client.aclose()
        return subscribers
    # The core layer keeps a group in a sorted set of channel names.
    key = layer._group_key(group)
    return await layer.connection(layer.consistent_hash(group)).zcard(key)


async def receive(communicator: WebsocketCommunicator, count: int) -> list[dict[str, Any]]:
    return [await communicator.receive_json_from(timeout=10) for _ in range(count)]


def drive_a_run(job: VideoJob) -> list[tuple[str, dict[str, Any]]]:
    """Take a job through a render by the services (as the workers would) and return the events that
    must arrive, in order, as (event, expected subset of its data)."""
    job = services.video_job_render(job=job)
    generation = job.render_generation
    first, second = job.segments.order_by("index")
    render_state.segment_claim(segment_id=first.id, generation=generation, token="test-run")
    for progress in (25.0, 50.0, 75.0):
        render_state.segment_progress(segment_id=first.id, progress=progress, provider_status="in_progress")
    render_state.segment_complete(
        segment_id=first.id,
        clip=ContentFile(b"clip", name="c.mp4"),
        last_frame=None,
        thumbnail=ContentFile(jpeg_bytes(), name="t.jpg"),
        cost_usd=Decimal("0"),
    )
    render_state.segment_claim(segment_id=second.id, generation=generation, token="test-run")
    render_state.segment_progress(segment_id=second.id, progress=10.0, provider_status="queued")
    render_state.segment_fail(segment_id=second.id, error="moderation_blocked: the prompt was refused")
    render_state.job_fail(job_id=job.id, error="segment 2 failed")
    return [
        (JOB_STATUS, {"status": JobStatus.QUEUED}),
        (FRAME_PROGRESS, {"index": 0, "status": SegmentStatus.QUEUED}),
        (FRAME_PROGRESS, {"index": 1, "status": SegmentStatus.QUEUED}),
        # The claim moves the job first, so the segment's event already carries the rendering job.
        (JOB_STATUS, {"status": JobStatus.RENDERING}),
        (FRAME_PROGRESS, {"index": 0, "status": SegmentStatus.RENDERING, "progress": 0.0, "attempts": 1}),
        (FRAME_PROGRESS, {"index": 0, "progress": 25.0, "provider_status": "in_progress"}),
        (FRAME_PROGRESS, {"index": 0, "progress": 50.0}),
        (FRAME_PROGRESS, {"index": 0, "progress": 75.0}),
        (FRAME_PROGRESS, {"index": 0, "status": SegmentStatus.COMPLETED, "progress": 100.0}),
        (FRAME_PROGRESS, {"index": 1, "status": SegmentStatus.RENDERING, "attempts": 1}),
        (FRAME_PROGRESS, {"index": 1, "progress": 10.0, "provider_status": "queued"}),
        (
            FRAME_PROGRESS,
            {
                "index": 1,
                "status": SegmentStatus.FAILED,
                "error": "moderation_blocked: the prompt was refused",
            },
        ),
        (JOB_STATUS, {"status": JobStatus.FAILED, "error": "segment 2 failed", "output_url": None}),
    ]


def test_snapshot_then_service_events_in_order(user, no_dispatch):
    job = make_job(user)

    async def scenario(communicator: WebsocketCommunicator) -> tuple[list[dict], list, dict]:
        connected, _ = await communicator.connect(timeout=10)
        assert connected
        snapshot = await communicator.receive_json_from(timeout=10)
        expected = await database_sync_to_async(drive_a_run)(job)
        events = await receive(communicator, len(expected))
        # A client may ask again (the page does once files exist): the new snapshot has the thumbnail.
        await communicator.send_json_to({"action": "snapshot"})
        again = await communicator.receive_json_from(timeout=10)
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()
        return [snapshot, *events], expected, again

    messages, expected, again = async_to_sync(scenario)(socket_for(job.id, user=user))
    snapshot, *events = messages
    assert snapshot["event"] == "snapshot" and snapshot["job"]["status"] == JobStatus.DRAFT
    assert [s["status"] for s in snapshot["job"]["segments"]] == [SegmentStatus.PENDING] * 2
    assert [(m["event"], m["job_id"]) for m in events] == [(name, str(job.id)) for name, _ in expected]
    for message, (_, subset) in zip(events, expected, strict=True):
        assert message["data"] | subset == message["data"], (message, subset)
    # Segment events carry the job's progress as the server computed it (the page computes none).
    progress = [
        m["job"]["progress"] for m in events if m["event"] == FRAME_PROGRESS and m["data"]["index"] == 0
    ]
    assert progress == pytest.approx([0.0, 0.0, 11.25, 22.5, 33.75, 45.0], abs=0.051)  # rounded to 0.1
    assert again["event"] == "snapshot" and again["job"]["status"] == JobStatus.FAILED
    seg0, seg1 = again["job"]["segments"]
    assert seg0["thumbnail_url"].startswith("/media/jobs/") and seg1["status"] == SegmentStatus.FAILED


def test_every_watcher_gets_the_events_and_a_late_joiner_gets_the_truth(user, no_dispatch):
    job = services.video_job_render(job=make_job(user))
    first = job.segments.get(index=0)
    render_state.segment_claim(segment_id=first.id, generation=job.render_generation, token="test-run")

    async def scenario(early: WebsocketCommunicator, late: WebsocketCommunicator) -> tuple[dict, dict, dict]:
        await early.connect(timeout=10)
        await early.receive_json_from(timeout=10)
        await database_sync_to_async(render_state.segment_progress)(segment_id=first.id, progress=60.0)
        seen_early = await early.receive_json_from(timeout=10)
        await late.connect(timeout=10)
        snapshot_late = await late.receive_json_from(timeout=10)
        await database_sync_to_async(render_state.segment_progress)(segment_id=first.id, progress=90.0)
        both = (await early.receive_json_from(timeout=10), await late.receive_json_from(timeout=10))
        await early.disconnect()
        await late.disconnect()
        return seen_early, snapshot_late, both

    seen_early, snapshot_late, (early_next, late_next) = async_to_sync(scenario)(
        socket_for(job.id, user=user), socket_for(job.id, user=user)
    )
    assert seen_early["event"] == FRAME_PROGRESS and seen_early["data"]["progress"] == 60.0
    assert snapshot_late["job"]["segments"][0]["progress"] == 60.0
    assert snapshot_late["job"]["status"] == JobStatus.RENDERING
    assert early_next == late_next and early_next["data"]["progress"] == 90.0


def test_sockets_of_one_process_share_one_membership_and_each_gets_every_event(user):
    """A web process joins a job's group once, however many of its sockets follow the job
    (realtime.fanout); each socket still gets each event once, and the last one out leaves the group."""
    job = make_job(user)
    payload = {"index": 0, "status": "rendering", "progress": 3.0, "attempts": 1}

    async def scenario(sockets: list[WebsocketCommunicator]) -> tuple[int, list[dict], int]:
        for socket in sockets:
            await socket.connect(timeout=10)
            await socket.receive_json_from(timeout=10)
        members = await group_size(job_group(job.id))
        await asyncio.to_thread(publish, job.id, FRAME_PROGRESS, payload)
        received = [await socket.receive_json_from(timeout=10) for socket in sockets]
        for socket in sockets:
            assert await socket.receive_nothing(timeout=0.2)  # no second copy
            await socket.disconnect()
        return members, received, await group_size(job_group(job.id))

    members, received, members_after = async_to_sync(scenario)(
        [socket_for(job.id, user=user) for _ in range(3)]
    )
    assert members == 1
    assert [m["data"] for m in received] == [payload] * 3
    assert members_after == 0


def test_anonymous_socket_is_closed_with_4401(user):
    job = make_job(user)
    assert async_to_sync(close_code)(socket_for(job.id)) == CLOSE_UNAUTHENTICATED


def test_another_users_job_is_closed_with_4404_and_gets_nothing(user, other_user, no_dispatch):
    job = make_job(user)

    async def scenario(communicator: WebsocketCommunicator) -> tuple[int, int]:
        code = await close_code(communicator)
        return code, await group_size(job_group(job.id))

    code, members = async_to_sync(scenario)(socket_for(job.id, user=other_user))
    assert code == CLOSE_NOT_FOUND
    # And the refused socket did not stay in the job's group.
    assert members == 0


def test_staff_may_watch_anyones_job(user, staff_user):
    job = make_job(user)

    async def scenario(communicator: WebsocketCommunicator) -> dict:
        connected, _ = await communicator.connect(timeout=10)
        assert connected
        message = await communicator.receive_json_from(timeout=10)
        await communicator.disconnect()
        return message

    message = async_to_sync(scenario)(socket_for(job.id, user=staff_user))
    assert message["event"] == "snapshot" and message["job"]["id"] == str(job.id)


def test_assembly_and_completion_events(user, no_dispatch):
    job = make_job(user, duration_seconds=2, segment_seconds=2)
    job = services.video_job_render(job=job)
    only = job.segments.get()
    render_state.segment_claim(segment_id=only.id, generation=job.render_generation, token="test-run")
    render_state.segment_complete(
        segment_id=only.id,
        clip=ContentFile(b"c", name="c.mp4"),
        last_frame=None,
        thumbnail=None,
        cost_usd=Decimal("0"),
    )

    def finish() -> None:
        render_state.job_assembly_start(job_id=job.id, generation=job.render_generation, token="test-run")
        render_state.job_assembly_progress(job_id=job.id, fraction=0.5)
        render_state.job_complete(
            job_id=job.id,
            output=ContentFile(b"mp4", name="v.mp4"),
            poster=ContentFile(jpeg_bytes()),
            duration=2.0,
        )

    async def scenario(communicator: WebsocketCommunicator) -> list[dict]:
        await communicator.connect(timeout=10)
        await communicator.receive_json_from(timeout=10)
        await database_sync_to_async(finish)()
        messages = await receive(communicator, 3)
        await communicator.disconnect()
        return messages

    assembling, assembly, completed = async_to_sync(scenario)(socket_for(job.id, user=user))
    assert (assembling["event"], assembling["data"]["status"]) == (JOB_STATUS, JobStatus.ASSEMBLING)
    assert (assembly["event"], assembly["data"]) == (JOB_ASSEMBLY, {"progress": 50.0})
    assert (completed["event"], completed["data"]["status"]) == (JOB_STATUS, JobStatus.COMPLETED)
    assert completed["data"]["progress"] == 100 and completed["data"]["output_url"].endswith(".mp4")


def publish_in_a_forked_child(job_id: Any, payload: dict[str, Any]) -> int:
    """Fork (as Celery's prefork pool does), publish in the child, return its exit code. The child leaves
    with os._exit so it never touches the parent's database connection or pytest's state."""
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            publish(job_id, FRAME_PROGRESS, payload)
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_forked_worker_publishes_through_its_own_loop(user):
    """A prefork worker is forked from a parent that may already have published: the child must not
    use the parent's publisher loop, whose thread did not survive the fork."""
    job = make_job(user)
    payload = {
        "index": 0,
        "status": "rendering",
        "progress": 5.0,
        "attempt": 1,
        "provider_status": "",
        "error": "",
    }

    async def scenario(communicator: WebsocketCommunicator) -> list[dict]:
        await communicator.connect(timeout=10)
        await communicator.receive_json_from(timeout=10)
        await asyncio.to_thread(publish, job.id, FRAME_PROGRESS, payload)  # the parent's loop starts
        child = await asyncio.to_thread(publish_in_a_forked_child, job.id, {**payload, "progress": 6.0})
        assert child == 0
        messages = await receive(communicator, 2)
        await communicator.disconnect()
        return messages

    messages = async_to_sync(scenario)(socket_for(job.id, user=user))
    assert [m["data"]["progress"] for m in messages] == [5.0, 6.0]


def test_a_quiet_socket_still_gets_events_after_a_long_silence(user):
    """Render steps can be many seconds apart. channels_redis waits for messages in BZPOPMIN for up to
    5 s at a time; a Redis client whose read timeout is not longer than that (redis-py 8's default is
    5 s) crashes the consumer during the silence, and the page loses its socket."""
    job = make_job(user)
    payload = {
        "index": 0,
        "status": "rendering",
        "progress": 1.0,
        "attempt": 1,
        "provider_status": "",
        "error": "",
    }

    async def scenario(communicator: WebsocketCommunicator) -> dict:
        await communicator.connect(timeout=10)
        await communicator.receive_json_from(timeout=10)
        await asyncio.sleep(QUIET_SECONDS)
        await asyncio.to_thread(publish, job.id, FRAME_PROGRESS, payload)
        message = await communicator.receive_output(timeout=10)
        await communicator.disconnect()
        return message

    message = async_to_sync(scenario)(socket_for(job.id, user=user))
    assert message["type"] == "websocket.send", message  # not a close: the consumer is alive
    assert json.loads(message["text"])["data"] == payload
