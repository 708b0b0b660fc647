"""The whole state of one job as the socket sends it on connect, so a late joiner or a reconnect starts
from the truth and then applies events. Field names match the events and the REST API's job detail
(`status`, `progress`, `error`, `output_url`, `segments[].thumbnail_url` ...), so a browser applies all
three with one function. File URLs come from FieldFile.url, as the API's do.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models.fields.files import FieldFile

from jobs.models import Segment, VideoJob
from jobs.selectors import video_job_detail


def _url(field: FieldFile) -> str | None:
    return field.url if field else None


def segment_state(segment: Segment) -> dict[str, Any]:
    return {
        "index": segment.index,
        "prompt": segment.prompt,
        "is_manual": segment.is_manual,
        "start_seconds": segment.start_seconds,
        "end_seconds": segment.end_seconds,
        "status": segment.status,
        "progress": round(segment.progress, 1),
        "attempts": segment.attempts,
        "provider_status": segment.provider_status,
        "error": segment.error,
        "thumbnail_url": _url(segment.thumbnail),
        "clip_url": _url(segment.clip),
    }


def job_state(job: VideoJob) -> dict[str, Any]:
    """Reads job.segments.all(): pass a job from selectors.video_job_detail (prefetched)."""
    segments = [segment_state(s) for s in job.segments.all()]
    return {
        "id": str(job.id),
        "title": job.title,
        "status": job.status,
        "progress": round(job.progress, 1),
        "error": job.error,
        "output_url": _url(job.output_video),
        "poster_url": _url(job.poster_image),
        "duration_seconds": job.duration_seconds,
        "segment_count": len(segments),
        "segments": segments,
    }


def job_snapshot(*, user: Any, job_id: uuid.UUID | str) -> dict[str, Any] | None:
    """The job's state if `user` may see it (owner or staff), else None."""
    job = video_job_detail(user=user, job_id=job_id)
    return None if job is None else job_state(job)
