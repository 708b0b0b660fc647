"""Liveness and readiness for load balancers and orchestrators.

/healthz: the process answers (no dependencies touched, so a database outage never restarts web nodes).
/readyz: the database, Redis (when configured) and the media storage are reachable; 503 otherwise,
with what failed, so traffic goes elsewhere until they are.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _redis() -> None:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def _storage() -> None:
    # A HEAD/stat of a key that need not exist: proves the store answers without writing anything.
    default_storage.exists("readyz-probe")


def _check(name: str, probe: Callable[[], None]) -> tuple[str, dict]:
    started = time.monotonic()
    try:
        probe()
    except Exception as exc:  # report every kind of failure; readiness must never raise
        return name, {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return name, {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    probes: list[tuple[str, Callable[[], None]]] = [("database", _database), ("storage", _storage)]
    if settings.REDIS_URL:
        probes.append(("redis", _redis))
    checks = dict(_check(name, probe) for name, probe in probes)
    ready = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )
