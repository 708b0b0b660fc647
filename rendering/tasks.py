"""Celery tasks: thin wrappers over rendering.pipeline. They take ids, are idempotent, acknowledge late,
retry only transient provider errors (with backoff that honours the provider's retry-after), and wait
for a provider by re-scheduling themselves with a countdown instead of sleeping in a worker slot."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError
from django.db import OperationalError as DatabaseOperationalError
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobs import leases, render_state
from jobs.errors import IllegalTransition, InvalidInput, NotFound
from jobs.leases import new_token
from jobs.models import Segment, SegmentStatus
from jobs.selectors import segment_with_job
from sora_controller.logs import log_context

from . import dispatch, pipeline, ratelimit, transport
from .poll_schedule import Pace
from .providers.base import ProviderError
from .providers.registry import get_provider
from .transport import ASSEMBLE_JOB, RENDER_SEGMENT

log = logging.getLogger(__name__)

# What a step returns when it will run again on the in-process runner's timer (not settled yet).
WAITING = "waiting"
# What a run returns when our own infrastructure failed under it: the reaper resumes it (jobs.leases).
INTERRUPTED = "interrupted"
# Errors of the database or Redis connection (a restart, a failover), as opposed to errors of the work.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    DatabaseOperationalError,
    InterfaceError,
    KombuOperationalError,
    RedisConnectionError,
    RedisTimeoutError,
)


def backoff_seconds(failures: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter (about 1, 2, 4 ... 60 s), never sooner than the provider asked."""
    base = min(60.0, 2.0 ** max(0, failures - 1)) * (0.75 + random.random() / 2)
    return max(base, retry_after or 0.0)


@shared_task(
    bind=True,
    name=RENDER_SEGMENT,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,  # polls are retries too; transient failures are bounded by TRANSIENT_RETRIES
)
def render_segment(
    self,
    job_id: str,
    segment_id: int,
    generation: int,
    transient: int = 0,
    polls: int = 0,
    lease: str = "",
    since: float = 0.0,
    pace: list | None = None,
) -> str:
    """One run of rendering a segment. `lease` names the run (jobs.leases) and travels with every poll
    of the run; a run sent without one (a first send) is named by its Celery task id, which a
    redelivery after a crash repeats, so the redelivered message resumes the run at once. `since`: when
    the render it polls was submitted (time.time()), for the poll schedule; 0 when not known. `pace`: what
    the run's checks have seen of the render's progress (rendering.poll_schedule.Pace, as JSON)."""
    with log_context(job_id=job_id, segment_id=segment_id, task="render_segment"):
        run = RunState(lease or run_name(self), transient, polls, since, Pace.from_task_arg(pace))
        return _render_segment(self, job_id, segment_id, generation, run)


def run_name(task) -> str:
    """A lease token for a run sent without one: its task id (32 hex digits, as jobs.leases makes)."""
    task_id = task.request.id
    return task_id.replace("-", "")[:32] if task_id else new_token()


@dataclass
class RunState:
    """What one run of a segment carries from step to step (the task's keyword arguments): its lease
    token, transient failures so far, status checks of the current render, when that render was
    submitted (time.time(); 0 when not known) and what the checks saw of its progress."""

    lease: str
    transient: int = 0
    polls: int = 0
    since: float = 0.0
    pace: Pace | None = None

    def as_task_kwargs(self) -> dict[str, Any]:
        carried: dict[str, Any] = {
            "transient": self.transient,
            "polls": self.polls,
            "lease": self.lease,
            "since": self.since,
        }
        if self.pace is not None:
            carried["pace"] = self.pace.as_task_arg()
        return carried


def _render_segment(task, job_id: str, segment_id: int, generation: int, run: RunState) -> str:
    self = task
    outcome = _render_until_settled(self, job_id, segment_id, generation, run)
    if outcome in (WAITING, pipeline.SUPERSEDED, INTERRUPTED):
        # Not settled: it comes back on a timer, still holding its provider slot. Or another run holds
        # the segment: that run owns the slot and the next step, so this one leaves everything alone.
        return outcome
    # Settled, whatever the outcome: give back any provider slot this run of the segment holds
    # (idempotent; a slot is normally released as soon as the provider finishes).
    try:
        ratelimit.release_everywhere(ratelimit.member(segment_id, generation))
        # The segment is settled (or was never ours): let the job move on. Idempotent, so a duplicate
        # delivery of this task only repeats a check.
        dispatch.advance(job_id, generation)
    except INFRASTRUCTURE_ERRORS as exc:
        # The slot frees itself when its Redis lease runs out; the job's own lease (set when the segment
        # settled) has the reaper take the next step.
        log.warning("segment %s settled (%s) but the next step was interrupted: %s", segment_id, outcome, exc)
    return outcome


def _render_until_settled(task, job_id: str, segment_id: int, generation: int, run: RunState) -> str:
    lease = run.lease
    while True:
        try:
            result = pipeline.render_segment(
                segment_id=segment_id,
                generation=generation,
                lease=lease,
                polls=run.polls,
                since=run.since,
                pace=run.pace,
            )
        except ProviderError as exc:  # transient: the pipeline records permanent errors itself
            run.transient += 1
            if run.transient >= settings.TRANSIENT_RETRIES:
                reason = f"gave up after {run.transient} tries: {exc.message}"
                moved = _fail_over(segment_id, reason)
                if moved is None:
                    render_state.segment_fail(segment_id=segment_id, error=reason)
                    return "failed"
                log.warning("segment %s: provider down (%s); moved to %s", segment_id, exc, moved)
                run, delay = RunState(lease), 0.0
            else:
                delay = backoff_seconds(run.transient, exc.retry_after)
                log.info(
                    "segment %s: transient provider error (%s); retrying in %.1fs", segment_id, exc, delay
                )
        except (IllegalTransition, NotFound) as exc:
            # Cancelled or deleted meanwhile: the loser of an expected race, not a crashed worker.
            log.info("render_segment %s of job %s stopped: %s", segment_id, job_id, exc)
            return "skipped"
        except INFRASTRUCTURE_ERRORS as exc:
            # Our own database or Redis is restarting: not the segment's fault, and nothing can be
            # recorded reliably now. The run stops; its lease runs out and the reaper resumes it.
            log.warning(
                "segment %s: interrupted by %s: %s (the reaper resumes it)",
                segment_id,
                type(exc).__name__,
                exc,
            )
            return INTERRUPTED
        except Exception as exc:  # never let one segment stall the job: record it and move on
            log.exception("render_segment %s of job %s crashed", segment_id, job_id)
            render_state.segment_fail(
                segment_id=segment_id, error=f"internal error: {type(exc).__name__}: {exc}"
            )
            return "failed"
        else:
            if not isinstance(result, pipeline.PollLater):
                return result
            if result.submitted:
                run.polls = 1  # the backoff of a new render starts from its first poll
                run.since = result.submitted_at or 0.0
            elif result.polled:
                run.polls += 1
            if result.submitted or result.pace is not None:  # a wait for a slot saw nothing: keep it
                run.pace = result.pace
            delay = result.delay
        wait = leases.segment_wait(segment_id, lease, delay)
        if wait is None:
            if leases.segment_holds(segment_id, lease):
                return "abandoned"  # still ours, but it settled meanwhile (cancelled)
            # Taken over meanwhile (a webhook, or the reaper after this run was presumed lost): the run
            # that holds the segment takes its next step; scheduling ours would start a second chain.
            return pipeline.SUPERSEDED
        delay = wait
        carried = run.as_task_kwargs()
        if task.request.is_eager:
            # In-process runs (the embedded default) come back on the runner's timer, as the fleet does
            # with a countdown, so waiting for a provider never holds one of its few threads.
            transport.run_later(
                task,
                (job_id, segment_id, generation),
                carried,
                delay,
                wake_if=lambda: not _still_rendering(segment_id),
            )
            return WAITING
        # Not settled: come back later without holding this worker slot. Raises celery.exceptions.Retry.
        raise task.retry(
            args=(job_id, segment_id, generation),
            kwargs=carried,
            countdown=delay,
            # Waiting on a provider goes to the poll queue, so polls never queue behind new submits.
            queue=settings.POLL_QUEUE,
        )


def _fail_over(segment_id: int, reason: str) -> str | None:
    """The segment's provider stayed down: ask it (best effort) to stop the task we leave behind, then move
    the segment to the job's next fallback model. None when there is none, or the budget refuses it."""
    segment = segment_with_job(segment_id)
    if segment is None or segment.status != SegmentStatus.RENDERING:
        return None
    if segment.provider_task_id:
        try:
            get_provider(segment.render_provider).cancel(segment.provider_task_id)
        except Exception:  # the provider is down: that is why we leave; its task may finish unseen
            log.info("segment %s: could not cancel %s", segment_id, segment.provider_task_id)
    try:
        return render_state.segment_fail_over(segment_id=segment_id, reason=reason)
    except IllegalTransition:  # cancelled since the check above: nothing to move
        return None
    except InvalidInput as exc:  # over budget on the fallback model
        render_state.segment_fail(segment_id=segment_id, error=f"{reason}; no failover: {exc}")
        return None


def _still_rendering(segment_id: int) -> bool:
    return Segment.objects.filter(id=segment_id, status=SegmentStatus.RENDERING).exists()


@shared_task(bind=True, name=ASSEMBLE_JOB, acks_late=True, reject_on_worker_lost=True)
def assemble_job(self, job_id: str, generation: int, lease: str = "") -> str:
    with log_context(job_id=job_id, task="assemble_job"):
        try:
            return pipeline.assemble_job(job_id=job_id, generation=generation, lease=lease or run_name(self))
        except (IllegalTransition, NotFound) as exc:  # cancelled or deleted meanwhile: expected
            log.info("assemble_job %s stopped: %s", job_id, exc)
            return "skipped"
        except INFRASTRUCTURE_ERRORS as exc:
            log.warning(
                "assembly of %s interrupted by %s: %s (the reaper resumes it)",
                job_id,
                type(exc).__name__,
                exc,
            )
            return INTERRUPTED
        except Exception as exc:
            log.exception("assemble_job %s crashed", job_id)
            render_state.job_fail(
                job_id=job_id, error=f"internal error during assembly: {type(exc).__name__}: {exc}"
            )
            return "failed"


@shared_task(name="rendering.reap_stale", acks_late=True)
def reap_stale() -> dict[str, int]:
    """Periodic (celery beat): resume segments, jobs and assemblies past their lease."""
    from .reaper import reap_stale as reap

    return reap()
