"""The events we send: their ids (the `webhook-id` header) and bodies.

An id is derived from the transition it reports, not drawn at random, so reporting the same transition
twice (the listener and the catch-up of a callback registered while the job was already running) is the
same event and gives each endpoint one delivery, and a receiver that dedupes on webhook-id sees it once:
- job.completed / job.failed: the job and its render generation (each render, retry or rerender is one);
- segment.completed: the job, the segment's index and the moment it completed.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from django.conf import settings
from django.utils import timezone

from jobs.events import job_status
from jobs.models import JobStatus, VideoJob

from .models import EventType

JOB_EVENT_TYPES = {JobStatus.COMPLETED: EventType.JOB_COMPLETED, JobStatus.FAILED: EventType.JOB_FAILED}


def _event_id(*parts: object) -> str:
    return "msg_" + hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:40]


def job_event_id(job_id: uuid.UUID | str, event_type: str, generation: int) -> str:
    return _event_id(job_id, event_type, generation)


def segment_event_id(job_id: uuid.UUID | str, index: int, completed_at: str | None) -> str:
    return _event_id(job_id, EventType.SEGMENT_COMPLETED, index, completed_at)


def absolute(url: str | None) -> str | None:
    """Media URLs are relative in jobs' events; receivers elsewhere need PUBLIC_BASE_URL in front."""
    if url and url.startswith("/") and settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL.rstrip("/") + url
    return url


def job_summary(job: VideoJob) -> dict[str, Any]:
    state = job_status(job)
    return {
        "id": str(job.id),
        "title": job.title,
        **state,
        "output_url": absolute(state["output_url"]),
        "poster_url": absolute(state["poster_url"]),
        "cost_usd": f"{job.cost_spent_usd:.4f}",
    }


def envelope(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """The Standard Webhooks payload shape: type, timestamp, data."""
    stamp = timezone.now().isoformat().replace("+00:00", "Z")
    return {"type": str(event_type), "timestamp": stamp, "data": data}


def segment_data(job: VideoJob, segment: dict[str, Any]) -> dict[str, Any]:
    segment = {
        **segment,
        **{key: absolute(segment.get(key)) for key in ("clip_url", "thumbnail_url", "last_frame_url")},
    }
    return {
        "job": {"id": str(job.id), "status": job.status, "progress": round(job.progress, 1)},
        "segment": segment,
    }
