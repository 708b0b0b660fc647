"""Per-user throttle on job creation (each job may start paid renders)."""

from __future__ import annotations

import logging

from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle

log = logging.getLogger(__name__)


class VideoJobCreateThrottle(UserRateThrottle):
    """Rate from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["video_job_create"] (env API_CREATE_THROTTLE)."""

    scope = "video_job_create"

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except (RedisConnectionError, RedisTimeoutError):
            # The cache (Redis) is restarting: let the request through unthrottled rather than fail it.
            # The budget and per-job caps still bound what it can spend.
            log.warning("create throttle skipped: the cache is unreachable")
            return True

    def get_rate(self) -> str | None:
        # SimpleRateThrottle copies the rates once, at class definition; read them per request instead
        # so a changed setting (tests, a reloaded config) takes effect.
        rates = api_settings.DEFAULT_THROTTLE_RATES
        if self.scope not in rates:
            raise ImproperlyConfigured(f"set REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'][{self.scope!r}]")
        return rates[self.scope]
