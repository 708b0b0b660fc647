"""render_state.segment_claim: a poll step of the run that holds a segment takes its lease in one UPDATE
and one read, without locking the job; everything else goes through the job's lock as before."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import leases, render_state, services
from jobs.models import JobStatus, Segment, SegmentStatus
from tests.factories import VideoJobFactory

pytestmark = pytest.mark.django_db


def _rendering(user, token: str = "run-a"):
    job = services.video_job_render(job=VideoJobFactory(owner=user, duration_seconds=10))
    segment = job.segments.get()
    render_state.segment_claim(segment_id=segment.id, generation=job.render_generation, token=token)
    job.refresh_from_db()
    assert job.status == JobStatus.RENDERING
    return job, segment


def test_the_next_step_of_the_holding_run_is_one_update_and_one_read(user):
    job, segment = _rendering(user)
    leases.segment_wait(segment.id, "run-a", 5.0)  # the run went to wait between polls

    with CaptureQueriesContext(connection) as queries:
        claimed = render_state.segment_claim(
            segment_id=segment.id, generation=job.render_generation, token="run-a"
        )

    assert claimed.id == segment.id and claimed.job.id == job.id and claimed.attempts == 1
    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    assert statements == ["UPDATE", "SELECT"], statements  # no transaction, no lock of the job
    row = Segment.objects.get(id=segment.id)
    assert (row.lease_token, row.lease_waiting) == ("run-a", False)  # working again: webhooks poke it


def test_another_live_runs_lease_is_refused(user):
    job, segment = _rendering(user)
    with pytest.raises(render_state.LeaseHeld):
        render_state.segment_claim(segment_id=segment.id, generation=job.render_generation, token="run-b")
    assert Segment.objects.get(id=segment.id).lease_token == "run-a"


def test_a_stale_run_that_finds_an_expired_lease_gives_it_back_to_the_reaper(user):
    job, segment = _rendering(user)
    # The run of the current generation died: its lease has expired.
    Segment.objects.filter(id=segment.id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    # A message of an older generation arrives for the same segment.
    stale = render_state.segment_claim(
        segment_id=segment.id, generation=job.render_generation - 1, token="old-run"
    )

    assert stale is None
    # Expired again at once, so the reaper resumes the segment at its next sweep, as it would have.
    resumed = leases.segments_expired_claim()
    assert [(segment_id, generation) for _, segment_id, generation, _ in resumed] == [
        (segment.id, job.render_generation)
    ]


def test_a_segment_settled_meanwhile_is_not_claimed(user):
    job, segment = _rendering(user)
    services.video_job_cancel(job=job)
    assert Segment.objects.get(id=segment.id).status == SegmentStatus.CANCELLED
    assert (
        render_state.segment_claim(segment_id=segment.id, generation=job.render_generation, token="run-a")
        is None
    )
