"""Fixtures for tests that run the production topology: PostgreSQL, Redis and real Celery workers."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings

from rendering.fake_api import FakeConfig, FakeVideoServer
from tests.support.worker import Worker, worker_env

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
