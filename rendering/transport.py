"""How a task reaches a worker: Celery in production, an in-process worker pool on the embedded default.
Both run the same task functions, looked up by name, so this module imports no task and the task
modules can use it freely (no import loop between dispatch, tasks and the reaper)."""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connections
from kombu.exceptions import OperationalError

log = logging.getLogger(__name__)

# Task names (rendering.tasks registers them under these).
RENDER_SEGMENT = "rendering.render_segment"
ASSEMBLE_JOB = "rendering.assemble_job"
# callbacks.tasks registers these: one attempt of an outgoing webhook delivery, and the sweep that
# re-sends deliveries whose task was lost.
DELIVER_WEBHOOK = "callbacks.deliver"
SWEEP_WEBHOOKS = "callbacks.sweep"

Sweep = Callable[[], Any]


def enqueue(task_name: str, *args: Any, **kwargs: Any) -> None:
    """Send a task to the workers. With the broker unreachable (restarting, say), the send is logged
    and dropped: every piece of work is recorded with a lease (jobs.leases) before it is sent, so the
    reaper sends it again once the lease expires; the request or task that sent it carries on."""
    _send(task_name, args, kwargs, delay=None)


def enqueue_in(delay: float, task_name: str, *args: Any) -> None:
    """`enqueue` after `delay` seconds: a Celery countdown on the fleet, a timer in process."""
    _send(task_name, args, {}, delay=max(0.0, delay))


def _send(task_name: str, args: tuple, kwargs: dict[str, Any], *, delay: float | None) -> None:
    task = current_app.tasks[task_name]
    if settings.TASK_RUNNER != "celery":
        runner = inprocess_runner()
        if delay is None:
            runner.submit(task, args, kwargs)
        else:
            runner.submit_later(task, args, kwargs, delay)
        return
    options: dict[str, Any] = {"args": args}
    if kwargs:
        options["kwargs"] = kwargs
    if delay is not None:
        options["countdown"] = delay
    try:
        task.apply_async(**options)
    except OperationalError as exc:  # recorded first: the reaper (or the sender's sweep) sends it again
        log.warning(
            "could not send %s%r (the reaper will send it again, or its sender's sweep): %s",
            task_name,
            args,
            exc,
        )


def run_later(
    task: Any,
    args: tuple,
    kwargs: dict[str, Any],
    delay: float,
    *,
    wake_if: Callable[[], bool] | None = None,
) -> None:
    """The in-process runner's countdown: run `task` again after `delay` without holding a thread."""
    inprocess_runner().submit_later(task, args, kwargs, delay, wake_if=wake_if)


@dataclass(order=True)
class _Later:
    due: float
    seq: int
    task: Any = field(compare=False)
    args: tuple = field(compare=False)
    kwargs: dict[str, Any] = field(compare=False)
    # Asked every WAKE_CHECK_SECONDS while waiting: True runs the task now (its segment settled meanwhile:
    # cancelled, or advanced by a webhook), so a finished job never waits out a long poll delay.
    wake_if: Callable[[], bool] | None = field(compare=False, default=None)


class InProcessRunner:
    """A worker pool inside this process. Task functions run through Celery's own `apply()`, so the
    embedded default exercises the same task code that the worker fleet runs.

    Waiting on a provider never holds a worker: a task that must poll again later hands itself to
    `submit_later` (a timer, as the fleet uses countdowns) and frees its thread, so two threads keep every
    segment of every job in flight at once."""

    WAKE_CHECK_SECONDS = 0.5

    def __init__(self, workers: int, *, sweep: Sweep | None = None, sweep_every: float | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="render-worker")
        self._idle = threading.Condition()
        self._outstanding = 0
        self._stop = threading.Event()
        self._timers: list[_Later] = []
        self._timer_seq = 0
        self._timer_wake = threading.Condition()
        threading.Thread(target=self._run_timers, name="render-timers", daemon=True).start()
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

    def submit(self, task: Any, args: tuple, kwargs: dict[str, Any] | None = None) -> None:
        with self._idle:
            self._outstanding += 1
        self._pool.submit(self._call, task, args, kwargs or {})

    def submit_later(
        self,
        task: Any,
        args: tuple,
        kwargs: dict[str, Any],
        delay: float,
        *,
        wake_if: Callable[[], bool] | None = None,
    ) -> None:
        """Run `task` after `delay` seconds without holding a thread meanwhile (or sooner, once
        `wake_if()` says its reason to wait is gone). Counted as outstanding until it has run."""
        with self._idle:
            self._outstanding += 1
        with self._timer_wake:
            self._timer_seq += 1
            heapq.heappush(
                self._timers,
                _Later(time.monotonic() + max(0.0, delay), self._timer_seq, task, args, kwargs, wake_if),
            )
            self._timer_wake.notify()

    def _run_timers(self) -> None:
        next_check = time.monotonic() + self.WAKE_CHECK_SECONDS
        while True:
            with self._timer_wake:
                now = time.monotonic()
                wait = next_check - now
                if self._timers:
                    wait = min(wait, self._timers[0].due - now)
                if wait > 0:
                    self._timer_wake.wait(timeout=wait)
                now = time.monotonic()
                due = []
                while self._timers and self._timers[0].due <= now:
                    due.append(heapq.heappop(self._timers))
                waiting = list(self._timers) if now >= next_check else []
            for entry in waiting:  # outside the lock: a wake check may query the database
                if entry.wake_if is not None and self._should_wake(entry):
                    with self._timer_wake:
                        if entry in self._timers:
                            self._timers.remove(entry)
                            heapq.heapify(self._timers)
                            due.append(entry)
            if waiting or now >= next_check:
                next_check = time.monotonic() + self.WAKE_CHECK_SECONDS
                _put_connections_away()  # the wake checks' connection belongs to this thread only
            for entry in due:
                # Already counted as outstanding by submit_later.
                self._pool.submit(self._call, entry.task, entry.args, entry.kwargs)

    @staticmethod
    def _should_wake(entry: _Later) -> bool:
        try:
            return bool(entry.wake_if())  # type: ignore[misc]
        except Exception:  # a failed check only means waiting the full delay
            log.warning("wake check of %s failed", entry.task.name, exc_info=True)
            return False

    def _call(self, task: Any, args: tuple, kwargs: dict[str, Any] | None = None) -> None:
        try:
            task.apply(args=args, kwargs=kwargs or {})
        except Exception:  # apply() stores failures; log anything that escaped it
            log.exception("in-process task %s%r failed", task.name, args)
        finally:
            _put_connections_away()
            with self._idle:
                self._outstanding -= 1
                self._idle.notify_all()

    def stop_sweeping(self) -> None:
        self._stop.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no task is queued or running, including tasks that tasks enqueue."""
        with self._idle:
            return self._idle.wait_for(lambda: self._outstanding == 0, timeout=timeout)


def _put_connections_away() -> None:
    """After a task on a runner thread: keep an idle SQLite connection for the thread's next task, close
    every other one. A poll step runs a handful of queries, and opening an SQLite connection (Django
    registers its functions and runs the init pragmas each time) cost about as much as they do; the
    fleet's workers keep theirs too. A connection of another database, or one left inside a
    transaction, is closed as before: nothing may carry a transaction or a server connection from one
    task to the next."""
    for conn in connections.all(initialized_only=True):
        if conn.vendor == "sqlite" and conn.connection is not None and not conn.in_atomic_block:
            continue
        conn.close()
        if conn.in_atomic_block:
            # Closed mid-transaction, Django keeps the wrapper marked as inside it and refuses every later
            # query on this thread: drop the wrapper, so the next task starts with a new one.
            del connections[conn.alias]


_runner: InProcessRunner | None = None
_runner_lock = threading.Lock()
_sweep_fn: Sweep | None = None
# Other apps' sweeps run beside the reaper's (callbacks re-sends deliveries whose timer a restart lost).
_extra_sweeps: list[Sweep] = []


def set_sweeper(sweep: Sweep) -> None:
    """rendering.apps hands over the reaper, so the embedded runner can sweep without importing it."""
    global _sweep_fn
    _sweep_fn = sweep


def add_sweep(sweep: Sweep) -> None:
    if sweep not in _extra_sweeps:
        _extra_sweeps.append(sweep)


def _sweep_all() -> None:
    for sweep in [s for s in (_sweep_fn, *_extra_sweeps) if s is not None]:
        try:
            sweep()
        except Exception:  # one failed sweep must not stop the others; each runs again next time
            log.exception("embedded sweep %s failed", getattr(sweep, "__name__", sweep))


def inprocess_runner() -> InProcessRunner:
    global _runner
    with _runner_lock:
        if _runner is None:
            every = settings.REAPER_INTERVAL_SECONDS if settings.EMBEDDED_REAPER else None
            _runner = InProcessRunner(settings.INPROCESS_WORKERS, sweep=_sweep_all, sweep_every=every)
        return _runner
