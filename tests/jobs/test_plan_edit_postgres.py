"""A draft's plan edit racing its render on a real PostgreSQL server: one of them goes first under the
job's row lock, and the render queues exactly the plan that was stored (the old one, with the edit
refused, or the new one). Run by `make test-postgres`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from jobs import services
from jobs.errors import IllegalTransition
from jobs.models import JobStatus, Segment, SegmentStatus, VideoJob
from jobs.plan_edit import PlanCard, video_job_plan_update
from tests.factories import VideoJobFactory
from tests.support.postgres import POSTGRES_ONLY
from tests.support.race import race

pytestmark = POSTGRES_ONLY

SHOTS = ("A.", "B.", "C.")
NEW = [PlanCard("C.", 2), PlanCard("A.", 0)]


@pytest.fixture(autouse=True)
def _stop_renders(settings) -> Iterator[None]:
    settings.TASK_RUNNER = "inprocess"
    yield
    for job in VideoJob.objects.exclude(status__in=[JobStatus.DRAFT, JobStatus.CANCELLED]):
        with contextlib.suppress(IllegalTransition):  # finished meanwhile
            services.video_job_cancel(job=job)
    from rendering.transport import inprocess_runner

    assert inprocess_runner().wait_idle(timeout=60)


def test_an_edit_racing_a_render_leaves_one_whole_plan_queued(user):
    for _ in range(6):
        job = VideoJobFactory(owner=user, shots=SHOTS)
        edit, render = race(
            [
                lambda job=job: video_job_plan_update(job=VideoJob.objects.get(id=job.id), cards=NEW),
                lambda job=job: services.video_job_render(job=VideoJob.objects.get(id=job.id)),
            ]
        )
        assert not isinstance(render, Exception), render
        rows = list(Segment.objects.filter(job=job).order_by("index").values_list("prompt", "status"))
        # Which one wins varies from run to run; each round checks the outcome it got.
        if isinstance(edit, IllegalTransition):
            assert [prompt for prompt, _ in rows] == list(SHOTS)
        else:
            assert not isinstance(edit, Exception), edit
            assert [prompt for prompt, _ in rows] == ["C.", "A."]
        # Whichever plan was stored is the one queued, every segment of it.
        assert {status for _, status in rows} == {SegmentStatus.QUEUED}
        services.video_job_cancel(job=VideoJob.objects.get(id=job.id))
