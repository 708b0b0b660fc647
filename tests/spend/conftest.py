"""Helpers for the spend-control tests: small sora jobs against the fake Videos API, run on the
embedded default's in-process worker."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from jobs import services
from jobs.models import JobStatus, VideoJob
from rendering.transport import inprocess_runner

# `manage.py render` arguments for one 4 s sora clip (what the budget and cache CLI tests render).
ONE_SORA_CLIP = (
    "A lighthouse at dusk.",
    "--provider",
    "sora",
    "--duration",
    "4",
    "--segment-seconds",
    "4",
    "--size",
    "1280x720",
)

SHOTS = ("A lighthouse at dusk.", "Waves break on the rocks.", "The lamp turns on.")


def sora_job(owner, *, prompts=SHOTS[:1], **overrides) -> VideoJob:
    """A sora job of 4 s segments (rendered exactly, billed $0.40 each on sora-2)."""
    fields = {
        "prompt": " ".join(prompts),
        "duration_seconds": 4 * len(prompts),
        "segment_seconds": 4,
        "strategy": "manual",
        "manual_prompts": list(prompts),
        "provider": "sora",
        "size": "1280x720",
    }
    fields.update(overrides)
    return services.video_job_create(owner=owner, **fields)


def finish(job: VideoJob, timeout: float = 60) -> VideoJob:
    assert inprocess_runner().wait_idle(timeout=timeout), "the in-process worker did not go idle"
    job.refresh_from_db()
    return job


def render(job: VideoJob, timeout: float = 60) -> VideoJob:
    job = finish(services.video_job_render(job=job), timeout)
    assert job.status == JobStatus.COMPLETED, job.error
    return job


def png(colour=(200, 30, 30), size=(64, 64)) -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    buffer.seek(0)
    return buffer


@pytest.fixture
def no_caps(settings):
    settings.BUDGET_JOB_MAX_USD = None
    settings.BUDGET_USER_DAILY_USD = None
    settings.BUDGET_USER_MONTHLY_USD = None
    return settings


@pytest.fixture(autouse=True)
def _prompt_first_poll(monkeypatch):
    # The fake API finishes a clip in 0.3 s, but the pipeline waits 1 s before its first poll when
    # the provider gives no poll hint on create: poll sooner here to keep these tests quick.
    from rendering import poll_schedule

    monkeypatch.setattr(poll_schedule, "POLL_MIN_SECONDS", 0.1)


@pytest.fixture(autouse=True)
def _fresh_limits():
    # The in-process limiter lives for the whole process: start and end every test with no slots held.
    from rendering import ratelimit

    ratelimit._backends.clear()
    yield
    ratelimit._backends.clear()
