"""Provider limits on the embedded default (the in-process implementation; the Redis one is tested in
test_rate_limits_redis.py, and across two real worker processes in tests/fleet/test_rate_limits.py)."""

from __future__ import annotations

import time

import pytest

from jobs import services
from jobs.models import Segment, SegmentStatus
from rendering import pipeline, ratelimit

from .conftest import SHOTS, render, sora_job


def test_slots_have_a_cap_are_reentrant_expire_and_release_idempotently():
    limits = ratelimit.InProcessBackend()
    assert limits.acquire("sora", "1:1", 2, 60) and limits.acquire("sora", "2:1", 2, 60)
    assert not limits.acquire("sora", "3:1", 2, 60)
    assert limits.acquire("sora", "1:1", 2, 60)  # a holder asking again keeps its slot
    assert limits.acquire("local", "3:1", 2, 60)  # each provider has its own slots
    limits.release("sora", "2:1")
    limits.release("sora", "2:1")
    assert limits.acquire("sora", "3:1", 2, 60)
    assert sorted(limits.holders("sora")) == ["1:1", "3:1"]
    assert limits.acquire("sora", "4:1", 2, 60, force=True)  # a render already running is counted
    assert len(limits.holders("sora")) == 3

    leases = ratelimit.InProcessBackend()
    assert leases.acquire("sora", "a", 1, 0.05)
    assert not leases.acquire("sora", "b", 1, 0.05)
    time.sleep(0.08)  # the holder's worker died: its lease runs out
    assert leases.acquire("sora", "b", 1, 0.05)


def test_creates_per_minute_is_a_sliding_window():
    limits = ratelimit.InProcessBackend()
    assert limits.take_create("sora", 2) == 0 and limits.take_create("sora", 2) == 0
    wait = limits.take_create("sora", 2)
    assert 59 < wait <= 60


@pytest.mark.django_db
def test_a_segment_over_the_limit_waits_without_calling_the_provider(
    fake_api, no_caps, settings, user, django_capture_on_commit_callbacks
):
    settings.PROVIDER_MAX_CONCURRENT = {"sora": 1}
    with django_capture_on_commit_callbacks(execute=False):
        job = services.video_job_render(job=sora_job(user))
    segment = job.segments.get()
    ratelimit.backend().acquire("sora", "someone-else", 1, 60)
    try:
        step = pipeline.render_segment(
            segment_id=segment.id, generation=job.render_generation, lease="test-run"
        )
        assert isinstance(step, pipeline.PollLater)
        assert 0.3 <= step.delay <= 0.7  # about PROVIDER_SLOT_WAIT_SECONDS, jittered
        segment.refresh_from_db()
        assert segment.status == SegmentStatus.RENDERING and segment.provider_status == "waiting for a slot"
        assert segment.attempts == 1 and not segment.provider_task_id
        assert fake_api.stats.creates == 0 and fake_api.stats.polls == 0

        ratelimit.backend().release("sora", "someone-else")
        step = pipeline.render_segment(
            segment_id=segment.id, generation=job.render_generation, lease="test-run"
        )
        assert isinstance(step, pipeline.PollLater) and fake_api.stats.creates == 1
        holder = ratelimit.member(segment.id, job.render_generation)
        assert ratelimit.backend().holders("sora") == [holder]
        segment.refresh_from_db()
        assert segment.attempts == 1  # waiting never used up an attempt
    finally:
        services.video_job_cancel(job=job)
        ratelimit.backend().release("sora", "someone-else")
        ratelimit.release_everywhere(ratelimit.member(segment.id, job.render_generation))


@pytest.mark.django_db
def test_the_creates_window_makes_a_segment_wait_until_a_create_leaves_it(
    fake_api, no_caps, settings, user, django_capture_on_commit_callbacks
):
    settings.PROVIDER_CREATES_PER_MINUTE = {"sora": 1}
    ratelimit.backend().take_create("sora", 1)  # this minute's only create is gone
    with django_capture_on_commit_callbacks(execute=False):
        job = services.video_job_render(job=sora_job(user))
    try:
        step = pipeline.render_segment(
            segment_id=job.segments.get().id, generation=job.render_generation, lease="test-run"
        )
        assert isinstance(step, pipeline.PollLater) and 59 < step.delay <= 60.2
        assert fake_api.stats.creates == 0
    finally:
        services.video_job_cancel(job=job)
        ratelimit._backends.clear()  # forget this test's window


@pytest.mark.django_db(transaction=True)
def test_a_parallel_job_under_a_limit_of_one_renders_one_at_a_time(fake_api, no_caps, settings, user):
    settings.PROVIDER_MAX_CONCURRENT = {"sora": 1}
    settings.PROVIDER_SLOT_WAIT_SECONDS = 0.1
    fake_api.config.max_concurrent = 1  # the provider would answer 429 to a second render at once
    job = render(sora_job(user, prompts=SHOTS))
    stats = fake_api.stats
    assert (stats.creates, stats.max_in_flight, stats.rejected_429) == (3, 1, 0)
    assert ratelimit.backend().holders("sora") == []  # every slot given back
    assert set(Segment.objects.values_list("status", flat=True)) == {SegmentStatus.COMPLETED}
    assert job.cost_spent_usd == job.cost_estimate_usd
