"""Fleet-wide provider limits on two real worker processes sharing Redis: with a limit of 2
concurrent sora renders, the fake Videos API never sees a third, and every segment is still created
exactly once."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings

from jobs import services
from jobs.models import JobStatus
from rendering.ratelimit import KEY_PREFIX
from tests.support.worker import wait_for

from .conftest import spawn_worker

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

LIMITS = {"PROVIDER_MAX_CONCURRENT": "sora=2", "PROVIDER_SLOT_WAIT_SECONDS": "0.3"}


@pytest.fixture(scope="module")
def two_limited_workers(django_db_setup, django_db_blocker, fleet_dirs, fleet_api, redis_clean):
    workers = [
        spawn_worker(name, fleet_dirs, fleet_api, extra_env=LIMITS, concurrency=2)
        for name in ("limited-a", "limited-b")
    ]
    try:
        with django_db_blocker.unblock():
            for worker in workers:
                worker.wait_ready()
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def test_two_workers_never_run_a_third_render_at_once(two_limited_workers, fleet_settings, fleet_api, user):
    fleet_settings.PROVIDER_MAX_CONCURRENT = {"sora": 2}
    fleet_api.config.latency = 2.0
    fleet_api.config.max_concurrent = 0  # the fake would accept more: only our limit holds it to 2
    jobs = []
    for n in range(2):
        prompts = [f"Job {n}: the tide goes out.", f"Job {n}: crabs cross.", f"Job {n}: the tide returns."]
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
        jobs.append(services.video_job_render(job=job))

    def finished() -> bool:
        for job in jobs:
            job.refresh_from_db()
        return all(job.status in {JobStatus.COMPLETED, JobStatus.FAILED} for job in jobs)

    wait_for(finished, 90, what="both jobs to finish")
    assert [job.status for job in jobs] == [JobStatus.COMPLETED] * 2, [job.error for job in jobs]
    stats = fleet_api.stats
    assert stats.creates == 6 and set(stats.creates_by_prompt.values()) == {1}
    assert stats.max_in_flight == 2 and stats.rejected_429 == 0
    # Every slot was given back.
    client = redis.Redis.from_url(settings.REDIS_URL)
    assert client.zcard(f"{KEY_PREFIX}:sora:in-flight") == 0
