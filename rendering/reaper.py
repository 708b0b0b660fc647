"""The reaper: celery beat runs it every REAPER_INTERVAL_SECONDS to re-queue work that stalled.

A segment queued or rendering with no update for REAPER_STALE_SECONDS (its task was lost with a
broker, or a message sat with a dead worker past every redelivery) is handed to `render_segment`
again; an assembly left `assembling` the same way is handed to `assemble_job` again. Both tasks are
idempotent (a rendering segment resumes its provider task; a duplicate assembly is claimed once), so
re-queuing something that was merely slow costs a check, never a second render.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from jobs import render_state

from .transport import ASSEMBLE_JOB, RENDER_SEGMENT, enqueue

log = logging.getLogger(__name__)


def reap_stale(stale_seconds: int | None = None) -> dict[str, int]:
    seconds = settings.REAPER_STALE_SECONDS if stale_seconds is None else stale_seconds
    cutoff = timezone.now() - timedelta(seconds=seconds)
    segments, assemblies = render_state.stale_work_claim(cutoff=cutoff)
    for job_id, segment_id, generation in segments:
        log.warning(
            "re-queuing stalled segment %s of job %s",
            segment_id,
            job_id,
            extra={"job_id": job_id, "segment_id": segment_id},
        )
        enqueue(RENDER_SEGMENT, job_id, segment_id, generation)
    for job_id, generation in assemblies:
        log.warning("re-queuing stalled assembly of job %s", job_id, extra={"job_id": job_id})
        enqueue(ASSEMBLE_JOB, job_id, generation)
    return {"segments": len(segments), "assemblies": len(assemblies)}
