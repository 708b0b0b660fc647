"""The reaper re-queues stalled work exactly once per stale period, and the tasks resume it safely."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import render_state, services
from jobs.models import JobStatus, Segment, SegmentStatus, VideoJob
from rendering import reaper, transport

pytestmark = pytest.mark.django_db


@pytest.fixture
def enqueued(monkeypatch):
    calls: list[tuple] = []
    monkeypatch.setattr(reaper, "enqueue", lambda name, *args: calls.append((name, args)))
    return calls


def stalled_job(user, capture) -> VideoJob:
    job = services.video_job_create(
        owner=user, prompt="One. Two. Three.", duration_seconds=3, segment_seconds=1, strategy="sentences"
    )
    with capture(execute=False):
        job = services.video_job_render(job=job)
    first = job.segments.get(index=0)
    render_state.segment_claim(segment_id=first.id, generation=job.render_generation)
    return job


def test_stalled_segments_are_requeued_once(user, enqueued, django_capture_on_commit_callbacks):
    job = stalled_job(user, django_capture_on_commit_callbacks)
    assert reaper.reap_stale(stale_seconds=600) == {"segments": 0, "assemblies": 0}
    Segment.objects.filter(job=job).update(updated_at=timezone.now() - timedelta(hours=1))
    assert reaper.reap_stale(stale_seconds=600) == {"segments": 3, "assemblies": 0}
    assert sorted(args[1] for _, args in enqueued) == sorted(job.segments.values_list("id", flat=True))
    assert {name for name, _ in enqueued} == {"rendering.render_segment"}
    # Claimed: a second sweep (or a second reaper) finds nothing until another stale period passes.
    assert reaper.reap_stale(stale_seconds=600) == {"segments": 0, "assemblies": 0}


def test_finished_or_cancelled_work_is_left_alone(user, enqueued, django_capture_on_commit_callbacks):
    job = stalled_job(user, django_capture_on_commit_callbacks)
    services.video_job_cancel(job=job)
    Segment.objects.filter(job=job).update(updated_at=timezone.now() - timedelta(hours=1))
    assert reaper.reap_stale(stale_seconds=600) == {"segments": 0, "assemblies": 0}
    assert enqueued == []


def test_a_stalled_assembly_is_requeued_and_resumes(user, enqueued, django_capture_on_commit_callbacks):
    job = stalled_job(user, django_capture_on_commit_callbacks)
    Segment.objects.filter(job=job).update(status=SegmentStatus.COMPLETED)
    VideoJob.objects.filter(id=job.id).update(
        status=JobStatus.ASSEMBLING, updated_at=timezone.now() - timedelta(hours=1)
    )
    assert reaper.reap_stale(stale_seconds=600) == {"segments": 0, "assemblies": 1}
    assert enqueued == [("rendering.assemble_job", (str(job.id), job.render_generation))]
    # The assembly task accepts a job left assembling by a dead assembler.
    assert render_state.job_assembly_start(job_id=job.id, generation=job.render_generation).id == job.id


def test_render_segment_is_routed_to_submit_and_polls_to_poll(settings):
    from sora_controller.celery import app

    router = app.amqp.router
    assert router.route({}, "rendering.render_segment")["queue"].name == "submit"
    assert router.route({}, "rendering.assemble_job")["queue"].name == "assemble"
    assert settings.POLL_QUEUE == "poll"
    assert "reap-stale-work" in settings.CELERY_BEAT_SCHEDULE


def test_the_in_process_runner_sweeps_on_its_own(monkeypatch):
    import time

    calls: list[float] = []
    runner = transport.InProcessRunner(1, sweep=lambda: calls.append(time.monotonic()), sweep_every=0.05)
    try:
        deadline = time.monotonic() + 5
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        runner.stop_sweeping()
    assert len(calls) >= 2
    settled = len(calls)
    time.sleep(0.2)
    assert len(calls) <= settled + 1  # stopped
