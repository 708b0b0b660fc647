"""Per-user throttle on job creation (each job may start paid renders).

At most N creates per user in any window of the rate's length (API_CREATE_THROTTLE, e.g. "60/hour"),
counted as a sliding window over two fixed ones: this window's count plus the previous window's,
weighted by the share of it the sliding window still covers. Each request is one atomic increment (one
Redis command, or the local cache's lock on the embedded default), so concurrent creates cannot slip
past the limit together, and the work is the same whatever the rate. (DRF's own throttle reads and
rewrites a list of every request's time: racy, and its cost grew with the rate.)
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

log = logging.getLogger(__name__)


class VideoJobCreateThrottle(BaseThrottle):
    """Rate from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["video_job_create"] (env API_CREATE_THROTTLE)."""

    scope = "video_job_create"

    def __init__(self) -> None:
        self.retry_after: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        limit, length = self.rate()
        if limit is None or not request.user.is_authenticated:
            return True
        now = time.time()
        window = int(now // length)
        elapsed = (now % length) / length  # how far into this fixed window we are, 0..1
        key = f"throttle:{self.scope}:{request.user.pk}"
        try:
            count, previous = _count(f"{key}:{window}", f"{key}:{window - 1}", expire=2 * length)
        except (RedisConnectionError, RedisTimeoutError):
            # The cache (Redis) is restarting: let the request through unthrottled rather than fail it.
            # The budget and per-job caps still bound what it can spend.
            log.warning("create throttle skipped: the cache is unreachable")
            return True
        if previous * (1 - elapsed) + count <= limit:
            return True
        _uncount(f"{key}:{window}")  # refused requests do not use up the budget
        self.retry_after = _seconds_until_room(count - 1, previous, limit, elapsed, length)
        return False

    def wait(self) -> float | None:
        return self.retry_after

    def rate(self) -> tuple[int | None, int]:
        # Read per request, not once at class definition as DRF does, so a changed setting (tests, a
        # reloaded config) takes effect.
        rates = api_settings.DEFAULT_THROTTLE_RATES
        if self.scope not in rates:
            raise ImproperlyConfigured(f"set REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'][{self.scope!r}]")
        limit, length = SimpleRateThrottle.parse_rate(None, rates[self.scope])
        return limit, length or 1


# Count this request in KEYS[1] (renewing its expiry), and read the previous window's KEYS[2], in one
# command: a pipeline would do too, but redis-py copies its whole table of response callbacks into each
# new pipeline, which cost more CPU than the round trip.
_COUNT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return {count, tonumber(redis.call('GET', KEYS[2])) or 0}
"""
_script: Any = None  # redis Script: its SHA, loaded into whichever server a call meets (NOSCRIPT)


def _count(current: str, previous: str, *, expire: int) -> tuple[int, int]:
    """Add this request to `current`; return (its new count, the count in `previous`)."""
    cache = caches["default"]
    if isinstance(cache, RedisCache):
        global _script
        client = cache._cache.get_client(write=True)
        if _script is None:
            _script = client.register_script(_COUNT_SCRIPT)
        keys = [cache.make_and_validate_key(current), cache.make_and_validate_key(previous)]
        # Always on this cache's client (the cache may have been configured anew since).
        count, before = _script(keys=keys, args=[expire], client=client)
        return int(count), int(before)
    cache.add(current, 0, timeout=expire)
    return cache.incr(current), int(cache.get(previous) or 0)


def _uncount(current: str) -> None:
    with contextlib.suppress(ValueError):  # expired in between: nothing to take back
        caches["default"].decr(current)


def _seconds_until_room(count: int, previous: int, limit: int, elapsed: float, length: int) -> float:
    """When one more request fits: the previous window's weight fades as the sliding window moves on,
    and this window's requests count in full until the window after next."""
    if count + 1 <= limit and previous:
        # previous * (1 - x) + count + 1 <= limit once x >= 1 - (limit - count - 1) / previous
        fraction = 1 - (limit - count - 1) / previous
        return max(1.0, math.ceil((fraction - elapsed) * length))
    # This window alone is full: room comes as it slides out, beginning where the next window starts.
    next_start = (1 - elapsed) * length
    if count + 1 > limit and count:
        fraction = 1 - (limit - 1) / count
        return max(1.0, math.ceil(next_start + fraction * length))
    return max(1.0, math.ceil(next_start))
