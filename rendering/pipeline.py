"""What the rendering tasks do, as plain functions of ids. rendering.tasks wraps them for Celery.

render_segment: claim -> submit (or resume the stored provider task) -> poll -> download -> conform to
the job's format and planned length -> last frame + thumbnail -> complete. assemble_job: check every
segment finished -> stream-copy concatenation -> poster -> complete.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from django.core.files import File

from jobs import services
from jobs.models import Continuity, JobStatus, Segment, SegmentStatus, VideoJob
from jobs.selectors import segment_reference_path
from rendering.assembly import ClipInput, assemble, conform_clip, differences, make_poster
from rendering.media import MediaError, extract_frame, extract_last_frame, probe
from rendering.media_types import ClipTarget
from rendering.providers.base import ProviderError, ProviderTask, RenderRequest, TaskState
from rendering.providers.registry import get_provider
from rendering.storage_io import local_copy

log = logging.getLogger(__name__)

# Polling interval bounds for remote providers: start quick, back off to this ceiling.
POLL_MIN_SECONDS = 1.0
POLL_MAX_SECONDS = 15.0
# Progress is written (and broadcast) at most this often, and on every 5% step.
PROGRESS_EVERY_SECONDS = 0.5


class Abandoned(Exception):
    """The segment stopped rendering under us (cancelled): stop work, record nothing."""


def _progress_reporter(segment_id: int) -> Callable[[float], None]:
    last = {"at": 0.0, "value": -100.0}

    def report(value: float, provider_status: str = TaskState.IN_PROGRESS) -> None:
        now = time.monotonic()
        if now - last["at"] < PROGRESS_EVERY_SECONDS and value - last["value"] < 5.0:
            return
        last["at"], last["value"] = now, value
        if not services.segment_progress(
            segment_id=segment_id, progress=value, provider_status=provider_status
        ):
            raise Abandoned()

    return report


def _reference_for(segment: Segment, work_dir: Path) -> Path | None:
    job = segment.job
    if job.continuity == Continuity.CHAIN and segment.index > 0:
        previous = Segment.objects.get(job=job, index=segment.index - 1)
        if not previous.last_frame:
            return None
        return local_copy(previous.last_frame.name, work_dir)
    image = segment_reference_path(segment)
    return local_copy(image.image.name, work_dir) if image else None


def render_segment(*, segment_id: int, generation: int) -> str:
    """Render one segment. Returns what happened: completed, skipped, abandoned or failed.

    Raises ProviderError only for transient provider trouble (the caller retries with backoff); every
    permanent problem is recorded on the segment instead, so a fan-out always reaches assembly.
    """
    segment = services.segment_claim(segment_id=segment_id, generation=generation)
    if segment is None:
        return "skipped"
    job = segment.job
    if job.continuity == Continuity.CHAIN and segment.index > 0:
        previous = Segment.objects.get(job=job, index=segment.index - 1)
        if previous.status != SegmentStatus.COMPLETED:
            services.segment_fail(
                segment_id=segment_id, error=f"not rendered: segment {previous.index + 1} did not complete"
            )
            return "failed"
    provider = get_provider(job.provider)
    report = _progress_reporter(segment_id)
    try:
        with tempfile.TemporaryDirectory(prefix=f"segment-{segment_id}-") as tmp:
            work_dir = Path(tmp)
            task = _submit_or_resume(segment, provider, work_dir, report)
            task = _wait(provider, task, report)
            if task.status == TaskState.FAILED:
                message = task.error_message or "the provider reported a failure"
                services.segment_fail(
                    segment_id=segment_id, error=f"{task.error_code or 'failed'}: {message}"
                )
                return "failed"
            raw = provider.download(task.id, work_dir / "raw.mp4")
            clip = _conform(raw, work_dir, job, segment)
            last_frame = extract_last_frame(clip, work_dir / "last.png")
            thumbnail = extract_frame(
                clip, work_dir / "thumb.jpg", segment.duration_seconds / 2, max_width=320
            )
            cost = provider.capabilities().cost(job.model, segment.render_seconds)
            with open(clip, "rb") as c, open(last_frame, "rb") as lf, open(thumbnail, "rb") as th:
                services.segment_complete(
                    segment_id=segment_id,
                    clip=File(c),
                    last_frame=File(lf),
                    thumbnail=File(th),
                    cost_usd=cost,
                )
            return "completed"
    except Abandoned:
        return "abandoned"
    except ProviderError as exc:
        if not exc.permanent:
            raise
        services.segment_fail(segment_id=segment_id, error=_provider_message(exc))
        return "failed"
    except MediaError as exc:
        services.segment_fail(segment_id=segment_id, error=f"the clip could not be processed: {exc}")
        return "failed"


def _provider_message(exc: ProviderError) -> str:
    return f"{exc.code}: {exc.message}" if exc.code else exc.message


def _submit_or_resume(segment: Segment, provider, work_dir: Path, report) -> ProviderTask:
    if segment.provider_task_id:
        # A worker died after submitting: poll the task we already paid for instead of creating another.
        return provider.poll(segment.provider_task_id)
    job = segment.job
    request = RenderRequest(
        prompt=segment.prompt,
        seconds=segment.render_seconds or segment.duration_seconds,
        size=job.size,
        fps=job.fps,
        model=job.model,
        reference_image=_reference_for(segment, work_dir),
        segment_index=segment.index,
        segment_count=job.segments.count(),
        job_key=str(job.id),
    )
    task = provider.submit(request, on_progress=report)
    services.segment_set_provider_task(segment_id=segment.id, task_id=task.id, provider_status=task.status)
    return task


def _wait(provider, task: ProviderTask, report) -> ProviderTask:
    delay = POLL_MIN_SECONDS
    while not task.done:
        report(task.progress, task.status)
        time.sleep(task.poll_after if task.poll_after is not None else delay)
        delay = min(delay * 1.5, POLL_MAX_SECONDS)
        task = provider.poll(task.id)
    return task


def _conform(raw: Path, work_dir: Path, job: VideoJob, segment: Segment) -> Path:
    """Bring the clip to the job's format and the segment's planned length, re-encoding only if needed,
    so that assembly is always a stream copy."""
    target = ClipTarget.from_size(job.size, job.fps)
    info = probe(raw)
    half_frame = 0.5 / job.fps
    if not differences(info, target) and abs(info.duration - segment.duration_seconds) <= half_frame:
        return raw
    out = work_dir / "clip.mp4"
    conform_clip(raw, out, target, duration=segment.duration_seconds)
    return out


def assemble_job(*, job_id: str, generation: int) -> str:
    """Join the finished clips into the job's video. Returns completed, failed or skipped."""
    job = VideoJob.objects.filter(id=job_id).first()
    if job is None or job.render_generation != generation:
        return "skipped"
    if job.status not in {JobStatus.QUEUED, JobStatus.RENDERING}:
        return "skipped"
    segments = list(job.segments.order_by("index"))
    unfinished = [s for s in segments if s.status != SegmentStatus.COMPLETED]
    if unfinished:
        first = unfinished[0]
        reason = first.error or f"it is {first.status}"
        services.job_fail(
            job_id=job.id,
            error=(
                f"{len(unfinished)} of {len(segments)} segments did not render; "
                f"segment {first.index + 1}: {reason}"
            ),
        )
        return "failed"
    job = services.job_assembly_start(job_id=job.id, generation=generation)
    if job is None:
        return "skipped"
    try:
        with tempfile.TemporaryDirectory(prefix=f"assemble-{job.id}-") as tmp:
            work_dir = Path(tmp)
            clips = [
                ClipInput(path=local_copy(s.clip.name, work_dir), duration=s.duration_seconds)
                for s in segments
            ]
            out = work_dir / "video.mp4"
            result = assemble(
                clips,
                out,
                ClipTarget.from_size(job.size, job.fps),
                work_dir=work_dir / "conform",
                on_progress=lambda f: services.job_assembly_progress(job_id=job.id, fraction=f * 0.9),
            )
            poster = make_poster(result.path, work_dir / "poster.jpg")
            with open(result.path, "rb") as video, open(poster, "rb") as image:
                services.job_complete(
                    job_id=job.id, output=File(video), poster=File(image), duration=result.duration
                )
        return "completed"
    except (MediaError, OSError) as exc:
        services.job_fail(job_id=job.id, error=f"assembly failed: {exc}")
        return "failed"
