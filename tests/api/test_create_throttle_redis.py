"""The create throttle counting on a real Redis (a pipeline of INCR, EXPIRE and GET): `make
test-postgres` runs it with REDIS_URL set."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from .throttle_checks import ThrottleChecks

pytestmark = pytest.mark.redis


class TestCreateThrottleOnRedis(ThrottleChecks):
    @pytest.fixture(autouse=True)
    def _on_redis(self):
        assert isinstance(caches["default"], RedisCache), "REDIS_URL must be set for the Redis tests"
