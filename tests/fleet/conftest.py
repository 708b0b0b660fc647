"""Fixtures for tests that run the production topology: PostgreSQL, Redis and real Celery workers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings

from jobs.models import Segment
from rendering.fake_api import FakeConfig, FakeVideoServer
from tests.support.chaos import OWNER, measure, start_submitter, wait_submitter
from tests.support.fleet import RedisServer, fleet_env, free_port, recovery_env, start_render_fleet
from tests.support.worker import Worker, database_url, wait_for, worker_env

FLEET_KEY = "sk-fleet-test"


def fleet_config(**overrides) -> FakeConfig:
    fields = {"latency": 1.2, "poll_after_ms": 200, "api_key": FLEET_KEY, "retry_after": 0.3}
    fields.update(overrides)
    return FakeConfig(**fields)


@pytest.fixture(scope="module")
def fleet_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet")
    (root / "media").mkdir()
    (root / "data").mkdir()
    return root


@pytest.fixture(scope="module")
def fleet_api():
    with FakeVideoServer(fleet_config()) as server:
        yield server


@pytest.fixture(scope="module")
def redis_clean():
    if not settings.REDIS_URL:
        pytest.fail("REDIS_URL must be set for the fleet tests (make test-postgres sets it)")
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()  # no stale tasks from an earlier run
    yield client
    client.flushdb()


def spawn_worker(
    name: str, fleet_dirs, fleet_api, *, extra_env: dict[str, str] | None = None, **kwargs
) -> Worker:
    """Start a worker process without waiting for it (start several, then wait for each)."""
    env = worker_env(
        fleet_dirs / "media",
        fleet_dirs / "data",
        SORA_BASE_URL=fleet_api.url,
        SORA_API_KEY=FLEET_KEY,
        **(extra_env or {}),
    )
    return Worker(name, env, fleet_dirs / f"{name}.log", **kwargs)


def start_worker(name: str, fleet_dirs, fleet_api, **kwargs) -> Worker:
    worker = spawn_worker(name, fleet_dirs, fleet_api, **kwargs)
    try:
        worker.wait_ready()
    except Exception:
        worker.stop()
        raise
    return worker


@pytest.fixture
def fleet_settings(settings, fleet_dirs, fleet_api):
    """Point this process at the same media, provider and task transport as the workers."""
    settings.TASK_RUNNER = "celery"
    settings.MEDIA_ROOT = fleet_dirs / "media"
    settings.SORA_BASE_URL = fleet_api.url
    settings.SORA_API_KEY = FLEET_KEY
    fleet_api.reset(fleet_config())
    return settings


@contextlib.contextmanager
def rendering_fleet(
    tmp_path: Path, fleet_api, *, jobs: int, segments: int, seed: int, latency: float = 5.0, **options: Any
) -> Iterator[tuple[Any, Any]]:
    """A fleet of its own (a Redis without persistence, a submit/poll worker, an assembler, beat, with the
    short recovery settings) rendering `jobs` jobs of `segments` sora segments against the fake API, once
    every segment has been created at the provider. Yields (fleet, redis_server); stops the fleet after.
    Clips go to this test's media root, where the test process looks for them."""
    fleet_api.reset(fleet_config(latency=latency))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    redis_server = RedisServer(free_port(), tmp_path)
    env = fleet_env(
        database_url=database_url(),
        redis_url=redis_server.url,
        media_root=Path(settings.MEDIA_ROOT),
        data_dir=data_dir,
        extra={"SORA_BASE_URL": fleet_api.url, "SORA_API_KEY": FLEET_KEY, **recovery_env()},
    )
    redis_server.start()
    fleet = start_render_fleet(redis_server=redis_server, env=env, directory=tmp_path, workers=1, **options)
    try:
        wait_submitter(
            start_submitter(env, jobs=jobs, min_segments=segments, max_segments=segments, seed=seed), 60
        )
        created = Segment.objects.filter(job__owner__username=OWNER).exclude(provider_task_id="")
        wait_for(
            lambda: created.count() == jobs * segments, 30, what="every segment to be created at the provider"
        )
        yield fleet, redis_server
    finally:
        fleet.stop()


def assert_nothing_lost(fleet_api, *, jobs: int, segments: int) -> None:
    """Every job completed, every segment created exactly once at the provider, no clip lost."""
    outcome = measure(fleet_api.stats.creates_by_prompt)
    assert outcome.jobs_completed == jobs, outcome.unfinished
    assert outcome.segments == outcome.creates == jobs * segments
    assert outcome.double_created == outcome.never_created == 0
    assert outcome.clips_lost == 0
