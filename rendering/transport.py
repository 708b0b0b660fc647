"""How a task reaches a worker: Celery in production, an in-process worker pool on the embedded default.
Both run the same task functions, looked up by name, so this module imports no task and the task
modules can use it freely (no import loop between dispatch, tasks and the reaper)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import close_old_connections, connections

log = logging.getLogger(__name__)

# Task names (rendering.tasks registers them under these).
RENDER_SEGMENT = "rendering.render_segment"
ASSEMBLE_JOB = "rendering.assemble_job"

Sweep = Callable[[], Any]


def enqueue(task_name: str, *args: Any) -> None:
    task = current_app.tasks[task_name]
    if settings.TASK_RUNNER == "celery":
        task.apply_async(args=args)
    else:
        inprocess_runner().submit(task, args)


class InProcessRunner:
    """A worker pool inside this process. Task functions run through Celery's own `apply()`, so the
    embedded default exercises the same task code that the worker fleet runs."""

    def __init__(self, workers: int, *, sweep: Sweep | None = None, sweep_every: float | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="render-worker")
        self._idle = threading.Condition()
        self._outstanding = 0
        self._stop = threading.Event()
        if sweep is not None and sweep_every:
            # No celery beat here: the runner itself re-queues work a previous process left stalled
            # (a `make serve` that was stopped mid-render), with the same reaper the fleet uses.
            threading.Thread(
                target=self._sweep, args=(sweep, sweep_every), name="render-reaper", daemon=True
            ).start()

    def _sweep(self, sweep: Sweep, every: float) -> None:
        while not self._stop.wait(every):
            try:
                sweep()
            except Exception:  # a failed sweep is retried at the next one
                log.exception("embedded reaper sweep failed")
            finally:
                connections.close_all()

    def submit(self, task: Any, args: tuple) -> None:
        with self._idle:
            self._outstanding += 1
        self._pool.submit(self._call, task, args)

    def _call(self, task: Any, args: tuple) -> None:
        close_old_connections()
        try:
            task.apply(args=args)
        except Exception:  # apply() stores failures; log anything that escaped it
            log.exception("in-process task %s%r failed", task.name, args)
        finally:
            connections.close_all()
            with self._idle:
                self._outstanding -= 1
                self._idle.notify_all()

    def stop_sweeping(self) -> None:
        self._stop.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no task is queued or running, including tasks that tasks enqueue."""
        with self._idle:
            return self._idle.wait_for(lambda: self._outstanding == 0, timeout=timeout)


_runner: InProcessRunner | None = None
_runner_lock = threading.Lock()
_sweep_fn: Sweep | None = None


def set_sweeper(sweep: Sweep) -> None:
    """rendering.apps hands over the reaper, so the embedded runner can sweep without importing it."""
    global _sweep_fn
    _sweep_fn = sweep


def inprocess_runner() -> InProcessRunner:
    global _runner
    with _runner_lock:
        if _runner is None:
            every = settings.REAPER_INTERVAL_SECONDS if settings.EMBEDDED_REAPER else None
            _runner = InProcessRunner(settings.INPROCESS_WORKERS, sweep=_sweep_fn, sweep_every=every)
        return _runner
