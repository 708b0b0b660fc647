"""A heartbeat that renews a lease (jobs.leases) while a step works: submitting, downloading,
conforming, assembling. It runs in a thread beside the step, so a long ffmpeg run or a slow download
keeps its lease, and a worker that dies stops beating: its work is resumed LEASE_SECONDS later.

The thread only renews. Whether the step still owns its work is decided by the step itself, in its own
thread and transaction (its progress reports and claims carry the run's token), so a heartbeat that
cannot write (a database restart, a test's uncommitted transaction) never aborts good work.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db import connection

log = logging.getLogger(__name__)


@contextlib.contextmanager
def heartbeat(beat: Callable[[], bool], *, what: str) -> Iterator[None]:
    """Call `beat()` every LEASE_SECONDS / 3 until the block ends, or until `beat()` says the lease is
    no longer ours (then there is nothing left to renew)."""
    every = max(0.05, settings.LEASE_SECONDS / 3.0)
    stop = threading.Event()

    def run() -> None:
        try:
            while not stop.wait(every):
                try:
                    if not beat():
                        log.info("heartbeat of %s stopped: the lease is no longer ours", what)
                        return
                except Exception:  # a missed beat is retried at the next one; the lease has slack
                    log.warning("heartbeat of %s failed", what, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run, name=f"heartbeat {what}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every + 5.0)
