"""Django's Redis cache, with its connection pools and clients shared by the whole process.

Django keeps one cache object per thread (and per async context), and each RedisCache object opens its
own connection pool. Under daphne every request runs in a fresh thread, so every request that touched the
cache built a new pool, opened a new TCP connection to Redis and (redis-py, on each new connection) read
its own package metadata from disk: several milliseconds of CPU per request, for a round trip that costs
0.1 ms. Pools are safe to share between threads, so here one pool per server URL and options serves the
whole process (a fork gets fresh connections: redis-py's pool checks the pid).

Django also builds a new `redis.Redis` object for every get or set, which fills its table of ~200
response callbacks (0.16 ms); one client per pool is kept and reused instead.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_lock = threading.Lock()
_pools: dict[tuple[str, str], Any] = {}
_clients: dict[int, Any] = {}


class SharedPoolRedisCacheClient(RedisCacheClient):
    def _get_connection_pool(self, write: bool) -> Any:
        index = self._get_connection_pool_index(write)
        key = (self._servers[index], repr(sorted(self._pool_options.items(), key=lambda item: item[0])))
        pool = _pools.get(key)
        if pool is None:
            with _lock:
                pool = _pools.get(key)
                if pool is None:
                    pool = _pools[key] = self._pool_class.from_url(self._servers[index], **self._pool_options)
        return pool

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        client = _clients.get(id(pool))  # pools live as long as the process, so ids stay theirs
        if client is None:
            with _lock:
                client = _clients.get(id(pool))
                if client is None:
                    client = _clients[id(pool)] = self._client(connection_pool=pool)
        return client


class SharedPoolRedisCache(RedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedPoolRedisCacheClient  # RedisCache sets its own in __init__
