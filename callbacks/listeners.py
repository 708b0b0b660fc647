"""The listener jobs.events calls after every commit that changes a job: the events clients subscribe
to become deliveries here."""

from __future__ import annotations

import uuid
from typing import Any

from jobs.events import JOB_STATUS, SEGMENT_STATE
from jobs.models import SegmentStatus

from . import services
from .events import JOB_EVENT_TYPES


def on_job_event(
    job_id: uuid.UUID | str, event: str, data: dict[str, Any], *, job: dict[str, Any] | None = None
) -> None:
    if event == JOB_STATUS and data.get("status") in JOB_EVENT_TYPES:
        services.job_event_record(job_id=job_id, status=data["status"])
    elif event == SEGMENT_STATE and data.get("status") == SegmentStatus.COMPLETED:
        services.segment_event_record(job_id=job_id, segment=data)
