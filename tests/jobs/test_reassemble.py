from __future__ import annotations

import pytest

from jobs import services
from jobs.errors import IllegalTransition
from jobs.models import JobStatus, VideoJob
from tests.support.jobs import render_and_wait

pytestmark = pytest.mark.django_db(transaction=True)


def test_reassemble_joins_the_clips_again_without_rendering(user, monkeypatch):
    from rendering.providers.local import LocalProvider
    from rendering.transport import inprocess_runner

    job = services.video_job_create(
        owner=user,
        prompt="One. Two.",
        duration_seconds=2,
        segment_seconds=1,
        size="160x120",
        strategy="sentences",
    )
    job = render_and_wait(job, timeout=60)
    first_video = job.output_video.name
    calls = []
    monkeypatch.setattr(LocalProvider, "submit", lambda *a, **k: calls.append(a))
    job = services.video_job_reassemble(job=job)
    assert job.status == JobStatus.QUEUED
    assert inprocess_runner().wait_idle(timeout=60)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED and job.output_video.name != first_video and calls == []


def test_reassemble_refuses_unfinished_jobs(user):
    job = services.video_job_create(owner=user, prompt="One.", duration_seconds=2)
    with pytest.raises(IllegalTransition, match="only a finished job"):
        services.video_job_reassemble(job=job)
    VideoJob.objects.filter(id=job.id).update(status=JobStatus.FAILED)
    job.refresh_from_db()
    with pytest.raises(IllegalTransition, match="not rendered"):
        services.video_job_reassemble(job=job)
