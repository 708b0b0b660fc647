"""The create throttle on the cache of the run (the local memory cache on the embedded default)."""

from __future__ import annotations

from .throttle_checks import ThrottleChecks, test_retry_after  # noqa: F401


class TestCreateThrottle(ThrottleChecks):
    pass
