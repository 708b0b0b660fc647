"""Hands render work to the task transport: Celery in production, an in-process worker pool on the
embedded default. Both run the same task functions; only the transport differs.

A run does not use a Celery chord. Each segment task, once its segment is settled, calls `advance()`,
which decides from the database what comes next: in `parallel` continuity the assembly once no
segment is left in flight; in `chain` continuity the next segment, or the assembly after the last.
Deciding from committed state is idempotent, so a redelivered or duplicated task (acks_late after a
crash) can never fire the assembly early, as a chord counter counted twice would; and no result
backend is needed.
"""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, connections, transaction

from jobs import services
from jobs.models import Continuity, JobStatus, Segment, SegmentStatus, VideoJob

log = logging.getLogger(__name__)

IN_FLIGHT = (SegmentStatus.QUEUED, SegmentStatus.RENDERING)


def enqueue(task, *args) -> None:
    if settings.TASK_RUNNER == "celery":
        task.apply_async(args=args)
    else:
        inprocess_runner().submit(task, args)


def _queued_ids(job_id: uuid.UUID | str) -> list[int]:
    return list(
        Segment.objects.filter(job_id=job_id, status=SegmentStatus.QUEUED)
        .order_by("index")
        .values_list("id", flat=True)
    )


def enqueue_render(job_id: uuid.UUID | str, generation: int) -> None:
    """Start a run: every queued segment at once (parallel), or the first one (chain)."""
    from . import tasks

    job = VideoJob.objects.get(id=job_id)
    queued = _queued_ids(job_id)
    if not queued:
        enqueue(tasks.assemble_job, str(job_id), generation)
        return
    if job.continuity == Continuity.CHAIN:
        queued = queued[:1]
    for segment_id in queued:
        enqueue(tasks.render_segment, str(job_id), segment_id, generation)


def advance(job_id: uuid.UUID | str, generation: int) -> str:
    """After a segment settles: start what comes next. Returns what it did (for logs and tests)."""
    from . import tasks

    job = VideoJob.objects.filter(id=job_id).first()
    if job is None or job.render_generation != generation:
        return "stale"
    if job.status not in {JobStatus.QUEUED, JobStatus.RENDERING}:
        return "idle"
    segments = list(job.segments.order_by("index").values("id", "index", "status"))
    if job.continuity == Continuity.CHAIN:
        if any(s["status"] == SegmentStatus.RENDERING for s in segments):
            return "waiting"
        broken = next(
            (s for s in segments if s["status"] in {SegmentStatus.FAILED, SegmentStatus.CANCELLED}), None
        )
        queued = [s for s in segments if s["status"] == SegmentStatus.QUEUED]
        if broken is not None and queued:
            # A chain cannot continue past a failed link; the rest wait for a retry.
            with transaction.atomic():
                for s in queued:
                    services.segment_skip(
                        segment_id=s["id"],
                        reason=f"not rendered: segment {broken['index'] + 1} did not complete",
                    )
            queued = []
        if queued:
            enqueue(tasks.render_segment, str(job_id), queued[0]["id"], generation)
            return "next"
    elif any(s["status"] in IN_FLIGHT for s in segments):
        return "waiting"
    enqueue(tasks.assemble_job, str(job_id), generation)
    return "assemble"


class InProcessRunner:
    """A worker pool inside this process. Task functions run through Celery's own `apply()`, so the
    embedded default exercises the same task code that the worker fleet runs."""

    def __init__(self, workers: int, *, sweep_every: float | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="render-worker")
        self._idle = threading.Condition()
        self._outstanding = 0
        self._stop = threading.Event()
        if sweep_every:
            # No celery beat here: the runner itself re-queues work a previous process left stalled
            # (a `make serve` that was stopped mid-render), with the same reaper the fleet uses.
            threading.Thread(
                target=self._sweep, args=(sweep_every,), name="render-reaper", daemon=True
            ).start()

    def _sweep(self, every: float) -> None:
        from .reaper import reap_stale

        while not self._stop.wait(every):
            try:
                reap_stale()
            except Exception:  # a failed sweep is retried at the next one
                log.exception("embedded reaper sweep failed")
            finally:
                connections.close_all()

    def submit(self, task, args: tuple) -> None:
        with self._idle:
            self._outstanding += 1
        self._pool.submit(self._call, task, args)

    def _call(self, task, args: tuple) -> None:
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


def inprocess_runner() -> InProcessRunner:
    global _runner
    with _runner_lock:
        if _runner is None:
            sweep = settings.REAPER_INTERVAL_SECONDS if settings.EMBEDDED_REAPER else None
            _runner = InProcessRunner(settings.INPROCESS_WORKERS, sweep_every=sweep)
        return _runner
