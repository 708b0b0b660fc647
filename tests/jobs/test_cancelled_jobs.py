"""A cancelled job stays honest: its segments' bars empty, and re-rendering one of its segments brings it
back to cancelled (with what is left), not to failed."""

from __future__ import annotations

import pytest

from jobs import render_state, services
from jobs.models import JobStatus, Segment, SegmentStatus, VideoJob
from rendering.transport import inprocess_runner
from tests.factories import VideoJobFactory


@pytest.mark.django_db
def test_cancelling_empties_the_bars_of_the_segments_it_stops(user, django_capture_on_commit_callbacks):
    job = VideoJobFactory(owner=user, short=True)
    with django_capture_on_commit_callbacks(execute=False):
        job = services.video_job_render(job=job)
    first = job.segments.get(index=0)
    render_state.segment_claim(segment_id=first.id, generation=job.render_generation, token="run")
    render_state.segment_progress(segment_id=first.id, progress=94.0, token="run")
    services.video_job_cancel(job=job)
    assert list(job.segments.values_list("status", "progress")) == [
        (SegmentStatus.CANCELLED, 0.0),
        (SegmentStatus.CANCELLED, 0.0),
    ]


@pytest.mark.django_db(transaction=True)
def test_rerendering_one_segment_of_a_cancelled_job_leaves_it_cancelled_not_failed(user):
    job = VideoJobFactory(owner=user, short=True)
    VideoJob.objects.filter(id=job.id).update(status=JobStatus.CANCELLED)
    Segment.objects.filter(job=job).update(status=SegmentStatus.CANCELLED)
    job.refresh_from_db()
    services.segment_rerender(job=job, indexes=[0])
    assert inprocess_runner().wait_idle(timeout=60)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert "segments 2 were cancelled" in job.error
    assert list(job.segments.values_list("status", flat=True)) == [
        SegmentStatus.COMPLETED,
        SegmentStatus.CANCELLED,
    ]
    # Rendering the job now renders only what is left, and finishes the video.
    services.video_job_render(job=job)
    assert inprocess_runner().wait_idle(timeout=60)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error
    assert job.segments.get(index=0).take_number == 1  # not rendered again
