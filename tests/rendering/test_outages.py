"""Our own Redis or database going away under a worker or a request: nothing is failed or lost for it.
The outages here are real: the client connects to a port where nothing listens."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import caches
from django.utils import timezone

from jobs import services
from jobs.models import JobStatus, Segment, SegmentStatus
from rendering import reaper, tasks
from rendering.transport import inprocess_runner
from tests.factories import VideoJobFactory

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


@pytest.mark.django_db(transaction=True)
def test_a_worker_that_loses_redis_stops_without_failing_the_segment_and_is_resumed(user, settings):
    settings.PROVIDER_MAX_CONCURRENT = {"local": 1}  # every create takes a fleet-wide slot in Redis
    settings.REDIS_URL = UNREACHABLE_REDIS
    job = VideoJobFactory(owner=user, shots=["A lighthouse at dusk."])
    with_queued = services.video_job_render(job=job)
    assert inprocess_runner().wait_idle(timeout=60)
    segment = with_queued.segments.get()
    # The run was sent on the in-process runner and met the dead Redis: interrupted, not failed.
    segment.refresh_from_db()
    assert segment.status == SegmentStatus.RENDERING and segment.error == ""
    assert segment.lease_token and segment.lease_expires_at is not None
    generation = with_queued.render_generation
    outcome = tasks.render_segment.apply(args=(str(job.id), segment.id, generation)).get()
    assert outcome == "superseded"  # the interrupted run still holds the lease until it runs out
    job.refresh_from_db()
    assert job.status == JobStatus.RENDERING

    # Redis is back; once the lost run's lease runs out, the reaper resumes the segment and it renders.
    settings.REDIS_URL = ""
    Segment.objects.filter(id=segment.id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert reaper.reap_stale()["segments"] == 1
    assert inprocess_runner().wait_idle(timeout=60)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error
    assert job.segments.get().attempts == 1


@pytest.mark.django_db
def test_the_create_throttle_lets_requests_through_while_the_cache_is_down(user, settings, caplog):
    from rest_framework.test import APIClient

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": UNREACHABLE_REDIS,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    caches._settings = None  # re-read CACHES
    try:
        if hasattr(caches._connections, "default"):
            del caches._connections.default
        client = APIClient()
        client.force_authenticate(user)
        answer = client.post(
            "/api/video-jobs/",
            {"prompt": "A lighthouse at dusk.", "duration_seconds": 4, "render": False},
            format="json",
        )
        assert answer.status_code == 201, answer.content
        assert "the cache is unreachable" in caplog.text
    finally:
        caches._settings = None
        if hasattr(caches._connections, "default"):
            del caches._connections.default
