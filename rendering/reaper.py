"""The reaper: resumes work past its lease (jobs.leases), every REAPER_INTERVAL_SECONDS.

Celery beat runs it on the fleet; on the embedded default the in-process runner runs it itself. It
finds, from database state alone:

- segments whose run was lost (a worker died mid-step or mid-wait, a message vanished with the broker):
  a new run is sent with a fresh lease token, so the lost run, should it ever come back, stops at once;
- jobs whose next step never happened (the run's start, or the step after a settled segment, was lost):
  resumed from their state by rendering.dispatch.resume;
- assemblies whose assembler died: a new assembly run is sent with a fresh token.

Each item is claimed with a conditional UPDATE, so two reapers never both resume it. Resuming is safe:
a rendering segment resumes its provider task (no second create), an assembly is completed once.
"""

from __future__ import annotations

import logging

from jobs import leases
from jobs.models import JobStatus

from . import dispatch
from .transport import ASSEMBLE_JOB, RENDER_SEGMENT, enqueue

log = logging.getLogger(__name__)


def reap_stale() -> dict[str, int]:
    segments = leases.segments_expired_claim()
    for job_id, segment_id, generation, token in segments:
        log.warning(
            "resuming segment %s of job %s: its lease expired",
            segment_id,
            job_id,
            extra={"job_id": job_id, "segment_id": segment_id},
        )
        enqueue(RENDER_SEGMENT, job_id, segment_id, generation, lease=token)
    assemblies = 0
    jobs = leases.jobs_expired_claim()
    for job_id, generation, status, token in jobs:
        if status == JobStatus.ASSEMBLING:
            log.warning(
                "resuming the assembly of job %s: its lease expired", job_id, extra={"job_id": job_id}
            )
            enqueue(ASSEMBLE_JOB, job_id, generation, lease=token)
            assemblies += 1
        else:
            outcome = dispatch.resume(job_id, generation)
            log.warning(
                "resuming job %s: its next step was lost (%s)", job_id, outcome, extra={"job_id": job_id}
            )
    return {"segments": len(segments), "jobs": len(jobs) - assemblies, "assemblies": assemblies}
