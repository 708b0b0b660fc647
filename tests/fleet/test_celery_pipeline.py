"""The render pipeline on real Celery workers, real Redis and PostgreSQL, against the fake Videos API.

Each test drives a small job (4 s segments, which the protocol renders exactly) through the public
services and watches the database and the fake API's own counts.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path

import pytest

from jobs import services
from jobs.models import JobStatus, SegmentStatus, VideoJob
from rendering.media import probe
from tests.factories import VideoJobFactory
from tests.support.worker import wait_for

from .conftest import start_worker

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

TERMINAL = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}
SHOTS = ("Dawn over the bay.", "Boats leave the harbour.", "Gulls follow them.")
BLOCKED = ("A calm lake.", "A FORBIDDEN thing.", "A quiet forest.")  # the fake API refuses "FORBIDDEN"


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, fleet_dirs, fleet_api, redis_clean):
    with django_db_blocker.unblock():
        started = start_worker("pipeline", fleet_dirs, fleet_api, concurrency=2)
    yield started
    started.stop()


def finish(job: VideoJob, timeout: float = 60) -> VideoJob:
    def settled():
        job.refresh_from_db()
        return job.status in TERMINAL

    wait_for(settled, timeout, what=f"job {job.id} to finish")
    return job


def test_parallel_job_renders_every_segment_at_once_once(
    worker, fleet_settings, fleet_api, user, redis_clean
):
    job = finish(services.video_job_render(job=VideoJobFactory(owner=user, sora=True, shots=SHOTS)))
    assert job.status == JobStatus.COMPLETED, job.error
    # The database holds every state; Celery stores no task results (each poll would write two or three).
    assert list(redis_clean.scan_iter("celery-task-meta-*")) == []
    stats = fleet_api.stats
    assert stats.creates == 3 and set(stats.creates_by_prompt.values()) == {1}
    # Two worker processes, three clips in flight together: waiting on the provider holds no slot.
    assert stats.max_in_flight == 3
    assert probe(Path(job.output_video.path)).duration == pytest.approx(12.0, abs=0.1)
    assert job.cost_spent_usd == Decimal("1.2") == job.cost_estimate_usd


def test_chain_job_sends_each_previous_last_frame(worker, fleet_settings, fleet_api, user):
    job = VideoJobFactory(owner=user, sora=True, shots=SHOTS, continuity="chain")
    job = finish(services.video_job_render(job=job))
    assert job.status == JobStatus.COMPLETED, job.error
    segments = list(job.segments.order_by("index"))
    sent = [r["reference_sha256"] for r in fleet_api.stats.requests]
    expected = [None] + [
        hashlib.sha256(Path(s.last_frame.path).read_bytes()).hexdigest() for s in segments[:-1]
    ]
    assert sent == expected
    assert fleet_api.stats.max_in_flight == 1


def test_a_429_storm_is_waited_out(worker, fleet_settings, fleet_api, user):
    fleet_api.config.rate_limit_burst = 5
    job = VideoJobFactory(owner=user, sora=True, shots=SHOTS)
    job = finish(services.video_job_render(job=job), timeout=90)
    assert job.status == JobStatus.COMPLETED, job.error
    assert fleet_api.stats.rejected_429 == 5 and fleet_api.stats.creates == 3


def test_moderation_failure_fails_the_job_with_the_providers_words(worker, fleet_settings, fleet_api, user):
    job = VideoJobFactory(owner=user, sora=True, shots=BLOCKED)
    job = finish(services.video_job_render(job=job))
    assert job.status == JobStatus.FAILED
    assert "segment 2" in job.error and "blocked by our moderation system" in job.error
    statuses = dict(job.segments.values_list("index", "status"))
    assert statuses == {0: SegmentStatus.COMPLETED, 1: SegmentStatus.FAILED, 2: SegmentStatus.COMPLETED}
    assert all(Path(s.clip.path).exists() for s in job.segments.exclude(index=1))
    assert not job.output_video


def test_retry_renders_only_the_failed_segment(worker, fleet_settings, fleet_api, user):
    job = VideoJobFactory(owner=user, sora=True, shots=BLOCKED)
    job = finish(services.video_job_render(job=job))
    kept = {s.index: s.clip.name for s in job.segments.filter(status=SegmentStatus.COMPLETED)}
    services.segment_update_prompt(job=job, index=1, prompt="A harmless heron.")
    job = finish(services.video_job_retry(job=job))
    assert job.status == JobStatus.COMPLETED, job.error
    assert fleet_api.stats.creates_by_prompt == {
        "A calm lake.": 1,
        "A FORBIDDEN thing.": 1,
        "A quiet forest.": 1,
        "A harmless heron.": 1,
    }
    assert {s.index: s.clip.name for s in job.segments.exclude(index=1)} == kept


def test_expired_download_renders_the_segment_again_and_records_the_cost(
    worker, fleet_settings, fleet_api, user
):
    fleet_api.config.expire_next_downloads = 1
    job = finish(services.video_job_render(job=VideoJobFactory(owner=user, sora=True, shots=SHOTS)))
    assert job.status == JobStatus.COMPLETED, job.error
    assert fleet_api.stats.expired_downloads == 1 and fleet_api.stats.creates == 4
    attempts = sorted(job.segments.values_list("attempts", flat=True))
    assert attempts == [1, 1, 2]
    # The lost render was paid for: 4 renders of 4 s at $0.10.
    assert job.cost_spent_usd == Decimal("1.6")


def test_cancel_stops_in_flight_work(worker, fleet_settings, fleet_api, user):
    fleet_api.config.latency = 6.0
    job = services.video_job_render(job=VideoJobFactory(owner=user, sora=True, shots=SHOTS))
    wait_for(lambda: job.segments.exclude(provider_task_id="").count() == 3, 30, what="three provider tasks")
    job = services.video_job_cancel(job=job)
    import time

    time.sleep(8)  # past the provider's latency: nothing may be downloaded or assembled
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and not job.output_video
    assert set(job.segments.values_list("status", flat=True)) == {SegmentStatus.CANCELLED}
    assert fleet_api.stats.creates == 3 and fleet_api.stats.downloads == 0


def test_rerender_one_segment_reassembles(worker, fleet_settings, fleet_api, user):
    job = finish(services.video_job_render(job=VideoJobFactory(owner=user, sora=True, shots=SHOTS)))
    before = {s.index: s.clip.name for s in job.segments.all()}
    first_video = job.output_video.name
    job = finish(services.segment_rerender(job=job, indexes=[1]))
    assert job.status == JobStatus.COMPLETED, job.error
    after = {s.index: s.clip.name for s in job.segments.all()}
    assert after[0] == before[0] and after[2] == before[2] and after[1] != before[1]
    assert fleet_api.stats.creates == 4 and job.output_video.name != first_video
    assert probe(Path(job.output_video.path)).duration == pytest.approx(12.0, abs=0.1)
