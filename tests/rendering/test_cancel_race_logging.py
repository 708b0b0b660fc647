"""A cancel that races a render is an expected outcome, not a crash (issue 14, point 8).

The race: a segment is cancelled while its provider renders it. When the render returns, the worker
stores the provider's task id on a segment that is no longer rendering; that move is refused with
IllegalTransition, which reached the task's catch-all and was logged at ERROR with a traceback
("render_segment ... crashed"), as if the worker had crashed. It must be logged at INFO without a
traceback, and leave the segment and the job cancelled.
"""

from __future__ import annotations

import contextlib
import logging

import pytest

from jobs import services
from jobs.errors import IllegalTransition
from jobs.models import JobStatus, SegmentStatus, VideoJob
from rendering.providers.local import LocalProvider
from rendering.transport import inprocess_runner

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_cancel_during_the_providers_render_is_logged_at_info_without_a_traceback(
    user, caplog, monkeypatch
):
    render = LocalProvider.submit

    def submit_then_cancelled(self, request, *, on_progress=None):
        task = render(self, request, on_progress=None)
        # The person cancels while the provider is still busy with this segment (for the other segment
        # the job is already cancelled and a second cancel is refused, which is no concern here).
        with contextlib.suppress(IllegalTransition):
            services.video_job_cancel(job=VideoJob.objects.get(id=job_id))
        return task

    monkeypatch.setattr(LocalProvider, "submit", submit_then_cancelled)
    job = services.video_job_create(
        owner=user, prompt="A fox wakes. It runs.", duration_seconds=8, segment_seconds=4,
        provider="local", size="320x240", use_cache=False,
    )  # fmt: skip
    job_id = job.id
    caplog.set_level(logging.INFO)

    services.video_job_render(job=job)
    assert inprocess_runner().wait_idle(timeout=60)

    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert set(job.segments.values_list("status", flat=True)) == {SegmentStatus.CANCELLED}
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert loud == [], [f"{r.levelname} {r.name}: {r.getMessage()}" for r in loud]
    assert any("cancel" in r.getMessage().lower() for r in caplog.records if r.name.startswith("rendering"))
