"""The commands people issue: submit a job, attach or remove a reference image, render, retry,
re-render, cancel, re-assemble, edit a segment, delete. Views, admin actions and the CLI call these;
the workers' side of the state machine is jobs.render_state.

Each command checks and plans outside any transaction (jobs.planning may call a planning model over
HTTP), then writes in one. Moves are claimed through jobs.transitions, so a command racing a worker
loses cleanly with IllegalTransition (409) instead of corrupting state. Work leaves for the workers
through jobs.work_queue after commit; events through jobs.events after commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, BinaryIO

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from sora_controller.compiled_queries import CompiledInsert

from . import budget, leases, selectors
from .errors import IllegalTransition, InvalidInput, NotFound
from .events import JOB_STATUS, SEGMENT_STATE, job_status, publish_after_commit, segment_state
from .files import delete_files, delete_files_after_commit
from .models import (
    ACTIVE_JOB_STATUSES,
    EDITABLE_SEGMENT_STATUSES,
    UNFINISHED_SEGMENT_STATUSES,
    UNSETTLED_SEGMENT_STATUSES,
    Continuity,
    JobStatus,
    ReferenceImage,
    Segment,
    SegmentStatus,
    Take,
    VideoJob,
)
from .planning import CheckedJob, JobSpec, Plan, plan_job
from .previews import preview_names
from .render_state import recompute_progress
from .transitions import SEGMENT_TRANSITIONS, check_move, claim_job, claim_segment
from .uploads import CheckedImage, check_reference_image
from .work_queue import start_run_after_commit

# Which segments each command hands to the workers (checked against the graph at import).
RENDER_FROM = frozenset({SegmentStatus.PENDING, *UNFINISHED_SEGMENT_STATUSES})
RETRY_FROM = RENDER_FROM
RERENDER_FROM = frozenset({SegmentStatus.COMPLETED, *UNFINISHED_SEGMENT_STATUSES})
for _from in (RENDER_FROM, RERENDER_FROM):
    check_move(SEGMENT_TRANSITIONS, _from, SegmentStatus.QUEUED)
check_move(SEGMENT_TRANSITIONS, UNSETTLED_SEGMENT_STATUSES, SegmentStatus.CANCELLED)
# A person picks a take of a settled segment: never of one the workers hold.
PICK_FROM = frozenset({SegmentStatus.COMPLETED, *UNFINISHED_SEGMENT_STATUSES})
check_move(SEGMENT_TRANSITIONS, PICK_FROM, SegmentStatus.COMPLETED)


# --- Submitting a job -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceUpload:
    """An image to attach at submission: to the job, or to the segment at `segment_index`."""

    file: BinaryIO
    segment_index: int | None = None
    # Where a refusal of this image is filed in the caller's error body (the API's multipart create names
    # its parts reference_image.0, reference_image.1, ...).
    field: str = "image"


def video_job_submit(
    *,
    owner: Any,
    spec: JobSpec,
    references: Sequence[ReferenceUpload] = (),
    render: bool = False,
    also: Callable[[VideoJob], None] | None = None,
    attach_written: bool = False,
) -> VideoJob:
    """Plan `spec`, check its images, then store the job with its segments and images, run `also(job)`
    (what another app stores with it, e.g. a callback URL) and (when `render`) queue it, all in one
    transaction: a refusal anywhere (a bad image, a budget cap, a reference mode with no image, the
    other app's part) leaves nothing behind. The one path for the API, the CLI and the page.

    `attach_written`: a draft (nothing rendered) comes back with the rows written here attached as
    job.segments.all() and job.reference_images.all(), as the detail selector loads them, so an answer
    needs no read-back. Only for answering: those lists do not follow later changes made through the job.
    """
    checked = plan_job(spec)  # outside any transaction: the llm planner may take seconds
    images = [(upload, check_reference_image(upload.file, field=upload.field)) for upload in references]
    stored: list[ReferenceImage] = []
    # A draft alone is one atomic write (_store_job): no transaction of its own, which would cost two
    # round trips (BEGIN, COMMIT). Inside the caller's transaction it still gets its savepoint, so a
    # refusal leaves that transaction usable as before.
    alone = not images and also is None and not render and not transaction.get_connection().in_atomic_block
    try:
        with nullcontext() if alone else transaction.atomic():
            job, segments = _store_job(owner, checked)
            for upload, image in images:
                stored.append(_store_image(job, image, upload.segment_index))
            if also is not None:
                also(job)
            if render:
                return video_job_render(job=job)
    except Exception:
        delete_files([image.image.name for image in stored])  # the rows went with the rollback
        raise
    if attach_written:
        selectors.attach_prefetched(job, "segments", segments)
        selectors.attach_prefetched(job, "reference_images", stored)
    return job


def video_job_create(*, owner: Any, **fields: Any) -> VideoJob:
    """A draft job from the JobSpec fields given as keywords (nothing rendered)."""
    return video_job_submit(owner=owner, spec=JobSpec(**fields))


# The job and its segments in one statement on PostgreSQL (sora_controller.compiled_queries).
_JOB_WITH_SEGMENTS = CompiledInsert(VideoJob, Segment)


def _store_job(owner: Any, checked: CheckedJob) -> tuple[VideoJob, list[Segment]]:
    """Insert the job and its planned segments, atomically on their own: one statement on PostgreSQL,
    or (another database, or a case the compiled insert leaves to the ORM) the ORM's two inserts in a
    transaction, which joins the caller's if one is open."""
    spec, plan = checked.spec, checked.plan
    job = VideoJob(
        owner=owner,
        title=spec.title,
        prompt=spec.prompt,
        duration_seconds=checked.duration_seconds,
        segment_seconds=checked.segment_seconds,
        strategy=spec.strategy or settings.DEFAULT_STRATEGY,
        continuity=spec.continuity,
        reference_fit=spec.reference_fit,
        provider=plan.provider,
        model=plan.model,
        size=plan.size,
        fps=checked.fps,
        cost_estimate_usd=plan.cost_usd,
        billed_seconds_estimate=plan.billed_seconds,
        use_cache=bool(spec.use_cache),
        fallback_models=checked.fallback_models,
        # e.g. the llm planner's fallback to `sentences`, for the person to see.
        notices=checked.notices,
    )
    segments = planned_segments(job, plan)
    if not _JOB_WITH_SEGMENTS.insert(job, segments):
        with transaction.atomic(savepoint=False):
            job.save(force_insert=True)  # as VideoJob.objects.create()
            Segment.objects.bulk_create(segments)
    return job, segments


def planned_segments(job: VideoJob, plan: Plan) -> list[Segment]:
    """The (unsaved) segment rows of `plan` for `job`: what a new job stores, and an edited draft too."""
    return [
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
    ]


# --- Reference images -------------------------------------------------------------------------------


def _refuse_while_active(job: VideoJob) -> None:
    if job.is_active:
        raise IllegalTransition(
            f"job {job.id} is {job.status}; reference images cannot change while it renders"
        )


def _check_image_caps(job: VideoJob, adding: CheckedImage) -> None:
    """Per-job caps on reference images, so one job cannot fill the media store."""
    images = list(job.reference_images.values_list("size_bytes", flat=True))
    if len(images) >= settings.UPLOAD_MAX_IMAGES_PER_JOB:
        raise InvalidInput(
            f"this job already has {len(images)} reference images; the limit is "
            f"{settings.UPLOAD_MAX_IMAGES_PER_JOB} (UPLOAD_MAX_IMAGES_PER_JOB): remove one first",
            field="image",
        )
    if sum(images) + adding.size_bytes > settings.UPLOAD_MAX_BYTES_PER_JOB:
        raise InvalidInput(
            f"this job's reference images would take more than {settings.UPLOAD_MAX_BYTES_PER_JOB} bytes "
            "(UPLOAD_MAX_BYTES_PER_JOB): remove one first",
            field="image",
        )


def _store_image(job: VideoJob, checked: CheckedImage, segment_index: int | None) -> ReferenceImage:
    segment = None
    if segment_index is not None:
        segment = job.segments.filter(index=segment_index).first()
        if segment is None:
            raise InvalidInput(
                f"segment_index {segment_index} does not exist; this job has segments 0 to "
                f"{job.segments.count() - 1}",
                field="segment_index",
            )
    _check_image_caps(job, checked)
    image = ReferenceImage(
        job=job,
        segment=segment,
        content_type=checked.content_type,
        width=checked.width,
        height=checked.height,
        size_bytes=checked.size_bytes,
        sha256=checked.sha256,
    )
    # Only the clean copy is stored (jobs.uploads): never the bytes as uploaded.
    image.image.save(f"{checked.sha256[:16]}.{checked.extension}", ContentFile(checked.content), save=False)
    try:
        image.save()
    except Exception:
        image.image.delete(save=False)
        raise
    return image


def reference_image_add(
    *, job: VideoJob, upload: BinaryIO, segment_index: int | None = None
) -> ReferenceImage:
    """Attach a validated image to the job, or to one of its segments."""
    _refuse_while_active(job)
    return _store_image(job, check_reference_image(upload), segment_index)


def reference_image_delete(*, image: ReferenceImage) -> None:
    """Remove a reference image and its file; refused while its job renders."""
    _refuse_while_active(image.job)
    name = image.image.name
    with transaction.atomic():
        image.delete()
        delete_files_after_commit([name])


# --- Runs -------------------------------------------------------------------------------------------


def _start(job: VideoJob, segments_filter: dict[str, Any], *, from_statuses: Iterable[str]) -> VideoJob:
    """Queue the chosen segments of `job` as a new run and hand the run to the workers after commit."""
    _check_continuity_inputs(job)
    with transaction.atomic():
        job = claim_job(
            job.id,
            JobStatus.QUEUED,
            render_generation=F("render_generation") + 1,
            error="",
            finished_at=None,
            started_at=timezone.now(),
        )
        segments = job.segments.filter(status__in=from_statuses, **segments_filter)
        segment_ids = list(segments.values_list("id", flat=True))
        # Refused (InvalidInput "budget") before anything is queued, so no provider call is made.
        budget.check_run(job=job, segment_ids=segment_ids)
        # With no segment to render (a re-assembly) the run goes straight to assembly.
        segments.update(
            status=SegmentStatus.QUEUED,
            progress=0.0,
            error="",
            # A fresh take: never resume a provider task of an earlier run.
            provider_task_id="",
            provider_status="",
            updated_at=timezone.now(),
            lease_token="",
            lease_expires_at=None,
            lease_waiting=False,
        )
        # If the hand-over after commit is lost (the process dies, the broker is down), the reaper
        # starts the run from this state once the lease expires.
        leases.job_expect_progress(job.id)
        job.refresh_from_db()
        job.progress = recompute_progress(job)
        status = job_status(job)
        publish_after_commit(job.id, JOB_STATUS, status)
        # Each re-queued segment says so, so a watching page resets its timeline without a re-read.
        for segment in Segment.objects.filter(id__in=segment_ids):
            publish_after_commit(job.id, SEGMENT_STATE, segment_state(segment), job=status)
        start_run_after_commit(job.id, job.render_generation)
    return job


def _check_continuity_inputs(job: VideoJob) -> None:
    """Refuse a run whose continuity mode lacks the pictures it renders from."""
    if (
        job.continuity == Continuity.REFERENCE
        and not job.reference_images.filter(segment__isnull=True).exists()
    ):
        raise InvalidInput(
            "continuity 'reference' needs a reference image for the job: send it with the job "
            "(multipart part `reference_image`) or upload it before rendering",
            field="continuity",
        )
    if job.continuity == Continuity.BRIDGE:
        # Every seam is a keyframe: segment i renders from its own image to segment i+1's.
        with_keyframe = set(
            job.reference_images.filter(segment__isnull=False).values_list("segment__index", flat=True)
        )
        missing = [i + 1 for i in range(1, job.segments.count()) if i not in with_keyframe]
        if missing:
            raise InvalidInput(
                "continuity 'bridge' renders each segment towards the next one's keyframe: upload a "
                f"reference image for segment {', '.join(map(str, missing))} (segment_index "
                f"{', '.join(str(n - 1) for n in missing)})",
                field="continuity",
            )


def video_job_render(*, job: VideoJob) -> VideoJob:
    """Start rendering a draft (or cancelled) job: every segment not yet completed is queued."""
    if job.status not in {JobStatus.DRAFT, JobStatus.CANCELLED}:
        raise IllegalTransition(
            f"job {job.id} is {job.status}; only a draft or cancelled job can be rendered"
        )
    return _start(job, {}, from_statuses=RENDER_FROM)


def video_job_retry(*, job: VideoJob) -> VideoJob:
    """Re-render only the segments that failed (or were skipped), then re-assemble."""
    if job.status != JobStatus.FAILED:
        raise IllegalTransition(f"job {job.id} is {job.status}; only a failed job can be retried")
    with transaction.atomic():
        # A fresh attempt budget for the segments being retried.
        job.segments.filter(status__in=UNFINISHED_SEGMENT_STATUSES).update(attempts=0)
        return _start(job, {}, from_statuses=RETRY_FROM)


def segment_rerender(*, job: VideoJob, indexes: Sequence[int]) -> VideoJob:
    """Render chosen segments again (a fresh take) and re-assemble the job."""
    if not indexes:
        raise InvalidInput("choose at least one segment to re-render", field="segments")
    known = set(job.segments.values_list("index", flat=True))
    missing = sorted(set(indexes) - known)
    if missing:
        raise InvalidInput(f"segments {missing} do not exist in this job", field="segments")
    if job.is_active or job.status == JobStatus.DRAFT:
        raise IllegalTransition(f"job {job.id} is {job.status}; wait until it finishes before re-rendering")
    with transaction.atomic():
        # A re-render is a fresh take: the render cache is not consulted for these segments.
        job.segments.filter(index__in=indexes).update(attempts=0, bypass_cache=True)
        return _start(job, {"index__in": list(indexes)}, from_statuses=RERENDER_FROM)


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
    return _start(job, {}, from_statuses=())


def video_job_cancel(*, job: VideoJob) -> VideoJob:
    """Stop the job: queued segments will not start; in-flight ones are abandoned when they next check."""
    with transaction.atomic():
        job = claim_job(job.id, JobStatus.CANCELLED, finished_at=timezone.now())
        # Progress back to 0: a cancelled segment has no clip, and its bar must not stay at 94%.
        job.segments.filter(status__in=UNSETTLED_SEGMENT_STATUSES).update(
            status=SegmentStatus.CANCELLED, progress=0.0, updated_at=timezone.now()
        )
        publish_after_commit(job.id, JOB_STATUS, job_status(job))
    return job


def video_job_delete(*, job: VideoJob) -> None:
    """Delete the job, its segments, references and every file they own. Its ledger lines stay (the
    money was spent), detached from the job."""
    files: list[str] = [f.name for f in (job.output_video, job.poster_image) if f]
    for segment in job.segments.all():
        files += [f.name for f in (segment.clip, segment.last_frame, segment.thumbnail) if f]
    for take in Take.objects.filter(segment__job=job):
        files += [f.name for f in (take.clip, take.last_frame, take.thumbnail) if f]
    for version in job.versions.all():
        files += [f.name for f in (version.video, version.poster) if f]
    files += [image.image.name for image in job.reference_images.all() if image.image]
    files += preview_names(job)  # the "preview so far" files (jobs.previews)
    files = list(dict.fromkeys(files))  # takes and versions share their files with the segment and job
    with transaction.atomic():
        status = (
            VideoJob.objects.select_for_update().filter(id=job.id).values_list("status", flat=True).first()
        )
        if status in ACTIVE_JOB_STATUSES:
            video_job_cancel(job=job)
        job.delete()
        delete_files_after_commit(files)


def segment_take_pick(*, job: VideoJob, index: int, number: int) -> VideoJob:
    """Use take `number` of segment `index` in the video (compare, pick, or go back to an earlier take)
    and assemble the job again from the picked takes, by stream copy: a new version, nothing rendered.
    With other segments still lacking a clip, the pick is kept for the next retry's assembly."""
    segment = job.segments.filter(index=index).first()
    if segment is None:
        raise NotFound(f"segment {index} does not exist in this job")
    take = segment.takes.filter(number=number).first()
    if take is None:
        raise NotFound(f"segment {index + 1} has no take {number}")
    with transaction.atomic():
        status = (
            VideoJob.objects.select_for_update().filter(id=job.id).values_list("status", flat=True).first()
        )
        if status in ACTIVE_JOB_STATUSES or status == JobStatus.DRAFT:
            raise IllegalTransition(f"job {job.id} is {status}; wait until it finishes before picking a take")
        segment = claim_segment(
            segment.id,
            SegmentStatus.COMPLETED,
            allowed=PICK_FROM,
            clip=take.clip.name,
            last_frame=take.last_frame.name,
            thumbnail=take.thumbnail.name,
            take_number=take.number,
            rendered_by=take.rendered_by,
            error="",
            progress=100.0,
        )
        job.refresh_from_db()
        if job.segments.exclude(status=SegmentStatus.COMPLETED).exists():
            publish_after_commit(job.id, SEGMENT_STATE, segment_state(segment), job=job_status(job))
            return job
        return _start(job, {}, from_statuses=())  # assemble the picked takes (nothing to render)


# --- Segments ---------------------------------------------------------------------------------------


def segment_update_prompt(*, job: VideoJob, index: int, prompt: str) -> Segment:
    """A person's override of one segment's prompt; refused while that segment renders."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInput("the segment prompt must not be empty", field="prompt")
    if len(prompt) > settings.MAX_SEGMENT_PROMPT_CHARS:
        raise InvalidInput(
            f"the segment prompt is longer than {settings.MAX_SEGMENT_PROMPT_CHARS} characters",
            field="prompt",
        )
    with transaction.atomic():
        updated = Segment.objects.filter(job=job, index=index, status__in=EDITABLE_SEGMENT_STATUSES).update(
            prompt=prompt.strip(), is_manual=True, updated_at=timezone.now()
        )
        segment = Segment.objects.filter(job=job, index=index).first()
        if segment is None:
            raise NotFound(f"segment {index} does not exist in job {job.id}")
        if updated != 1:
            raise IllegalTransition(f"segment {index} is {segment.status}; its prompt cannot change now")
    return segment
