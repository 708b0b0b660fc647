"""Concurrent calls released at the same moment, each on its own database connection: how the
PostgreSQL-backed tests provoke races that must have exactly one winner."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run each call in its own thread, all released together; return each result or the exception it
    raised, in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def runner(slot: int) -> None:
        barrier.wait()
        try:
            results[slot] = calls[slot]()
        except Exception as exc:  # the caller asserts on it
            results[slot] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
