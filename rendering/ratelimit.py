"""Provider limits shared by the whole fleet: concurrent renders and create requests per minute.

Settings: PROVIDER_MAX_CONCURRENT ("sora=2") and PROVIDER_CREATES_PER_MINUTE ("sora=50"); a provider
not named is unlimited and costs no Redis call at all.

- Concurrency is a set of leases per provider: a Redis sorted set whose members are the segments
  rendering at the provider (member "segment:generation") scored by their lease deadline. A Lua script
  purges expired leases, counts, and adds the segment only while the count is under the cap, in one
  atomic step on the Redis server (its clock, so workers' clocks never disagree). Acquiring is
  re-entrant for a segment that already holds a slot; every poll step renews the lease, so a worker
  that crashed frees its slot once the lease runs out (PROVIDER_SLOT_LEASE_SECONDS). A slot is
  released as soon as the provider reports the render done, and again (idempotently) whenever the
  segment's task settles, whatever the outcome.
- Creates per minute are a sliding window: a sorted set of the creates of the last 60 s. When it is
  full, the script answers how long until the oldest one leaves the window.

A segment that cannot go yet is not refused and does not spin: rendering.pipeline returns
PollLater(wait) before calling the provider, and the task re-schedules itself with that countdown,
freeing its worker slot. Without REDIS_URL (the embedded default, one process) an in-process
implementation with the same interface and the same rules is used.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import deque
from typing import Protocol

from django.conf import settings

WINDOW_SECONDS = 60.0
KEY_PREFIX = "sora-controller:limits"

# KEYS[1]: the provider's lease set. ARGV: member, cap, lease (ms), force ("1": add even when full --
# a render already running at the provider is in flight whether or not we count it).
ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[4] == '1' or redis.call('ZSCORE', KEYS[1], ARGV[1])
    or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], lease * 2)
  return 1
end
return 0
"""

# KEYS[1]: the provider's window of creates. ARGV: limit, window (ms), a unique token.
# Returns 0 when the create may go now (and counts it), else the milliseconds to wait.
CREATE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""


class Backend(Protocol):
    def acquire(self, provider: str, member: str, cap: int, lease: float, *, force: bool = False) -> bool: ...

    def release(self, provider: str, member: str) -> None: ...

    def take_create(self, provider: str, per_minute: int) -> float: ...

    def holders(self, provider: str) -> list[str]: ...


class RedisBackend:
    """The fleet-wide implementation: every worker process on every machine shares these keys."""

    def __init__(self, url: str, *, prefix: str = KEY_PREFIX) -> None:
        import redis

        # Bounded: a Redis that does not answer fails the step (which the reaper resumes), never hangs it.
        self.client = redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=5.0)
        self.prefix = prefix
        self._acquire = self.client.register_script(ACQUIRE_LUA)
        self._create = self.client.register_script(CREATE_LUA)

    def _key(self, provider: str, what: str) -> str:
        return f"{self.prefix}:{provider}:{what}"

    def acquire(self, provider: str, member: str, cap: int, lease: float, *, force: bool = False) -> bool:
        lease_ms = max(1, int(lease * 1000))
        args = [member, cap, lease_ms, "1" if force else "0"]
        return bool(self._acquire(keys=[self._key(provider, "in-flight")], args=args))

    def release(self, provider: str, member: str) -> None:
        self.client.zrem(self._key(provider, "in-flight"), member)

    def take_create(self, provider: str, per_minute: int) -> float:
        token = f"{time.time():.6f}-{uuid.uuid4().hex[:8]}"
        args = [per_minute, int(WINDOW_SECONDS * 1000), token]
        wait_ms = int(self._create(keys=[self._key(provider, "creates")], args=args))
        return wait_ms / 1000.0

    def holders(self, provider: str) -> list[str]:
        key = self._key(provider, "in-flight")
        now_ms = int(time.time() * 1000)
        return [m.decode() for m in self.client.zrangebyscore(key, now_ms, "+inf")]


class InProcessBackend:
    """The embedded default's implementation (one process): the same rules under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[str, dict[str, float]] = {}
        self._creates: dict[str, deque[float]] = {}

    def acquire(self, provider: str, member: str, cap: int, lease: float, *, force: bool = False) -> bool:
        now = time.monotonic()
        with self._lock:
            leases = self._leases.setdefault(provider, {})
            for held, deadline in list(leases.items()):
                if deadline <= now:
                    del leases[held]
            if force or member in leases or len(leases) < cap:
                leases[member] = now + lease
                return True
            return False

    def release(self, provider: str, member: str) -> None:
        with self._lock:
            self._leases.get(provider, {}).pop(member, None)

    def take_create(self, provider: str, per_minute: int) -> float:
        now = time.monotonic()
        with self._lock:
            window = self._creates.setdefault(provider, deque())
            while window and window[0] <= now - WINDOW_SECONDS:
                window.popleft()
            if len(window) < per_minute:
                window.append(now)
                return 0.0
            return max(0.001, window[0] + WINDOW_SECONDS - now)

    def holders(self, provider: str) -> list[str]:
        now = time.monotonic()
        with self._lock:
            return [m for m, deadline in self._leases.get(provider, {}).items() if deadline > now]


_backends: dict[str, Backend] = {}
_backends_lock = threading.Lock()


def backend() -> Backend:
    """Redis when REDIS_URL is set (the fleet), else this process's own (the embedded default)."""
    url = settings.REDIS_URL or ""
    with _backends_lock:
        if url not in _backends:
            _backends[url] = RedisBackend(url) if url else InProcessBackend()
        return _backends[url]


def member(segment_id: int, generation: int) -> str:
    # The run is part of the name: a late task of an abandoned run must not release the slot of the
    # same segment's new run.
    return f"{segment_id}:{generation}"


def _max_concurrent(provider: str) -> int:
    return int(settings.PROVIDER_MAX_CONCURRENT.get(provider, 0) or 0)


def _creates_per_minute(provider: str) -> int:
    return int(settings.PROVIDER_CREATES_PER_MINUTE.get(provider, 0) or 0)


def before_create(provider: str, holder: str) -> float:
    """Take what a create needs (a concurrency slot, then a create in this minute's window).

    Returns 0.0 when the create may go now, else the seconds to wait before asking again. A slot taken
    here is kept while waiting for the window (asking again is re-entrant).
    """
    cap = _max_concurrent(provider)
    if cap and not backend().acquire(provider, holder, cap, settings.PROVIDER_SLOT_LEASE_SECONDS):
        # Slots free when renders finish, which nobody can predict: ask again soon, with jitter so the
        # waiters of a burst do not all ask at the same instant.
        return settings.PROVIDER_SLOT_WAIT_SECONDS * random.uniform(0.75, 1.25)
    per_minute = _creates_per_minute(provider)
    if per_minute:
        wait = backend().take_create(provider, per_minute)
        if wait > 0:
            return wait + random.uniform(0.0, 0.1)
    return 0.0


def renew(provider: str, holder: str) -> None:
    """A poll step of a render already running at the provider: keep (or take back) its slot."""
    cap = _max_concurrent(provider)
    if cap:
        backend().acquire(provider, holder, cap, settings.PROVIDER_SLOT_LEASE_SECONDS, force=True)


def release(provider: str, holder: str) -> None:
    if _max_concurrent(provider):
        backend().release(provider, holder)


def release_everywhere(holder: str) -> None:
    """The segment's task settled: give back whatever slot it holds (idempotent)."""
    for provider in settings.PROVIDER_MAX_CONCURRENT:
        release(provider, holder)
