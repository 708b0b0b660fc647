"""Helpers for tests that drive whole jobs on the embedded default's in-process runner."""

from __future__ import annotations

from jobs import services
from jobs.models import VideoJob
from rendering.transport import inprocess_runner


def render_and_wait(job: VideoJob, timeout: float = 120) -> VideoJob:
    """Start rendering `job`, wait until the in-process runner is idle, and return the job as stored.

    Needs committed data (django_db(transaction=True)), since the work runs on other threads."""
    job = services.video_job_render(job=job)
    assert inprocess_runner().wait_idle(timeout=timeout), f"job {job.id} did not settle in {timeout} s"
    job.refresh_from_db()
    return job
