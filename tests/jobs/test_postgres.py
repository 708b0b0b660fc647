"""The models and the claim-by-conditional-UPDATE rule on a real PostgreSQL server.

Run by `make test-postgres` (part of `make test`) with DATABASE_URL pointing at PostgreSQL.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from jobs import render_state, services
from jobs.errors import IllegalTransition
from jobs.models import JobStatus, Segment, SegmentStatus, VideoJob
from tests.factories import VideoJobFactory
from tests.support.race import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _on_postgres():
    assert connection.vendor == "postgresql", "run with DATABASE_URL set to a PostgreSQL server"


def test_job_and_segments_round_trip(user):
    job = VideoJobFactory(
        owner=user, prompt="A train crosses a bridge. Snow falls.", strategy="sentences", duration_seconds=30
    )
    loaded = VideoJob.objects.prefetch_related("segments").get(id=job.id)
    assert loaded.duration_seconds == 30 and loaded.cost_estimate_usd == Decimal("0")
    assert [(s.index, s.start_seconds, s.end_seconds) for s in loaded.segments.all()] == [
        (0, 0, 10),
        (1, 10, 20),
        (2, 20, 30),
    ]


def test_constraints_are_enforced_by_the_database(user):
    job = VideoJobFactory(owner=user)
    with pytest.raises(IntegrityError), transaction.atomic():
        Segment.objects.create(job=job, index=0, prompt="dup", start_seconds=0, end_seconds=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Segment.objects.create(job=job, index=9, prompt="backwards", start_seconds=5, end_seconds=5)
    with pytest.raises(IntegrityError), transaction.atomic():
        VideoJob.objects.filter(id=job.id).update(progress=101)
    with pytest.raises(IntegrityError), transaction.atomic():
        VideoJob.objects.create(owner=user, prompt="x", duration_seconds=-1)


def test_two_renders_race_one_wins(user, settings):
    settings.TASK_RUNNER = "inprocess"
    job = VideoJobFactory(owner=user)
    # Cancel first so that the render path from 'cancelled' is raced without starting real work.
    services.video_job_cancel(job=job)
    results = race([lambda: services.video_job_render(job=VideoJob.objects.get(id=job.id))] * 4)
    winners = [r for r in results if isinstance(r, VideoJob)]
    losers = [r for r in results if isinstance(r, IllegalTransition)]
    assert len(winners) == 1 and len(losers) == 3, results
    job.refresh_from_db()
    assert job.render_generation == 1
    services.video_job_cancel(job=job)  # stop the winner's run before the test database goes away
    from rendering.transport import inprocess_runner

    assert inprocess_runner().wait_idle(timeout=60)


def test_one_worker_claims_a_segment(user):
    job = VideoJobFactory(owner=user)
    VideoJob.objects.filter(id=job.id).update(status=JobStatus.QUEUED, render_generation=1)
    Segment.objects.filter(job=job).update(status=SegmentStatus.QUEUED)
    segment = job.segments.get(index=0)
    # The conditional UPDATE lets exactly one claimer move queued -> rendering; the others resume or
    # see it taken, and the attempt is counted once.
    race([lambda: render_state.segment_claim(segment_id=segment.id, generation=1, token="test-run")] * 6)
    segment.refresh_from_db()
    assert segment.status == SegmentStatus.RENDERING and segment.attempts == 1


def test_two_completions_race_one_is_recorded(user, settings):
    from django.core.files.base import ContentFile

    job = VideoJobFactory(owner=user, duration_seconds=10)
    VideoJob.objects.filter(id=job.id).update(status=JobStatus.RENDERING, render_generation=1)
    Segment.objects.filter(job=job).update(status=SegmentStatus.RENDERING)
    segment = job.segments.get()

    def complete():
        return render_state.segment_complete(
            segment_id=segment.id,
            clip=ContentFile(b"x", name="c.mp4"),
            last_frame=None,
            thumbnail=None,
            cost_usd=Decimal("0.1"),
        )

    results = race([complete] * 3)
    assert sum(isinstance(r, Segment) for r in results) == 1, results
    assert sum(isinstance(r, IllegalTransition) for r in results) == 2
    segment.refresh_from_db()
    job.refresh_from_db()
    assert segment.status == SegmentStatus.COMPLETED and job.cost_spent_usd == Decimal("0.1")
    # The losers removed the files they had written: only the winner's clip is on disk.
    clips = list((settings.MEDIA_ROOT / f"jobs/{job.id}/segments").glob("*.mp4"))
    assert [c.name for c in clips] == [segment.clip.name.rsplit("/", 1)[-1]]


def test_a_segment_move_holds_its_jobs_row_until_it_commits(user):
    import threading

    from django.db import OperationalError, connections

    from jobs.transitions import lock_job_of_segment

    job, other = VideoJobFactory(owner=user), VideoJobFactory(owner=user)
    segment = job.segments.first()
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        try:
            with transaction.atomic():
                lock_job_of_segment(segment.id)
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert locked.wait(10)
        # Another transaction cannot lock the job row meanwhile (NOWAIT: fail instead of waiting)...
        with pytest.raises(OperationalError, match="could not obtain lock"), transaction.atomic():
            list(VideoJob.objects.select_for_update(nowait=True).filter(id=job.id))
        # ...but another job's row is free.
        with transaction.atomic():
            assert list(VideoJob.objects.select_for_update(nowait=True).filter(id=other.id))
    finally:
        release.set()
        holder.join(10)
    with transaction.atomic():
        assert list(VideoJob.objects.select_for_update(nowait=True).filter(id=job.id))
