"""Every write to the domain. Views, admin actions, commands and tasks call these; nothing else changes
state.

Each transition claims its row with a conditional UPDATE (`filter(id=..., status__in=FROM).update(...)`)
so two workers (or a request and a worker) can never both win, and raises IllegalTransition otherwise.
Events are published only after commit. No row lock is ever held across a provider call or ffmpeg run.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, BinaryIO

from django.conf import settings
from django.core.files.base import File
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from realtime.broadcast import FRAME_PROGRESS, JOB_ASSEMBLY, JOB_STATUS, publish_after_commit
from rendering.providers.base import CapabilityError
from rendering.providers.registry import get_provider
from segmentation.registry import segment_prompt
from segmentation.types import SegmentationContext, SegmentationError

from . import budget, ledger
from .errors import IllegalTransition, InvalidInput, NotFound
from .models import (
    Continuity,
    JobStatus,
    ReferenceFit,
    ReferenceImage,
    Segment,
    SegmentStatus,
    SpendKind,
    VideoJob,
)
from .uploads import check_reference_image

log = logging.getLogger(__name__)

# Which status may follow which. Anything else is an IllegalTransition.
JOB_TRANSITIONS: dict[str, set[str]] = {
    JobStatus.DRAFT: {JobStatus.QUEUED, JobStatus.CANCELLED},
    JobStatus.QUEUED: {JobStatus.RENDERING, JobStatus.FAILED, JobStatus.CANCELLED},
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
    SegmentStatus.FAILED: {SegmentStatus.QUEUED},
    SegmentStatus.CANCELLED: {SegmentStatus.QUEUED},
}

# The share of job progress given to rendering; assembly takes the rest.
RENDER_SHARE = 90.0


def _lock_job_of_segment(segment_id: int) -> uuid.UUID | None:
    """Lock the job row of a segment, first thing in a transaction.

    One lock order everywhere (the job, then its segments) is what keeps a cancel or a render request
    (which claim the job, then update segments) from deadlocking against a worker that updates a
    segment and then its job. On SQLite this is a no-op; SQLite serialises writers anyway.
    """
    # One query: find the segment's job and lock only the job's row (`of=("self",)`).
    return (
        VideoJob.objects.select_for_update(of=("self",))
        .filter(segments__id=segment_id)
        .values_list("id", flat=True)
        .first()
    )


def _sources(transitions: dict[str, set[str]], target: str) -> set[str]:
    return {source for source, targets in transitions.items() if target in targets}


def _claim_job(job_id: uuid.UUID | str, target: str, **fields: Any) -> VideoJob:
    """Move a job to `target` if its current status allows it; raise IllegalTransition otherwise."""
    allowed = _sources(JOB_TRANSITIONS, target)
    updated = VideoJob.objects.filter(id=job_id, status__in=allowed).update(
        status=target, updated_at=timezone.now(), **fields
    )
    job = VideoJob.objects.filter(id=job_id).first()
    if job is None:
        raise NotFound(f"video job {job_id} does not exist")
    if updated != 1:
        raise IllegalTransition(f"job {job_id} is {job.status}; it cannot become {target}")
    return job


def _claim_segment(
    segment_id: int, target: str, *, allowed: Iterable[str] | None = None, **fields: Any
) -> Segment:
    sources = set(allowed) if allowed is not None else _sources(SEGMENT_TRANSITIONS, target)
    updated = Segment.objects.filter(id=segment_id, status__in=sources).update(
        status=target, updated_at=timezone.now(), **fields
    )
    segment = Segment.objects.select_related("job").filter(id=segment_id).first()
    if segment is None:
        raise NotFound(f"segment {segment_id} does not exist")
    if updated != 1:
        raise IllegalTransition(
            f"segment {segment.index + 1} of job {segment.job_id} is {segment.status}; "
            f"it cannot become {target}"
        )
    return segment


# --- Creation ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    billed_seconds: float
    cost_usd: Decimal
    render_seconds: list[float]
    price_per_second: Decimal
    model: str


def estimate_for(provider_name: str, model: str, durations: Sequence[float], size: str = "") -> Estimate:
    """Billed seconds and cost for segments of `durations` on a provider/model; no provider call."""
    provider = get_provider(provider_name)
    caps = provider.capabilities()
    chosen = caps.check_model(model)
    render_seconds = [caps.billed_seconds(d) for d in durations]
    cost = sum((caps.cost(chosen, s, size) for s in render_seconds), Decimal("0"))
    return Estimate(
        billed_seconds=round(sum(render_seconds), 3),
        cost_usd=cost.quantize(Decimal("0.0001")),
        render_seconds=render_seconds,
        price_per_second=caps.price(chosen, size),
        model=chosen,
    )


def _segmentation_context(manual_prompts: Sequence[str]) -> SegmentationContext:
    return SegmentationContext(
        manual_prompts=tuple(manual_prompts),
        max_segment_prompt_chars=settings.MAX_SEGMENT_PROMPT_CHARS,
        min_duration_seconds=settings.MIN_DURATION_SECONDS,
        max_duration_seconds=settings.MAX_DURATION_SECONDS,
        min_segment_seconds=settings.MIN_SEGMENT_SECONDS,
        max_segment_seconds=settings.MAX_SEGMENT_SECONDS,
        max_prompt_chars=settings.MAX_JOB_PROMPT_CHARS,
    )


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool):
        raise InvalidInput(f"{field} must be a number of seconds", field=field)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{field} must be a number of seconds, got {value!r}", field=field) from None
    if not math.isfinite(number):
        raise InvalidInput(f"{field} must be a finite number of seconds", field=field)
    return number


def video_job_create(
    *,
    owner: Any,
    prompt: str,
    duration_seconds: float,
    segment_seconds: float | None = None,
    strategy: str = "even",
    manual_prompts: Sequence[str] = (),
    continuity: str = Continuity.PARALLEL,
    reference_fit: str = ReferenceFit.COVER,
    provider: str | None = None,
    model: str = "",
    size: str | None = None,
    fps: int | None = None,
    title: str = "",
    use_cache: bool = True,
) -> VideoJob:
    """Validate everything, plan the segments and store the job (status draft) with them, atomically.

    `use_cache=False` makes every segment a fresh take (the render cache is not consulted). A job whose
    estimate alone is over a budget cap is refused (InvalidInput field "budget")."""
    if continuity not in Continuity.values:
        raise InvalidInput(
            f"unknown continuity {continuity!r}; choose one of: {', '.join(Continuity.values)}",
            field="continuity",
        )
    if reference_fit not in ReferenceFit.values:
        raise InvalidInput(
            f"unknown reference_fit {reference_fit!r}; choose one of: {', '.join(ReferenceFit.values)}",
            field="reference_fit",
        )
    fps = settings.DEFAULT_FPS if fps is None else fps
    if isinstance(fps, bool) or not isinstance(fps, int) or not 1 <= fps <= 120:
        raise InvalidInput("fps must be a whole number from 1 to 120", field="fps")
    checked = _validate_and_plan(
        prompt=prompt,
        duration_seconds=duration_seconds,
        segment_seconds=segment_seconds,
        strategy=strategy,
        manual_prompts=manual_prompts,
        provider=provider,
        model=model,
        size=size,
    )
    plan = checked.plan
    budget.check_estimate(
        estimate_usd=plan.cost_usd,
        billed_seconds=plan.billed_seconds,
        price_per_second=plan.price_per_second,
    )

    with transaction.atomic():
        job = VideoJob.objects.create(
            owner=owner,
            title=title[:200],
            prompt=prompt,
            duration_seconds=checked.duration,
            segment_seconds=checked.segment_seconds,
            strategy=strategy,
            continuity=continuity,
            reference_fit=reference_fit,
            provider=plan.provider,
            model=plan.model,
            size=plan.size,
            fps=fps,
            cost_estimate_usd=plan.cost_usd,
            billed_seconds_estimate=plan.billed_seconds,
            use_cache=bool(use_cache),
            # e.g. the llm planner's fallback to `sentences`, for the person to see.
            notices=checked.notices,
        )
        Segment.objects.bulk_create(
            Segment(
                job=job,
                index=planned.index,
                prompt=planned.prompt,
                is_manual=planned.is_manual,
                start_seconds=planned.start_seconds,
                end_seconds=planned.end_seconds,
                render_seconds=planned.render_seconds,
            )
            for planned in plan.segments
        )
    return job


def reference_image_add(
    *, job: VideoJob, upload: BinaryIO, segment_index: int | None = None
) -> ReferenceImage:
    """Attach a validated image to the job, or to one of its segments."""
    if job.is_active:
        raise IllegalTransition(
            f"job {job.id} is {job.status}; reference images cannot change while it renders"
        )
    segment = None
    if segment_index is not None:
        segment = job.segments.filter(index=segment_index).first()
        if segment is None:
            raise InvalidInput(
                f"segment_index {segment_index} does not exist; this job has segments 0 to "
                f"{job.segments.count() - 1}",
                field="segment_index",
            )
    checked = check_reference_image(upload)
    image = ReferenceImage(
        job=job,
        segment=segment,
        content_type=checked.content_type,
        width=checked.width,
        height=checked.height,
        size_bytes=checked.size_bytes,
        sha256=checked.sha256,
    )
    image.image.save(f"{checked.sha256[:16]}.{checked.extension}", File(upload), save=False)
    try:
        image.save()
    except Exception:
        image.image.delete(save=False)
        raise
    return image


# --- Rendering lifecycle ----------------------------------------------------------------------------


def _job_status_payload(job: VideoJob | uuid.UUID | str) -> dict[str, Any]:
    if not isinstance(job, VideoJob):
        job = VideoJob.objects.get(id=job)
    return {
        "status": job.status,
        "progress": round(job.progress, 1),
        "output_url": job.output_video.url if job.output_video else None,
        "poster_url": job.poster_image.url if job.poster_image else None,
        "error": job.error,
    }


def _segment_payload(segment: Segment) -> dict[str, Any]:
    # Thumbnail and clip URLs ride along so a page can show a finished segment without a re-read.
    return {
        "index": segment.index,
        "status": segment.status,
        "progress": round(segment.progress, 1),
        "attempt": segment.attempts,
        "provider_status": segment.provider_status,
        "error": segment.error,
        "thumbnail_url": segment.thumbnail.url if segment.thumbnail else None,
        "clip_url": segment.clip.url if segment.clip else None,
    }


def _start(
    job: VideoJob, segment_filter: dict[str, Any], *, from_statuses: set[str]
) -> tuple[VideoJob, list[int]]:
    """Queue the chosen segments of `job` and hand them to the task runner after commit."""
    from rendering.dispatch import enqueue_render  # rendering depends on jobs; import at use

    if (
        job.continuity == Continuity.REFERENCE
        and not job.reference_images.filter(segment__isnull=True).exists()
    ):
        raise InvalidInput("continuity 'reference' needs a reference image for the job", field="continuity")
    with transaction.atomic():
        job = _claim_job(
            job.id,
            JobStatus.QUEUED,
            render_generation=F("render_generation") + 1,
            error="",
            finished_at=None,
            started_at=timezone.now(),
        )
        segments = job.segments.filter(status__in=from_statuses, **segment_filter)
        segment_ids = list(segments.values_list("id", flat=True))
        # Refused (InvalidInput "budget") before anything is queued, so no provider call is made.
        budget.check_run(job=job, segment_ids=segment_ids)
        # With no segment to render (a retry after an assembly failure) the run goes straight to assembly.
        segments.update(
            status=SegmentStatus.QUEUED,
            progress=0.0,
            error="",
            # A fresh take: never resume a provider task of an earlier run.
            provider_task_id="",
            provider_status="",
            updated_at=timezone.now(),
        )
        _recompute_progress(job.id)
        job.refresh_from_db()
        generation = job.render_generation
        publish_after_commit(job.id, JOB_STATUS, _job_status_payload(job))
        # Each re-queued segment says so, so a watching page resets its timeline without a re-read.
        for segment in Segment.objects.filter(id__in=segment_ids):
            publish_after_commit(job.id, FRAME_PROGRESS, _segment_payload(segment))
        transaction.on_commit(lambda: enqueue_render(job.id, generation))
    return job, segment_ids


def video_job_render(*, job: VideoJob) -> VideoJob:
    """Start rendering a draft (or cancelled) job: every segment not yet completed is queued."""
    if job.status not in {JobStatus.DRAFT, JobStatus.CANCELLED}:
        raise IllegalTransition(
            f"job {job.id} is {job.status}; only a draft or cancelled job can be rendered"
        )
    startable = {SegmentStatus.PENDING, SegmentStatus.FAILED, SegmentStatus.CANCELLED}
    job, _ = _start(job, {}, from_statuses=startable)
    return job


def video_job_retry(*, job: VideoJob) -> VideoJob:
    """Re-render only the segments that failed (or were skipped), then re-assemble."""
    if job.status != JobStatus.FAILED:
        raise IllegalTransition(f"job {job.id} is {job.status}; only a failed job can be retried")
    with transaction.atomic():
        # A fresh attempt budget for the segments being retried.
        job.segments.filter(status__in=[SegmentStatus.FAILED, SegmentStatus.CANCELLED]).update(attempts=0)
        job, _ = _start(
            job, {}, from_statuses={SegmentStatus.FAILED, SegmentStatus.CANCELLED, SegmentStatus.PENDING}
        )
    return job


def segment_rerender(*, job: VideoJob, indexes: Sequence[int]) -> VideoJob:
    """Render chosen segments again (a fresh take) and re-assemble the job."""
    if not indexes:
        raise InvalidInput("choose at least one segment to re-render", field="segments")
    known = set(job.segments.values_list("index", flat=True))
    missing = sorted(set(indexes) - known)
    if missing:
        raise InvalidInput(f"segments {missing} do not exist in this job", field="segments")
    if job.status not in {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}:
        raise IllegalTransition(f"job {job.id} is {job.status}; wait until it finishes before re-rendering")
    with transaction.atomic():
        # A re-render is a fresh take: the render cache is not consulted for these segments.
        job.segments.filter(index__in=indexes).update(attempts=0, bypass_cache=True)
        job, _ = _start(
            job,
            {"index__in": list(indexes)},
            from_statuses={SegmentStatus.COMPLETED, SegmentStatus.FAILED, SegmentStatus.CANCELLED},
        )
    return job


def video_job_cancel(*, job: VideoJob) -> VideoJob:
    """Stop the job: queued segments will not start; in-flight ones are abandoned when they next check."""
    with transaction.atomic():
        job = _claim_job(job.id, JobStatus.CANCELLED, finished_at=timezone.now())
        job.segments.filter(
            status__in=[SegmentStatus.PENDING, SegmentStatus.QUEUED, SegmentStatus.RENDERING]
        ).update(status=SegmentStatus.CANCELLED, updated_at=timezone.now())
        publish_after_commit(job.id, JOB_STATUS, _job_status_payload(job))
    return job


def segment_update_prompt(*, job: VideoJob, index: int, prompt: str) -> Segment:
    """A person's override of one segment's prompt; refused while that segment renders."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInput("the segment prompt must not be empty", field="prompt")
    if len(prompt) > settings.MAX_SEGMENT_PROMPT_CHARS:
        raise InvalidInput(
            f"the segment prompt is longer than {settings.MAX_SEGMENT_PROMPT_CHARS} characters",
            field="prompt",
        )
    editable = [SegmentStatus.PENDING, SegmentStatus.COMPLETED, SegmentStatus.FAILED, SegmentStatus.CANCELLED]
    with transaction.atomic():
        updated = Segment.objects.filter(job=job, index=index, status__in=editable).update(
            prompt=prompt.strip(), is_manual=True, updated_at=timezone.now()
        )
        segment = Segment.objects.filter(job=job, index=index).first()
        if segment is None:
            raise NotFound(f"segment {index} does not exist in job {job.id}")
        if updated != 1:
            raise IllegalTransition(f"segment {index} is {segment.status}; its prompt cannot change now")
    return segment


# --- Called by the rendering tasks ------------------------------------------------------------------


def segment_claim(*, segment_id: int, generation: int) -> Segment | None:
    """Claim a queued segment for rendering (attempts + 1), or resume one left rendering by a lost
    worker. Returns None when there is nothing to do: the run is stale, or the segment is settled."""
    with transaction.atomic():
        _lock_job_of_segment(segment_id)
        segment = Segment.objects.select_related("job").filter(id=segment_id).first()
        if segment is None or segment.job.render_generation != generation:
            return None
        if segment.job.status in {JobStatus.CANCELLED, JobStatus.COMPLETED, JobStatus.FAILED}:
            return None
        if segment.status == SegmentStatus.RENDERING:
            return segment  # redelivered after a crash: resume, do not count a new attempt
        try:
            segment = _claim_segment(
                segment_id,
                SegmentStatus.RENDERING,
                allowed=[SegmentStatus.QUEUED],
                attempts=F("attempts") + 1,
                error="",
            )
        except IllegalTransition:
            return None
        started = VideoJob.objects.filter(id=segment.job_id, status=JobStatus.QUEUED).update(
            status=JobStatus.RENDERING, updated_at=timezone.now()
        )
        segment.refresh_from_db()
        publish_after_commit(segment.job_id, FRAME_PROGRESS, _segment_payload(segment))
        if started:
            publish_after_commit(segment.job_id, JOB_STATUS, _job_status_payload(segment.job_id))
    return segment


def segment_set_provider_task(*, segment_id: int, task_id: str, provider_status: str = "") -> None:
    """Store the provider's task id before polling, so a restarted worker resumes instead of paying again."""
    with transaction.atomic():
        updated = Segment.objects.filter(id=segment_id, status=SegmentStatus.RENDERING).update(
            provider_task_id=task_id, provider_status=provider_status, updated_at=timezone.now()
        )
        if updated != 1:
            raise IllegalTransition(f"segment {segment_id} is no longer rendering")


def segment_progress(*, segment_id: int, progress: float, provider_status: str = "") -> bool:
    """Record progress; returns False when the segment is no longer rendering (cancelled: stop work)."""
    progress = max(0.0, min(100.0, float(progress)))
    with transaction.atomic():
        _lock_job_of_segment(segment_id)
        updated = Segment.objects.filter(id=segment_id, status=SegmentStatus.RENDERING).update(
            progress=progress,
            provider_status=provider_status or F("provider_status"),
            updated_at=timezone.now(),
        )
        if updated != 1:
            return False
        segment = Segment.objects.get(id=segment_id)
        _recompute_progress(segment.job_id)
        publish_after_commit(segment.job_id, FRAME_PROGRESS, _segment_payload(segment))
    return True


def segment_complete(
    *,
    segment_id: int,
    clip: File,
    last_frame: File | None,
    thumbnail: File | None,
    cost_usd: Decimal,
    cache_key: str = "",
    cached_from_id: int | None = None,
    saved_usd: Decimal = Decimal("0"),
) -> Segment:
    """Store the finished clip (and its last frame and thumbnail) and mark the segment completed.

    The spend ledger gets a `render` line for `cost_usd`, or, for a clip reused from the render cache
    (`cached_from_id`), a `cache_saving` line for `saved_usd`, in the same transaction."""
    segment = Segment.objects.select_related("job").get(id=segment_id)
    if segment.status != SegmentStatus.RENDERING:
        raise IllegalTransition(f"segment {segment.index + 1} is {segment.status}; it cannot complete")
    old_files = [f.name for f in (segment.clip, segment.last_frame, segment.thumbnail) if f]
    # Files are written under fresh names before the row changes, so a reader never sees a torn clip.
    tag = uuid.uuid4().hex[:8]
    segment.clip.save(f"{segment.index:04d}-{tag}.mp4", clip, save=False)
    if last_frame is not None:
        segment.last_frame.save(f"{segment.index:04d}-{tag}-last.png", last_frame, save=False)
    if thumbnail is not None:
        segment.thumbnail.save(f"{segment.index:04d}-{tag}-thumb.jpg", thumbnail, save=False)
    new_files = [f.name for f in (segment.clip, segment.last_frame, segment.thumbnail) if f]
    try:
        with transaction.atomic():
            _lock_job_of_segment(segment_id)
            segment = _claim_segment(
                segment_id,
                SegmentStatus.COMPLETED,
                allowed=[SegmentStatus.RENDERING],
                clip=segment.clip.name,
                last_frame=segment.last_frame.name if last_frame is not None else "",
                thumbnail=segment.thumbnail.name if thumbnail is not None else "",
                progress=100.0,
                provider_status="completed",
                cost_usd=F("cost_usd") + cost_usd,
                error="",
                cache_key=cache_key,
                cached_from_id=cached_from_id,
            )
            VideoJob.objects.filter(id=segment.job_id).update(cost_spent_usd=F("cost_spent_usd") + cost_usd)
            ledger.record(segment=segment, kind=SpendKind.RENDER, amount_usd=cost_usd)
            if cached_from_id is not None:
                ledger.record(
                    segment=segment,
                    kind=SpendKind.CACHE_SAVING,
                    amount_usd=saved_usd,
                    provider_task_id="",
                    note=f"reused the clip of segment {cached_from_id}",
                )
            _recompute_progress(segment.job_id)
            publish_after_commit(segment.job_id, FRAME_PROGRESS, _segment_payload(segment))
    except Exception:
        _delete_files(new_files)
        raise
    transaction.on_commit(lambda: _delete_files(old_files))
    return segment


def segment_fail(*, segment_id: int, error: str, cost_usd: Decimal = Decimal("0")) -> Segment | None:
    """Mark a rendering (or queued) segment failed with the reason a person will read."""
    with transaction.atomic():
        _lock_job_of_segment(segment_id)
        try:
            segment = _claim_segment(
                segment_id,
                SegmentStatus.FAILED,
                allowed=[SegmentStatus.RENDERING, SegmentStatus.QUEUED],
                error=error[:4000],
                cost_usd=F("cost_usd") + cost_usd,
            )
        except IllegalTransition:
            return None
        if cost_usd:
            VideoJob.objects.filter(id=segment.job_id).update(cost_spent_usd=F("cost_spent_usd") + cost_usd)
            ledger.record(segment=segment, kind=SpendKind.WASTED, amount_usd=cost_usd, note=error)
        segment.refresh_from_db()
        publish_after_commit(segment.job_id, FRAME_PROGRESS, _segment_payload(segment))
    return segment


def segment_skip(*, segment_id: int, reason: str) -> None:
    """A chained segment whose predecessor did not complete cannot start: it is cancelled, to be retried."""
    with transaction.atomic():
        updated = Segment.objects.filter(
            id=segment_id, status__in=[SegmentStatus.QUEUED, SegmentStatus.PENDING]
        ).update(status=SegmentStatus.CANCELLED, error=reason, updated_at=timezone.now())
        if updated:
            segment = Segment.objects.get(id=segment_id)
            publish_after_commit(segment.job_id, FRAME_PROGRESS, _segment_payload(segment))


def job_assembly_start(*, job_id: uuid.UUID | str, generation: int) -> VideoJob | None:
    """Claim the job for assembly; None when the run is stale or the job is no longer rendering."""
    with transaction.atomic():
        job = VideoJob.objects.filter(id=job_id).first()
        if job is None or job.render_generation != generation:
            return None
        if job.segments.exclude(status=SegmentStatus.COMPLETED).exists():
            raise IllegalTransition(f"job {job_id} still has segments that are not completed")
        # A job whose every segment was already done (e.g. retry after an assembly failure) may go
        # straight from queued to assembling.
        if job.status == JobStatus.ASSEMBLING:
            # A redelivered or reaped assembly after the assembler died: assemble again (the output is
            # written under a new name and claimed once by job_complete).
            return job
        updated = VideoJob.objects.filter(
            id=job_id, status__in=[JobStatus.RENDERING, JobStatus.QUEUED], render_generation=generation
        ).update(status=JobStatus.ASSEMBLING, updated_at=timezone.now())
        if updated != 1:
            return None
        job.refresh_from_db()
        publish_after_commit(job.id, JOB_STATUS, _job_status_payload(job))
    return job


def job_assembly_progress(*, job_id: uuid.UUID | str, fraction: float) -> None:
    progress = RENDER_SHARE + (100.0 - RENDER_SHARE) * max(0.0, min(1.0, fraction))
    with transaction.atomic():
        VideoJob.objects.filter(id=job_id, status=JobStatus.ASSEMBLING).update(progress=min(progress, 99.9))
        publish_after_commit(job_id, JOB_ASSEMBLY, {"progress": round(fraction * 100, 1)})


def job_complete(*, job_id: uuid.UUID | str, output: File, poster: File | None, duration: float) -> VideoJob:
    job = VideoJob.objects.get(id=job_id)
    if job.status != JobStatus.ASSEMBLING:
        raise IllegalTransition(f"job {job_id} is {job.status}; it cannot complete")
    old_files = [f.name for f in (job.output_video, job.poster_image) if f]
    tag = uuid.uuid4().hex[:8]
    job.output_video.save(f"video-{tag}.mp4", output, save=False)
    if poster is not None:
        job.poster_image.save(f"poster-{tag}.jpg", poster, save=False)
    new_files = [f.name for f in (job.output_video, job.poster_image) if f]
    try:
        with transaction.atomic():
            job = _claim_job(
                job_id,
                JobStatus.COMPLETED,
                output_video=job.output_video.name,
                poster_image=job.poster_image.name if poster is not None else "",
                output_duration_seconds=duration,
                progress=100.0,
                error="",
                finished_at=timezone.now(),
            )
            publish_after_commit(job.id, JOB_STATUS, _job_status_payload(job))
    except Exception:
        _delete_files(new_files)
        raise
    transaction.on_commit(lambda: _delete_files(old_files))
    return job


def job_fail(*, job_id: uuid.UUID | str, error: str) -> VideoJob | None:
    """Fail the job with a reason; finished clips are kept so a retry renders only what failed."""
    with transaction.atomic():
        try:
            job = _claim_job(job_id, JobStatus.FAILED, error=error[:4000], finished_at=timezone.now())
        except IllegalTransition:
            return None
        publish_after_commit(job.id, JOB_STATUS, _job_status_payload(job))
    return job


def video_job_delete(*, job: VideoJob) -> None:
    """Delete the job, its segments, references and every file they own."""
    files: list[str] = [f.name for f in (job.output_video, job.poster_image) if f]
    for segment in job.segments.all():
        files += [f.name for f in (segment.clip, segment.last_frame, segment.thumbnail) if f]
    files += [image.image.name for image in job.reference_images.all() if image.image]
    with transaction.atomic():
        list(VideoJob.objects.select_for_update().filter(id=job.id).values_list("id", flat=True))
        if job.is_active:
            video_job_cancel(job=job)
        job.delete()
    transaction.on_commit(lambda: _delete_files(files))


# --- Helpers ----------------------------------------------------------------------------------------


def _recompute_progress(job_id: uuid.UUID | str) -> None:
    """Job progress while rendering: the duration-weighted mean of its segments' progress."""
    rows = list(Segment.objects.filter(job_id=job_id).values_list("progress", "start_seconds", "end_seconds"))
    total = sum(end - start for _, start, end in rows) or 1.0
    done = sum(progress * (end - start) for progress, start, end in rows) / total
    VideoJob.objects.filter(id=job_id, status__in=[JobStatus.QUEUED, JobStatus.RENDERING]).update(
        progress=round(RENDER_SHARE * done / 100.0, 2)
    )


def _delete_files(names: Iterable[str]) -> None:
    from django.core.files.storage import default_storage

    for name in names:
        try:
            default_storage.delete(name)
        except Exception:  # a leftover file is harmless; a crash here would undo nothing useful
            log.warning("could not delete %s", name, exc_info=True)


def reference_image_delete(*, image: ReferenceImage) -> None:
    """Remove a reference image and its file; refused while its job renders."""
    job = image.job
    if job.is_active:
        raise IllegalTransition(
            f"job {job.id} is {job.status}; reference images cannot change while it renders"
        )
    name = image.image.name
    with transaction.atomic():
        image.delete()
        transaction.on_commit(lambda: _delete_files([name]))


def segment_new_attempt(*, segment_id: int, reason: str, wasted_cost_usd: Decimal = Decimal("0")) -> Segment:
    """Start another provider render of a rendering segment (the last one failed or its download
    expired): forget the provider task, count the attempt and record what the lost render cost.
    Raises IllegalTransition when the attempt budget is spent (the caller then fails the segment)."""
    with transaction.atomic():
        _lock_job_of_segment(segment_id)
        segment = Segment.objects.select_for_update().select_related("job").get(id=segment_id)
        if segment.status != SegmentStatus.RENDERING:
            raise IllegalTransition(f"segment {segment.index + 1} is {segment.status}; it is not rendering")
        if wasted_cost_usd:
            VideoJob.objects.filter(id=segment.job_id).update(
                cost_spent_usd=F("cost_spent_usd") + wasted_cost_usd
            )
            ledger.record(segment=segment, kind=SpendKind.WASTED, amount_usd=wasted_cost_usd, note=reason)
        segment.cost_usd = F("cost_usd") + wasted_cost_usd
        exhausted = segment.attempts >= settings.SEGMENT_MAX_ATTEMPTS
        if exhausted:
            # The wasted cost is kept (it was spent) even though no new attempt starts.
            segment.save(update_fields=["cost_usd"])
    if exhausted:
        raise IllegalTransition(
            f"segment {segment.index + 1} used all {settings.SEGMENT_MAX_ATTEMPTS} attempts; last: {reason}"
        )
    with transaction.atomic():
        _lock_job_of_segment(segment_id)
        segment = Segment.objects.select_for_update().select_related("job").get(id=segment_id)
        if segment.status != SegmentStatus.RENDERING:
            raise IllegalTransition(f"segment {segment.index + 1} is {segment.status}; it is not rendering")
        segment.attempts = F("attempts") + 1
        segment.provider_task_id = ""
        segment.provider_status = "resubmitting"
        segment.progress = 0.0
        segment.error = reason[:4000]
        segment.save(
            update_fields=["cost_usd", "attempts", "provider_task_id", "provider_status", "progress", "error"]
        )
        segment.refresh_from_db()
        publish_after_commit(segment.job_id, FRAME_PROGRESS, _segment_payload(segment))
    return segment


# --- Plans and estimates without storing (the API's live estimate) ---------------------------------


@dataclass(frozen=True)
class PlannedSegment:
    index: int
    prompt: str
    is_manual: bool
    start_seconds: float
    end_seconds: float
    render_seconds: float
    cost_usd: Decimal

    @property
    def planned_seconds(self) -> float:
        return round(self.end_seconds - self.start_seconds, 3)

    @property
    def trimmed_seconds(self) -> float:
        # Rendered (and billed) beyond the plan; cut at assembly.
        return round(self.render_seconds - self.planned_seconds, 3)


@dataclass(frozen=True)
class Plan:
    provider: str
    model: str
    size: str
    price_per_second: Decimal
    billed_seconds: float
    cost_usd: Decimal
    segments: list[PlannedSegment]

    @property
    def planned_seconds(self) -> float:
        return round(sum(s.planned_seconds for s in self.segments), 3)

    @property
    def trimmed_seconds(self) -> float:
        return round(self.billed_seconds - self.planned_seconds, 3)


def _plan_from(
    provider_name: str, model: str, size: str, rows: Sequence[tuple[int, str, bool, float, float]]
) -> Plan:
    """rows: (index, prompt, is_manual, start, end). Raises CapabilityError for what the provider lacks."""
    caps = get_provider(provider_name).capabilities()
    estimate = estimate_for(provider_name, model, [end - start for _, _, _, start, end in rows], size)
    segments = [
        PlannedSegment(
            index=index,
            prompt=prompt,
            is_manual=is_manual,
            start_seconds=start,
            end_seconds=end,
            render_seconds=render_seconds,
            cost_usd=caps.cost(estimate.model, render_seconds, size),
        )
        for (index, prompt, is_manual, start, end), render_seconds in zip(
            rows, estimate.render_seconds, strict=True
        )
    ]
    return Plan(
        provider=provider_name,
        model=estimate.model,
        size=size,
        price_per_second=estimate.price_per_second,
        billed_seconds=estimate.billed_seconds,
        cost_usd=estimate.cost_usd,
        segments=segments,
    )


@dataclass(frozen=True)
class _CheckedInput:
    duration: float
    segment_seconds: float
    plan: Plan
    notices: list[str]


def _validate_and_plan(
    *,
    prompt: str,
    duration_seconds: float,
    segment_seconds: float | None,
    strategy: str,
    manual_prompts: Sequence[str],
    provider: str | None,
    model: str,
    size: str | None,
) -> _CheckedInput:
    """The validation and planning that creating a job and pricing a would-be job share."""
    if not isinstance(prompt, str):
        raise InvalidInput("prompt must be text", field="prompt")
    duration = _number(duration_seconds, "duration_seconds")
    seg_len = _number(
        settings.DEFAULT_SEGMENT_SECONDS if segment_seconds is None else segment_seconds, "segment_seconds"
    )
    if manual_prompts and strategy != "manual":
        raise InvalidInput("segment prompts were given but the strategy is not 'manual'", field="segments")
    if any(not isinstance(p, str) for p in manual_prompts):
        raise InvalidInput("every segment prompt must be text", field="segments")
    provider_name = provider or settings.DEFAULT_PROVIDER
    size = size or settings.DEFAULT_VIDEO_SIZE
    context = _segmentation_context(manual_prompts)
    try:
        specs = segment_prompt(strategy, prompt, duration, seg_len, context)
        caps = get_provider(provider_name).capabilities()
        chosen_model = caps.check_model(model)
        caps.check_size(size, chosen_model)
        too_long = [s.index + 1 for s in specs if len(s.prompt) > caps.max_prompt_chars]
        if too_long:
            raise InvalidInput(
                f"segment prompts {too_long} exceed this provider's {caps.max_prompt_chars}-character limit",
                field="segments",
            )
        plan = _plan_from(
            provider_name,
            chosen_model,
            size,
            [(s.index, s.prompt, s.is_manual, s.start_seconds, s.end_seconds) for s in specs],
        )
    except SegmentationError as exc:
        raise InvalidInput(exc.message, field=exc.field) from None
    except CapabilityError as exc:
        raise InvalidInput(exc.message, field=exc.field) from None
    return _CheckedInput(duration, seg_len, plan, [str(n) for n in context.extra.get("notices", [])])


def video_job_plan(
    *,
    prompt: str,
    duration_seconds: float,
    segment_seconds: float | None = None,
    strategy: str = "even",
    manual_prompts: Sequence[str] = (),
    provider: str | None = None,
    model: str = "",
    size: str | None = None,
) -> Plan:
    """The segments and estimate video_job_create would store for these inputs, validated the same way;
    nothing is written. Raises InvalidInput."""
    return _validate_and_plan(
        prompt=prompt,
        duration_seconds=duration_seconds,
        segment_seconds=segment_seconds,
        strategy=strategy,
        manual_prompts=manual_prompts,
        provider=provider,
        model=model,
        size=size,
    ).plan


def video_job_estimate(*, job: VideoJob) -> Plan:
    """Billed seconds and cost of rendering `job`'s planned segments as they stand; nothing is rendered.
    Reads job.segments.all(), so a prefetched job costs no extra query."""
    rows = [(s.index, s.prompt, s.is_manual, s.start_seconds, s.end_seconds) for s in job.segments.all()]
    try:
        return _plan_from(job.provider, job.model, job.size, rows)
    except CapabilityError as exc:
        # The job was valid when stored; the provider's configuration has changed since.
        raise InvalidInput(exc.message, field=exc.field) from None


def video_job_reassemble(*, job: VideoJob) -> VideoJob:
    """Join the finished clips again (e.g. after a storage hiccup), rendering nothing."""
    if job.status not in {JobStatus.COMPLETED, JobStatus.FAILED}:
        raise IllegalTransition(f"job {job.id} is {job.status}; only a finished job can be re-assembled")
    missing = job.segments.exclude(status=SegmentStatus.COMPLETED).values_list("index", flat=True)
    if missing:
        numbers = ", ".join(str(i + 1) for i in missing)
        raise IllegalTransition(
            f"job {job.id} has segments that are not rendered ({numbers}); retry it instead"
        )
    job, _ = _start(job, {}, from_statuses=set())
    return job


def stale_work_claim(*, cutoff: datetime) -> tuple[list[tuple[str, int, int]], list[tuple[str, int]]]:
    """Claim segments and assemblies that made no progress since `cutoff`, for the reaper to re-queue.

    Each row is claimed with a conditional UPDATE that moves its `updated_at` to now, so two reapers
    never both re-queue it and it is not reaped again until another stale period has passed. Returns
    ([(job_id, segment_id, generation)], [(job_id, generation)]).
    """
    now = timezone.now()
    segments: list[tuple[str, int, int]] = []
    candidates = Segment.objects.filter(
        status__in=[SegmentStatus.QUEUED, SegmentStatus.RENDERING],
        updated_at__lt=cutoff,
        job__status__in=[JobStatus.QUEUED, JobStatus.RENDERING],
    ).values_list("id", "job_id", "job__render_generation")
    for segment_id, job_id, generation in candidates:
        if Segment.objects.filter(id=segment_id, updated_at__lt=cutoff).update(updated_at=now) == 1:
            segments.append((str(job_id), segment_id, generation))
    assemblies: list[tuple[str, int]] = []
    for job_id, generation in VideoJob.objects.filter(
        status=JobStatus.ASSEMBLING, updated_at__lt=cutoff
    ).values_list("id", "render_generation"):
        if VideoJob.objects.filter(id=job_id, updated_at__lt=cutoff).update(updated_at=now) == 1:
            assemblies.append((str(job_id), generation))
    return segments, assemblies
