"""The create throttle's sliding window, shared by the local-cache module (test_create_throttle.py) and
the Redis one (test_create_throttle_redis.py): the counting runs on a Redis pipeline there."""

from __future__ import annotations

import itertools
import time
from types import SimpleNamespace

import pytest

from jobs.api import throttles
from jobs.api.throttles import VideoJobCreateThrottle, _seconds_until_room
from tests.support.race import race


def person() -> SimpleNamespace:
    """A request of a user the cache has never seen (a fresh id per test, so runs never share counts)."""
    return SimpleNamespace(user=SimpleNamespace(pk=f"throttle-test-{next(_ids)}", is_authenticated=True))


_ids = itertools.count(int(time.time() * 1000))


class ThrottleChecks:
    @pytest.fixture(autouse=True)
    def _rate(self, settings):
        rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "video_job_create": "2/minute"}
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}

    @pytest.fixture
    def clock(self, monkeypatch):
        now = SimpleNamespace(t=6_000_000.0)  # the start of a fixed window (a multiple of 60)
        monkeypatch.setattr(throttles.time, "time", lambda: now.t)
        return now

    def allowed(self, request) -> bool:
        return VideoJobCreateThrottle().allow_request(request, None)

    def test_the_previous_window_fades_as_the_window_slides(self, clock):
        request = person()
        assert [self.allowed(request) for _ in range(3)] == [True, True, False]
        clock.t += 60 + 15  # a quarter into the next window: 2 x 0.75 + 0 = 1.5, room for none more
        assert not self.allowed(request)
        clock.t += 15  # halfway: 2 x 0.5 = 1, room for one
        assert self.allowed(request)
        assert not self.allowed(request)
        clock.t += 60 * 2  # both windows gone by
        assert [self.allowed(request) for _ in range(3)] == [True, True, False]

    def test_refused_requests_do_not_use_up_the_budget(self, clock):
        request = person()
        assert [self.allowed(request) for _ in range(2)] == [True, True]
        throttle = VideoJobCreateThrottle()
        for _ in range(5):
            assert not throttle.allow_request(request, None)
        clock.t += throttle.wait()  # exactly when Retry-After says
        assert self.allowed(request)

    def test_each_person_has_a_budget_of_their_own(self, clock):
        first, second = person(), person()
        assert [self.allowed(first) for _ in range(3)] == [True, True, False]
        assert self.allowed(second)

    def test_concurrent_creates_cannot_slip_past_the_limit(self, clock):
        request = person()
        results = race([lambda: self.allowed(request) for _ in range(8)])
        assert sorted(results) == [False] * 6 + [True] * 2


def test_retry_after():
    # Two allowed a minute, both used in this window: room once half of the next window has passed
    # (2 x (1 - 0.5) = 1, plus the new one = 2).
    assert _seconds_until_room(2, 0, 2, 0.0, 60) == 90
    # One used now, two in the previous window, a quarter in: room when 2 x (1 - x) + 1 + 1 <= 2, x = 1.
    assert _seconds_until_room(1, 2, 2, 0.25, 60) == 45
    # Never less than a second.
    assert _seconds_until_room(1, 2, 2, 0.999, 60) == 1
