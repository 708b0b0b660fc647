"""A worker killed with SIGKILL while its segments wait on the provider: after a restart the job
completes and every segment was created exactly once at the provider."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs import services
from jobs.models import JobStatus, SegmentStatus
from tests.support.worker import wait_for

from .conftest import start_worker

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_sigkill_mid_poll_then_restart_creates_each_segment_once(
    django_db_blocker, fleet_dirs, fleet_api, redis_clean, fleet_settings, user
):
    fleet_api.config.latency = 5.0
    first = start_worker("crashy", fleet_dirs, fleet_api)
    try:
        prompts = ["The tide goes out.", "Crabs cross the sand.", "The tide comes back."]
        job = services.video_job_create(
            owner=user,
            prompt=" ".join(prompts),
            duration_seconds=12,
            segment_seconds=4,
            strategy="manual",
            manual_prompts=prompts,
            provider="sora",
            size="1280x720",
        )
        job = services.video_job_render(job=job)
        wait_for(
            lambda: job.segments.exclude(provider_task_id="").count() == 3, 30, what="three provider tasks"
        )
        first.kill()
    finally:
        first.stop()
    assert fleet_api.stats.creates == 3

    second = start_worker("survivor", fleet_dirs, fleet_api)
    try:

        def done():
            job.refresh_from_db()
            return job.status in {JobStatus.COMPLETED, JobStatus.FAILED}

        wait_for(done, 90, what="the job to finish after the restart")
    finally:
        second.stop()
    assert job.status == JobStatus.COMPLETED, job.error
    assert fleet_api.stats.creates == 3 and set(fleet_api.stats.creates_by_prompt.values()) == {1}
    assert set(job.segments.values_list("status", flat=True)) == {SegmentStatus.COMPLETED}
    assert all(Path(s.clip.path).exists() for s in job.segments.all())
    assert list(job.segments.values_list("attempts", flat=True)) == [1, 1, 1]
