"""The fleet-wide limiter's Lua scripts on a real Redis: atomic cap, re-entrancy, leases that expire
(a crashed worker's slot frees itself), idempotent release, and the creates-per-minute window."""

from __future__ import annotations

import time
import uuid

import pytest
import redis
from django.conf import settings

from rendering.ratelimit import RedisBackend

pytestmark = pytest.mark.redis


@pytest.fixture
def limits():
    if not settings.REDIS_URL:
        pytest.fail("REDIS_URL must be set for the Redis tests (make test-postgres sets it)")
    prefix = f"test-limits:{uuid.uuid4().hex[:8]}"
    backend = RedisBackend(settings.REDIS_URL, prefix=prefix)
    yield backend
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def test_slots(limits):
    assert limits.acquire("sora", "1:1", 2, 60) and limits.acquire("sora", "2:1", 2, 60)
    assert not limits.acquire("sora", "3:1", 2, 60)
    assert limits.acquire("sora", "1:1", 2, 60)  # re-entrant
    limits.release("sora", "2:1")
    limits.release("sora", "2:1")  # idempotent
    assert limits.acquire("sora", "3:1", 2, 60)
    assert sorted(limits.holders("sora")) == ["1:1", "3:1"]
    assert limits.acquire("sora", "4:1", 2, 60, force=True)
    assert len(limits.holders("sora")) == 3


def test_a_lease_expires(limits):
    assert limits.acquire("sora", "a", 1, 0.1)
    assert not limits.acquire("sora", "b", 1, 0.1)
    time.sleep(0.15)
    assert limits.acquire("sora", "b", 1, 0.1)
    assert limits.holders("sora") == ["b"]


def test_many_racing_acquirers_get_exactly_the_cap(limits):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda i: limits.acquire("sora", f"{i}:1", 3, 60), range(40)))
    assert sum(won) == 3


def test_the_creates_window(limits):
    assert limits.take_create("sora", 2) == 0 and limits.take_create("sora", 2) == 0
    assert 59 < limits.take_create("sora", 2) <= 60
    assert limits.take_create("other", 2) == 0
