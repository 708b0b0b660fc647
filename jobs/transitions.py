"""The legal moves of jobs and segments, and the claims that make each move happen once.

A move is claimed with a conditional UPDATE (`filter(id=..., status__in=FROM).update(status=TO)`), so
two workers (or a request and a worker) can never both win it; the loser gets IllegalTransition. Both
jobs.services (what people ask for) and jobs.render_state (what workers report) move state only
through these functions. One lock order everywhere, the job row and then its segments, keeps a cancel
from deadlocking against a worker on PostgreSQL (docs/architecture.md, "State and money").
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.db import connection
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from sora_controller.compiled_queries import CompiledQuery, Marker

from .errors import IllegalTransition, NotFound
from .models import JobStatus, Segment, SegmentStatus, VideoJob
from .selectors import segment_with_job

# Which status may follow which. Anything else is an IllegalTransition.
JOB_TRANSITIONS: dict[str, set[str]] = {
    JobStatus.DRAFT: {JobStatus.QUEUED, JobStatus.CANCELLED},
    JobStatus.QUEUED: {JobStatus.RENDERING, JobStatus.ASSEMBLING, JobStatus.FAILED, JobStatus.CANCELLED},
    JobStatus.RENDERING: {JobStatus.ASSEMBLING, JobStatus.FAILED, JobStatus.CANCELLED},
    JobStatus.ASSEMBLING: {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED},
    JobStatus.COMPLETED: {JobStatus.QUEUED},  # re-render chosen segments
    JobStatus.FAILED: {JobStatus.QUEUED},  # retry
    JobStatus.CANCELLED: {JobStatus.QUEUED},  # render again
}
SEGMENT_TRANSITIONS: dict[str, set[str]] = {
    SegmentStatus.PENDING: {SegmentStatus.QUEUED, SegmentStatus.CANCELLED},
    SegmentStatus.QUEUED: {SegmentStatus.RENDERING, SegmentStatus.FAILED, SegmentStatus.CANCELLED},
    SegmentStatus.RENDERING: {SegmentStatus.COMPLETED, SegmentStatus.FAILED, SegmentStatus.CANCELLED},
    SegmentStatus.COMPLETED: {SegmentStatus.QUEUED},
    # Or back to completed when a person picks one of its earlier takes (jobs.services.segment_take_pick).
    SegmentStatus.FAILED: {SegmentStatus.QUEUED, SegmentStatus.COMPLETED},
    SegmentStatus.CANCELLED: {SegmentStatus.QUEUED, SegmentStatus.COMPLETED},
}


def sources(transitions: dict[str, set[str]], target: str) -> set[str]:
    """Every status from which `target` may be reached."""
    return {source for source, targets in transitions.items() if target in targets}


def check_move(transitions: dict[str, set[str]], from_statuses: Iterable[str], target: str) -> None:
    """Refuse (at import time of a table of moves) a move the graph does not allow. A status may
    always stay what it is: that is an update of its row, not a transition."""
    illegal = [s for s in from_statuses if s != target and target not in transitions[s]]
    if illegal:
        raise ValueError(f"{', '.join(illegal)} -> {target} is not in the transition table")


# Every move of a segment takes this lock first, several times a second per rendering segment while
# polling: compiled once per process (sora_controller.compiled_queries).
_JOB_OF_SEGMENT_FOR_UPDATE = CompiledQuery(
    lambda shape, segment_id: (
        VideoJob.objects.select_for_update(of=("self",))
        .filter(segments__id=segment_id)
        .only("id")
        .order_by()[:1]
    ),
    segment_id=Marker.INT,
)


def lock_job_of_segment(segment_id: int) -> None:
    """Lock the job row of a segment, first thing in a transaction (one query: `of=("self",)` locks
    only the job's row). Skipped where there is no row locking (SQLite): there a transaction takes the
    database's write lock as it begins (transaction_mode IMMEDIATE), which serialises writers anyway,
    and the query would only cost every segment move a round trip."""
    if not connection.features.has_select_for_update:
        return
    if not connection.in_atomic_block:  # as the ORM refuses select_for_update outside a transaction
        raise TransactionManagementError("lock_job_of_segment() must run inside a transaction")
    _JOB_OF_SEGMENT_FOR_UPDATE.fetch(segment_id=segment_id)


def claim_job(
    job_id: uuid.UUID | str,
    target: str,
    *,
    allowed: Iterable[str] | None = None,
    match: dict[str, Any] | None = None,
    **fields: Any,
) -> VideoJob:
    """Move a job to `target` from one of `allowed` (default: every status the graph lets reach
    `target`) if the row also matches `match` (e.g. its render generation), writing `fields` with the
    move; raise IllegalTransition otherwise."""
    from_statuses = set(allowed) if allowed is not None else sources(JOB_TRANSITIONS, target)
    check_move(JOB_TRANSITIONS, from_statuses, target)
    updated = VideoJob.objects.filter(id=job_id, status__in=from_statuses, **(match or {})).update(
        status=target, updated_at=timezone.now(), **fields
    )
    job = VideoJob.objects.filter(id=job_id).first()
    if job is None:
        raise NotFound(f"video job {job_id} does not exist")
    if updated != 1:
        raise IllegalTransition(
            f"job {job_id} is {job.status}; it cannot become {target}"
            if job.status not in from_statuses
            else f"job {job_id} moved on (a newer run started); it cannot become {target}"
        )
    return job


def claim_segment(
    segment_id: int,
    target: str,
    *,
    allowed: Iterable[str] | None = None,
    match: dict[str, Any] | None = None,
    **fields: Any,
) -> Segment:
    """Move a segment to `target` from one of `allowed` (default: every status the graph allows) if the
    row also matches `match` (e.g. the lease of the run making the move)."""
    from_statuses = set(allowed) if allowed is not None else sources(SEGMENT_TRANSITIONS, target)
    check_move(SEGMENT_TRANSITIONS, from_statuses, target)
    updated = Segment.objects.filter(id=segment_id, status__in=from_statuses, **(match or {})).update(
        status=target, updated_at=timezone.now(), **fields
    )
    segment = segment_with_job(segment_id)
    if segment is None:
        raise NotFound(f"segment {segment_id} does not exist")
    if updated != 1:
        raise IllegalTransition(
            f"segment {segment.index + 1} of job {segment.job_id} is {segment.status}; "
            f"it cannot become {target}"
        )
    return segment
