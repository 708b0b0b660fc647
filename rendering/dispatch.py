"""What runs next: the start of a run and the step after each settled segment.

A run does not use a Celery chord. Each segment task, once its segment is settled, calls `advance()`,
which decides from the database what comes next: in `parallel` continuity the assembly once no
segment is left in flight; in `chain` continuity the next segment, or the assembly after the last.
Deciding from committed state is idempotent, so a redelivered or duplicated task (acks_late after a
crash) can never fire the assembly early, as a chord counter counted twice would; and no result
backend is needed. Tasks reach workers through rendering.transport.
"""

from __future__ import annotations

import uuid

from django.db import transaction

from jobs import leases, render_state
from jobs.models import (
    IN_FLIGHT_SEGMENT_STATUSES,
    RENDERING_JOB_STATUSES,
    UNFINISHED_SEGMENT_STATUSES,
    Continuity,
    Segment,
    SegmentStatus,
    VideoJob,
)

from .transport import ASSEMBLE_JOB, RENDER_SEGMENT, enqueue


def _queued_ids(job_id: uuid.UUID | str) -> list[int]:
    return list(
        Segment.objects.filter(job_id=job_id, status=SegmentStatus.QUEUED)
        .order_by("index")
        .values_list("id", flat=True)
    )


def _send_segments(job_id: uuid.UUID | str, generation: int, segment_ids: list[int]) -> None:
    # Recorded before sending: a message lost with the broker is sent again by the reaper.
    leases.segment_expect_start(segment_ids)
    leases.job_moved_on(job_id)  # the segments hold their own leases now
    for segment_id in segment_ids:
        enqueue(RENDER_SEGMENT, str(job_id), segment_id, generation)


def _send_assembly(job_id: uuid.UUID | str, generation: int) -> None:
    leases.job_expect_progress(job_id)
    enqueue(ASSEMBLE_JOB, str(job_id), generation)


def enqueue_render(job_id: uuid.UUID | str, generation: int) -> None:
    """Start a run: every queued segment at once (parallel), or the first one (chain). Plugged into
    jobs.work_queue by rendering.apps."""
    job = VideoJob.objects.get(id=job_id)
    queued = _queued_ids(job_id)
    if not queued:
        _send_assembly(job_id, generation)
        return
    if job.continuity == Continuity.CHAIN:
        queued = queued[:1]
    _send_segments(job_id, generation, queued)


def resume(job_id: uuid.UUID | str, generation: int) -> str:
    """The reaper's step for a job past its lease (its run never started, or the step after a settled
    segment was lost): send what its state says should be running. Idempotent."""
    job = VideoJob.objects.filter(id=job_id).first()
    if job is None or job.render_generation != generation or job.status not in RENDERING_JOB_STATUSES:
        return "idle"
    if job.continuity == Continuity.PARALLEL:
        # Queued segments no message was ever recorded for (the run's start was lost).
        unsent = list(
            job.segments.filter(status=SegmentStatus.QUEUED, lease_expires_at__isnull=True).values_list(
                "id", flat=True
            )
        )
        if unsent:
            _send_segments(job_id, generation, unsent)
            return "sent"
    return advance(job_id, generation)


def advance(job_id: uuid.UUID | str, generation: int) -> str:
    """After a segment settles: start what comes next. Returns what it did (for logs and tests)."""
    job = VideoJob.objects.filter(id=job_id).first()
    if job is None or job.render_generation != generation:
        return "stale"
    if job.status not in RENDERING_JOB_STATUSES:
        return "idle"
    segments = list(job.segments.order_by("index").values("id", "index", "status"))
    if job.continuity == Continuity.CHAIN:
        if any(s["status"] == SegmentStatus.RENDERING for s in segments):
            leases.job_moved_on(job_id)
            return "waiting"
        broken = next((s for s in segments if s["status"] in UNFINISHED_SEGMENT_STATUSES), None)
        queued = [s for s in segments if s["status"] == SegmentStatus.QUEUED]
        if broken is not None and queued:
            # A chain cannot continue past a failed link; the rest wait for a retry.
            with transaction.atomic():
                for s in queued:
                    render_state.segment_skip(
                        segment_id=s["id"],
                        reason=f"not rendered: segment {broken['index'] + 1} did not complete",
                    )
            queued = []
        if queued:
            _send_segments(job_id, generation, [queued[0]["id"]])
            return "next"
    elif any(s["status"] in IN_FLIGHT_SEGMENT_STATUSES for s in segments):
        leases.job_moved_on(job_id)
        return "waiting"
    _send_assembly(job_id, generation)
    return "assemble"
