"""What a job tells its watchers: the event names, the one shape of a segment's state (shared by
events, the socket's snapshot and the REST API), and the seam through which events leave after commit.

jobs does not know who listens. realtime plugs its broadcaster in at start-up (`register_publisher`
in realtime.apps), other apps add listeners beside it (`add_listener`: callbacks.apps); with nothing
plugged in, events go nowhere and nothing breaks. Events never carry
state the database has not committed: they are handed over in `transaction.on_commit`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models import Model

from .models import Segment, VideoJob

log = logging.getLogger(__name__)

# The segment-state event. Its wire name is the original contract's and stays, so existing clients
# keep working; in code it is the segment-state event.
SEGMENT_STATE = "frame-progress"
JOB_ASSEMBLY = "job-assembly"
JOB_STATUS = "job-status"

# A stored file's URL as the reader should see it, from the storage's URL: as it is (relative) for events
# and pages, absolute for the API.
UrlOf = Callable[[str], str]
Publisher = Callable[..., None]


def relative_url(url: str) -> str:
    return url


def stored_url(instance: Model, name: str) -> str | None:
    """The storage URL of the file in `instance`'s file field `name`, or None when it holds none: what
    `getattr(instance, name).url` gives, without building the FieldFile when the instance holds only the
    file's name (as one loaded from the database does). Django keeps a FieldFile on its instance and
    points it back at the instance: a reference cycle, which only the garbage collector frees, for every
    file of every segment a job detail reads."""
    value = instance.__dict__.get(name)
    if not isinstance(value, str):  # a FieldFile or File already there, or a deferred field: Django's way
        field_file = getattr(instance, name)
        return field_file.url if field_file else None
    return instance._meta.get_field(name).storage.url(value) if value else None


def file_url(instance: Model, name: str, url_of: UrlOf = relative_url) -> str | None:
    """The file in `instance`'s file field `name` as the reader sees it (`url_of`), or None."""
    url = stored_url(instance, name)
    return None if url is None else url_of(url)


def _timestamp(value: Any) -> str | None:
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text  # as DRF renders datetimes


def segment_state(segment: Segment, *, url_of: UrlOf = relative_url) -> dict[str, Any]:
    """The one shape of a segment, for events, snapshots and the API (jobs.api.output_serializers
    declares the same fields for the schema, and a test holds the two together)."""
    return {
        "index": segment.index,
        "prompt": segment.prompt,
        "is_manual": segment.is_manual,
        "start_seconds": segment.start_seconds,
        "end_seconds": segment.end_seconds,
        "duration_seconds": segment.duration_seconds,
        "render_seconds": segment.render_seconds,
        "status": segment.status,
        "progress": round(segment.progress, 1),
        "provider_status": segment.provider_status,
        "attempts": segment.attempts,
        "error": segment.error,
        "cost_usd": f"{segment.cost_usd:.4f}",
        "clip_url": file_url(segment, "clip", url_of),
        "thumbnail_url": file_url(segment, "thumbnail", url_of),
        "last_frame_url": file_url(segment, "last_frame", url_of),
        "cached": segment.cached_from_id is not None,
        "rendered_by": segment.rendered_by,
        "take": segment.take_number,
        "updated_at": _timestamp(segment.updated_at),
    }


def job_status(job: VideoJob) -> dict[str, Any]:
    """The job-status event: where the job stands, and its files once they exist."""
    return {
        "status": job.status,
        "progress": round(job.progress, 1),
        "output_url": file_url(job, "output_video"),
        "poster_url": file_url(job, "poster_image"),
        "version": job.version_number,
        "error": job.error,
    }


def job_state(job: VideoJob) -> dict[str, Any]:
    """The whole job as the socket sends it on connect and the job page starts from. Reads
    job.segments.all(): pass a job from selectors.video_job_detail (prefetched)."""
    segments = [segment_state(s) for s in job.segments.all()]
    return {
        "id": str(job.id),
        "title": job.title,
        **job_status(job),
        "duration_seconds": job.duration_seconds,
        "segment_count": len(segments),
        "segments": segments,
    }


# --- The seam ------------------------------------------------------------------------------------------

_publisher: Publisher | None = None
_listeners: list[Publisher] = []


def register_publisher(publisher: Publisher | None) -> None:
    """realtime.apps plugs in `publisher(job_id, event, data, job=...)` at start-up."""
    global _publisher
    _publisher = publisher


def add_listener(listener: Publisher) -> None:
    """Another receiver of every event, called like the publisher (callbacks.apps adds its own)."""
    if listener not in _listeners:
        _listeners.append(listener)


def publish_after_commit(
    job_id: uuid.UUID | str, event: str, data: dict[str, Any], *, job: dict[str, Any] | None = None
) -> None:
    """Send `event` to the job's watchers once the surrounding transaction commits. `job` carries the
    job's status and progress along with a segment's event, so a page never recomputes them."""
    receivers = [r for r in (_publisher, *_listeners) if r is not None]
    if not receivers:
        return

    def send() -> None:
        for receiver in receivers:
            try:
                receiver(job_id, event, data, job=job)
            except Exception:  # an event is advisory: the database already holds the truth
                log.warning("could not publish %s for job %s", event, job_id, exc_info=True)

    transaction.on_commit(send)
