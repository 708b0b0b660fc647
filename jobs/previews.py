"""The "preview so far": the finished beginning of a job's video while the rest still renders.

The preview joins the contiguous run of finished segments from the first one (a gap would show a jump
in the story), by stream copy, so it costs no render and next to no time. It is cached by the exact
takes it joins: asking again while nothing new finished returns the same file, and a newly finished
segment (or a picked take) makes a new one. Only the newest few previews of a job are kept on storage.

jobs decides *what* is joined and where it is stored; rendering does the ffmpeg work through a seam
filled at start-up (rendering.apps), so jobs never imports rendering.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.core.files.storage import default_storage

from .errors import ServiceError
from .models import Segment, SegmentStatus, VideoJob

log = logging.getLogger(__name__)

# A builder joins stored clips (storage name, seconds shown) into the storage name given.
PreviewBuilder = Callable[[Sequence[tuple[str, float]], str], None]

PREVIEW_PREFIX = "preview-"
# Previews kept per job: the newest one and the one a page may still be playing.
PREVIEWS_KEPT = 2

_builder: PreviewBuilder | None = None


def register_preview_builder(builder: PreviewBuilder | None) -> None:
    global _builder
    _builder = builder


class PreviewFailed(ServiceError):
    """The clips could not be joined (a missing file, ffmpeg refusing them): nothing to play yet."""


@dataclass(frozen=True)
class Preview:
    name: str  # the storage name of the joined file
    segments: int  # how many segments from the first it shows
    duration_seconds: float
    takes: list[int]  # the take of each segment shown


def finished_prefix(segments: Sequence[Segment]) -> list[Segment]:
    """The segments from the first up to (not including) the first one without a finished clip."""
    prefix = []
    for segment in sorted(segments, key=lambda s: s.index):
        if segment.status != SegmentStatus.COMPLETED or not segment.clip:
            break
        prefix.append(segment)
    return prefix


def _job_dir(job: VideoJob) -> str:
    return f"jobs/{job.id}"


def preview_name(job: VideoJob, prefix: Sequence[Segment]) -> str:
    """The storage name of the preview of exactly these takes (a change of any clip changes it)."""
    key = "|".join(f"{s.index}:{s.take_number}:{s.clip.name}:{s.duration_seconds:.6f}" for s in prefix)
    digest = hashlib.sha256(f"{job.id}|{key}".encode()).hexdigest()[:20]
    return f"{_job_dir(job)}/{PREVIEW_PREFIX}{len(prefix)}-{digest}.mp4"


def preview_names(job: VideoJob) -> list[str]:
    """Every preview file stored for the job, oldest first (for pruning and for deleting the job)."""
    try:
        _, files = default_storage.listdir(_job_dir(job))
    except (FileNotFoundError, NotImplementedError):
        return []
    names = [f"{_job_dir(job)}/{f}" for f in files if f.startswith(PREVIEW_PREFIX) and f.endswith(".mp4")]

    def modified(name: str) -> float:
        try:
            return default_storage.get_modified_time(name).timestamp()
        except (FileNotFoundError, NotImplementedError, OSError):
            return 0.0

    return sorted(names, key=modified)


def _prune(job: VideoJob, keep: str) -> None:
    old = [name for name in preview_names(job) if name != keep]
    for name in old[: max(0, len(old) - (PREVIEWS_KEPT - 1))]:
        try:
            default_storage.delete(name)
        except OSError:  # a page may be reading it on a platform that refuses; the next prune retries
            log.info("could not delete the old preview %s", name)


def job_preview(job: VideoJob) -> Preview | None:
    """The preview of the job's finished beginning, built if it is not stored yet; None when the first
    segment has not finished. Pass a job with its segments prefetched (selectors.video_job_detail)."""
    prefix = finished_prefix(list(job.segments.all()))
    if not prefix:
        return None
    name = preview_name(job, prefix)
    if not default_storage.exists(name):
        if _builder is None:
            raise RuntimeError("no preview builder is registered (is the rendering app installed?)")
        try:
            _builder([(s.clip.name, s.duration_seconds) for s in prefix], name)
        except Exception as exc:  # ffmpeg or storage: the page keeps playing clips one by one
            log.warning("preview of job %s failed: %s", job.id, exc)
            raise PreviewFailed(f"the finished segments could not be joined: {exc}") from exc
        _prune(job, keep=name)
    return Preview(
        name=name,
        segments=len(prefix),
        duration_seconds=round(sum(s.duration_seconds for s in prefix), 3),
        takes=[s.take_number for s in prefix],
    )
