"""Hands a job's render run to the task transport: Celery in production, an in-process worker on the
embedded default. Both run the same task functions in the same order; only the transport differs.

A run is a list of stages; the tasks of a stage run concurrently and stages run one after another:
parallel continuity = [[seg0, seg1, ...], [assemble]]; chain = [[seg0], [seg1], ..., [assemble]].
"""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait

from celery import chain, group
from django.conf import settings
from django.db import close_old_connections, connections

from jobs.models import Continuity, Segment, SegmentStatus, VideoJob

from . import tasks

log = logging.getLogger(__name__)

Stage = list[tuple]  # [(task, args), ...]


def build_stages(job_id: uuid.UUID | str, generation: int) -> list[Stage]:
    job = VideoJob.objects.get(id=job_id)
    segment_ids = list(
        Segment.objects.filter(job_id=job_id, status=SegmentStatus.QUEUED)
        .order_by("index")
        .values_list("id", flat=True)
    )
    calls = [(tasks.render_segment, (str(job_id), segment_id, generation)) for segment_id in segment_ids]
    if job.continuity == Continuity.CHAIN:
        stages: list[Stage] = [[call] for call in calls]
    else:
        stages = [calls] if calls else []
    stages.append([(tasks.assemble_job, (str(job_id), generation))])
    return stages


def enqueue_render(job_id: uuid.UUID | str, generation: int) -> None:
    stages = build_stages(job_id, generation)
    if settings.TASK_RUNNER == "celery":
        _celery_canvas(stages).apply_async()
    else:
        inprocess_runner().submit(stages)


def _celery_canvas(stages: list[Stage]):
    steps = []
    for stage in stages:
        signatures = [task.si(*args) for task, args in stage]
        # chain(group, sig) becomes a chord: the next stage starts when the whole group is done.
        steps.append(signatures[0] if len(signatures) == 1 else group(signatures))
    return chain(*steps)


class InProcessRunner:
    """A worker pool inside this process. Task functions run through Celery's own `apply()`, so the
    embedded default exercises the same task code (retries included) that the worker fleet runs."""

    def __init__(self, workers: int) -> None:
        self._workers = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="render-worker")
        # Coordinators only wait on stages; a separate pool so they never starve the workers.
        self._coordinators = ThreadPoolExecutor(max_workers=8, thread_name_prefix="render-run")
        self._lock = threading.Lock()
        self._running: set[Future] = set()

    def submit(self, stages: list[Stage]) -> Future:
        future = self._coordinators.submit(self._run, stages)
        with self._lock:
            self._running.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future) -> None:
        with self._lock:
            self._running.discard(future)

    def _run(self, stages: list[Stage]) -> None:
        try:
            for stage in stages:
                futures = [self._workers.submit(self._call, task, args) for task, args in stage]
                wait(futures)
        finally:
            connections.close_all()

    @staticmethod
    def _call(task, args: tuple) -> None:
        close_old_connections()
        try:
            task.apply(args=args)
        except Exception:  # apply() stores failures; log anything that escaped it
            log.exception("in-process task %s%r failed", task.name, args)
        finally:
            connections.close_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for every submitted run to finish (used by the CLI and tests)."""
        with self._lock:
            pending = list(self._running)
        _done, not_done = wait(pending, timeout=timeout)
        return not not_done


_runner: InProcessRunner | None = None
_runner_lock = threading.Lock()


def inprocess_runner() -> InProcessRunner:
    global _runner
    with _runner_lock:
        if _runner is None:
            _runner = InProcessRunner(settings.INPROCESS_WORKERS)
        return _runner
