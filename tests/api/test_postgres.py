"""Races through the API on a real PostgreSQL server: concurrent requests end with one winner and a
consistent database. Run by `make test-postgres` (DATABASE_URL pointing at PostgreSQL)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
from django.db import OperationalError, connection

from jobs import services
from jobs.errors import IllegalTransition
from jobs.models import JobStatus, SegmentStatus, VideoJob
from tests.support.postgres import POSTGRES_ONLY
from tests.support.race import race

from .conftest import client_for, job_url

pytestmark = POSTGRES_ONLY

ACTIVE = [JobStatus.QUEUED, JobStatus.RENDERING, JobStatus.ASSEMBLING]


def cancel_with_retry(job: VideoJob, attempts: int = 10) -> None:
    """Cancel, trying again when PostgreSQL picks this transaction as a deadlock victim.

    video_job_cancel locks the job row and then the segment rows, while a worker's segment_claim and
    segment_progress lock a segment row and then the job row, so against a live render the two can
    deadlock (see test_cancel_during_a_live_render_never_deadlocks). A victim's transaction is rolled
    back whole, so trying again is safe.
    """
    for attempt in range(attempts):
        try:
            with contextlib.suppress(IllegalTransition):  # finished in the meantime: nothing to stop
                services.video_job_cancel(job=job)
            return
        except OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.1)


@pytest.fixture(autouse=True)
def _on_postgres(settings) -> Iterator[None]:
    assert connection.vendor == "postgresql", "run with DATABASE_URL set to a PostgreSQL server"
    settings.TASK_RUNNER = "inprocess"
    # With DATABASE_URL set the project assumes a TLS proxy in front and redirects plain HTTP; the test
    # client speaks plain HTTP.
    settings.SECURE_SSL_REDIRECT = False
    yield
    # Stop whatever the winners started before the test database goes away.
    for job in VideoJob.objects.filter(status__in=ACTIVE):
        cancel_with_retry(job)
    from rendering.transport import inprocess_runner

    assert inprocess_runner().wait_idle(timeout=60)


def short_job(owner) -> VideoJob:
    # Two 2-second segments: if a winner's render starts for real, it is over quickly.
    return services.video_job_create(
        owner=owner, prompt="A kite. A cloud.", duration_seconds=4, segment_seconds=2
    )


def test_concurrent_renders_have_one_winner(user):
    job = short_job(user)
    clients = [client_for(user) for _ in range(4)]
    responses = race([lambda c=c: c.post(job_url(job, "render/")) for c in clients])
    codes = sorted(r.status_code for r in responses)
    assert codes == [202, 409, 409, 409], [(r.status_code, r.content[:200]) for r in responses]
    for loser in (r for r in responses if r.status_code == 409):
        assert loser.json()["code"] == "illegal_transition"
        assert (
            "only a draft or cancelled job can be rendered" in loser.json()["detail"]
            or "cannot become" in (loser.json()["detail"])
        )
    job.refresh_from_db()
    # One run: the generation moved once and every segment was queued by it (or already picked up).
    assert job.render_generation == 1
    assert job.status in {JobStatus.QUEUED, JobStatus.RENDERING, JobStatus.ASSEMBLING, JobStatus.COMPLETED}


@pytest.mark.parametrize("round_", range(4))
def test_an_edit_against_a_render_stays_consistent(user, round_):
    job = short_job(user)
    before = job.segments.get(index=0).prompt
    editor, renderer = client_for(user), client_for(user)
    edit, render = race(
        [
            lambda: editor.patch(job_url(job, "segments/0/"), {"prompt": "A red kite."}, format="json"),
            lambda: renderer.post(job_url(job, "render/")),
        ]
    )
    # The render never waits on an edit; the edit either lands first or is refused.
    assert render.status_code == 202, render.content[:300]
    assert edit.status_code in {200, 409}, edit.content[:300]
    segment = job.segments.get(index=0)
    job.refresh_from_db()
    assert job.render_generation == 1
    if edit.status_code == 200:
        # The edit came first: the render took the new prompt.
        assert (segment.prompt, segment.is_manual) == ("A red kite.", True)
    else:
        # The render came first: the queued segment kept the prompt it was queued with.
        assert edit.json()["code"] == "illegal_transition" and "cannot change now" in edit.json()["detail"]
        assert (segment.prompt, segment.is_manual) == (before, False)
    assert segment.status != SegmentStatus.PENDING


def test_cancel_during_a_live_render_never_deadlocks(user):
    client = client_for(user)
    for round_ in range(6):
        job = services.video_job_create(
            owner=user, prompt="A kite. A cloud. A bird. A tree.", duration_seconds=8, segment_seconds=2
        )
        assert client.post(job_url(job, "render/")).status_code == 202
        # Alternate between cancelling while workers claim their segments and while they report progress.
        if round_ % 2:
            deadline = time.monotonic() + 20
            while not job.segments.filter(status=SegmentStatus.RENDERING).exists():
                assert time.monotonic() < deadline, "the render never started"
                time.sleep(0.005)
        response = client.post(job_url(job, "cancel/"))
        assert response.status_code in {202, 409}, response.content[:300]
    # The cancelled runs' tasks still wind down on the in-process runner: let them, so none of this test's
    # work (or its database connections) runs on into the next test.
    from rendering.transport import inprocess_runner

    assert inprocess_runner().wait_idle(timeout=60)
