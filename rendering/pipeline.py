"""What the rendering tasks do, as plain functions of ids. rendering.tasks wraps them for Celery.

render_segment: claim -> reuse a cached clip (no provider call) or take a fleet-wide provider slot ->
submit (or resume the stored provider task) -> poll (one step per call; the task re-runs it later) ->
download -> conform to the job's format and planned length -> last frame + thumbnail -> complete.
assemble_job: check every segment finished -> stream-copy concatenation -> poster -> complete.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage
from django.utils import timezone

from jobs import leases, render_state
from jobs.catalogue import ModelSpec, model_spec
from jobs.errors import IllegalTransition, NotFound
from jobs.models import Continuity, Segment, SegmentStatus, VideoJob
from rendering import cache, ratelimit
from rendering.assembly import ClipInput, assemble, conform_clip, differences, make_poster
from rendering.frames import Frame, segment_frames
from rendering.heartbeat import heartbeat
from rendering.media import MediaError, extract_last_frame_and_thumbnail, probe
from rendering.media_types import ClipTarget
from rendering.poll_schedule import Pace, next_poll_delay, observe
from rendering.providers.base import (
    PERMANENT_FAILURE_CODES,
    ProviderError,
    ProviderTask,
    RenderRequest,
    TaskState,
    VideoProvider,
)
from rendering.providers.registry import get_provider
from rendering.reference_fit import fit_reference
from rendering.storage_io import local_copy
from sora_controller import metrics

log = logging.getLogger(__name__)

# Progress is written (and broadcast) at most this often, and on every 5% step.
PROGRESS_EVERY_SECONDS = 0.5
# Shown on a segment that waits for a fleet-wide provider slot or create quota.
WAITING_STATUS = "waiting for a slot"
# What a step returns when another live run holds the segment (jobs.leases): it touched nothing.
SUPERSEDED = "superseded"


class Abandoned(Exception):
    """The segment stopped rendering under us (cancelled): stop work, record nothing."""


@dataclass(frozen=True)
class PollLater:
    """The provider is still rendering: run this step again after `delay` seconds. The task turns this
    into a Celery retry with a countdown, so a waiting segment never holds a worker slot."""

    delay: float
    # False when the step waited for a fleet-wide limit without asking the provider anything: such
    # waits must not grow the poll backoff of the render that follows.
    polled: bool = True
    # True when this step submitted a new render: the poll backoff starts again from it.
    submitted: bool = False
    # When (time.time(), so any worker can compare) the render was submitted, on the step that did it:
    # the task carries it to later steps, which estimate from it when the render will finish.
    submitted_at: float | None = None
    # What the checks so far have seen of the render's progress (rendering.poll_schedule), carried too.
    pace: Pace | None = None


def _progress_reporter(segment_id: int, lease: str, shown: tuple[float, str]) -> Callable[..., None]:
    """Writes progress the segment does not show yet (`shown`: its progress and provider status)."""
    last = {"at": 0.0, "value": -100.0, "shown": shown}

    def report(value: float, provider_status: str = TaskState.IN_PROGRESS) -> None:
        if (value, provider_status) == last["shown"]:
            return  # nothing new to show: a poll that changed nothing writes nothing
        now = time.monotonic()
        if now - last["at"] < PROGRESS_EVERY_SECONDS and value - last["value"] < 5.0:
            return
        last["at"], last["value"], last["shown"] = now, value, (value, provider_status)
        if not render_state.segment_progress(
            segment_id=segment_id, progress=value, provider_status=provider_status, token=lease
        ):
            raise Abandoned()

    return report


def _fetch(frame: Frame | None, work_dir: Path, name: str, job: VideoJob, model: ModelSpec) -> Path | None:
    """A local copy of one input picture, fitted to the job's size when the model insists."""
    if frame is None:
        return None
    folder = work_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    source = local_copy(frame.name, folder)
    if model.reference_must_match_size:
        return fit_reference(source, folder / "fitted", job.size, job.reference_fit)
    return source


def render_segment(
    *,
    segment_id: int,
    generation: int,
    lease: str,
    polls: int = 0,
    since: float = 0.0,
    pace: Pace | None = None,
) -> str | PollLater:
    """One step of the run `lease` (jobs.leases) rendering a segment: claim it (or take its next
    step), submit or poll the provider task, and once the clip is ready download, conform and complete
    it. A heartbeat renews the run's lease while the step works. `since`: when the render being polled
    was submitted (time.time(); 0 when unknown, as after a resume), and `pace` what the checks so far
    saw of its progress, for the poll schedule.

    Returns "completed", "failed", "skipped", "abandoned" or SUPERSEDED (another live run holds the
    segment: nothing was touched), or PollLater while the provider works. Raises ProviderError only for
    transient trouble (the task retries with backoff); permanent problems are recorded on the segment,
    so a fan-out always reaches assembly.
    """
    try:
        segment = render_state.segment_claim(segment_id=segment_id, generation=generation, token=lease)
    except render_state.LeaseHeld:
        return SUPERSEDED
    if segment is None:
        return "skipped"
    with heartbeat(lambda: leases.segment_beat(segment_id, lease), what=f"segment {segment_id}"):
        return _render_step(segment, lease, polls, since, pace)


def _render_step(
    segment: Segment, lease: str, polls: int, since: float, pace: Pace | None
) -> str | PollLater:
    segment_id = segment.id
    generation = segment.job.render_generation
    job = segment.job
    if job.continuity == Continuity.CHAIN and segment.index > 0 and not segment.provider_task_id:
        previous = Segment.objects.get(job=job, index=segment.index - 1)
        if previous.status != SegmentStatus.COMPLETED:
            render_state.segment_fail(
                segment_id=segment_id, error=f"not rendered: segment {previous.index + 1} did not complete"
            )
            return "failed"
    provider_name = segment.render_provider  # the job's, or a fallback's after a failover
    provider = get_provider(provider_name)
    model = model_spec(provider_name, segment.render_model)
    holder = ratelimit.member(segment_id, generation)
    report = _progress_reporter(segment_id, lease, shown=(segment.progress, segment.provider_status))
    try:
        with tempfile.TemporaryDirectory(prefix=f"segment-{segment_id}-") as tmp:
            work_dir = Path(tmp)
            submitted = not segment.provider_task_id
            if not submitted:
                # Resume the task we already paid for (a poll step, or a worker that died mid-poll).
                ratelimit.renew(provider_name, holder)
                try:
                    task = provider.poll(segment.provider_task_id)
                except ProviderError as exc:
                    if exc.code != "expired":
                        raise
                    # The render finished and was billed, but its result is gone (a worker resumed it
                    # too late): the clip is lost and must be rendered again.
                    ratelimit.release(provider_name, holder)
                    wasted = model.cost(segment.render_seconds, job.size)
                    return _new_attempt(segment, f"result expired: {exc.message}", wasted)
            else:
                reused = _reuse_cached_clip(segment, model)
                if reused is not None:
                    return reused
                wait = ratelimit.before_create(provider_name, holder)
                if wait > 0:
                    # Over the fleet's limit for this provider: come back later without calling it.
                    _show_waiting(segment)
                    return PollLater(wait, polled=False)
                task = _submit(segment, provider, model, work_dir, report)
                since, pace = time.time(), None
            if not task.done:
                if not submitted:  # a create recorded its task's status and progress already
                    report(task.progress, task.status)
                now = time.time()
                pace = observe(pace, task.progress, now, since)
                delay = next_poll_delay(
                    polls=0 if submitted else polls,  # a render submitted in this step starts afresh
                    progress=task.progress,
                    elapsed=now - since if since > 0 else None,
                    asked=task.poll_after,
                    end_in=pace.end_at - now if pace is not None and pace.end_at is not None else None,
                )
                return PollLater(
                    delay, submitted=submitted, submitted_at=since if submitted else None, pace=pace
                )
            # The provider has stopped rendering: its slot is free for the next create.
            ratelimit.release(provider_name, holder)
            if task.status == TaskState.FAILED:
                return _provider_failed(segment, task)
            try:
                raw = provider.download(task.id, work_dir / "raw.mp4")
            except ProviderError as exc:
                if exc.code != "expired":
                    raise
                # The link expired before we fetched it: the clip is lost and must be rendered again.
                wasted = model.cost(segment.render_seconds, job.size)
                return _new_attempt(segment, f"download expired: {exc.message}", wasted)
            clip = _conform(raw, work_dir, job, segment)
            middle = segment.duration_seconds / 2
            last_frame, thumbnail = extract_last_frame_and_thumbnail(
                clip, work_dir / "last.png", work_dir / "thumb.jpg", middle, max_width=320
            )
            cost = model.cost(segment.render_seconds, job.size)
            key = cache.segment_cache_key(segment) if cache.takes_part(segment, model) else ""
            with open(clip, "rb") as c, open(last_frame, "rb") as lf, open(thumbnail, "rb") as th:
                try:
                    render_state.segment_complete(
                        segment_id=segment_id,
                        clip=File(c),
                        last_frame=File(lf),
                        thumbnail=File(th),
                        cost_usd=cost,
                        cache_key=key,
                    )
                except IllegalTransition:
                    return "skipped"  # cancelled meanwhile, or a duplicate delivery completed it first
            if job.started_at is not None:
                metrics.record_render(provider_name, (timezone.now() - job.started_at).total_seconds())
            return "completed"
    except Abandoned:
        return "abandoned"
    except ProviderError as exc:
        metrics.record_provider_error(provider_name, exc.code)
        if not exc.permanent:
            raise
        render_state.segment_fail(segment_id=segment_id, error=_provider_message(exc))
        return "failed"
    except MediaError as exc:
        render_state.segment_fail(segment_id=segment_id, error=f"the clip could not be processed: {exc}")
        return "failed"


def _reuse_cached_clip(segment: Segment, model: ModelSpec) -> str | None:
    """Complete `segment` from an identical finished clip (no provider call), or None to render it.

    The files are copied through the storage so that each job owns its own; the segment costs
    nothing and the ledger records what the provider would have billed as saved."""
    if not cache.may_reuse(segment, model):
        return None
    key = cache.segment_cache_key(segment)
    source = cache.find_reusable(segment, key)
    if source is None:
        return None
    job = segment.job
    saved = model.cost(segment.render_seconds, job.size)
    try:
        with contextlib.ExitStack() as stack:

            def stored(field) -> File | None:
                return File(stack.enter_context(default_storage.open(field.name, "rb"))) if field else None

            render_state.segment_complete(
                segment_id=segment.id,
                clip=stored(source.clip),
                last_frame=stored(source.last_frame),
                thumbnail=stored(source.thumbnail),
                cost_usd=Decimal("0"),
                cache_key=key,
                cached_from_id=source.id,
                saved_usd=saved,
            )
    except (FileNotFoundError, OSError):
        # The source went away between the check and the copy (its job was deleted): render instead.
        log.info("cache: the clip of segment %s vanished while copying; rendering", source.id)
        return None
    except IllegalTransition:
        return "skipped"  # cancelled meanwhile
    log.info("cache: segment %s reused the clip of segment %s (saved %s)", segment.id, source.id, saved)
    return "completed"


def _show_waiting(segment: Segment) -> None:
    if segment.provider_status != WAITING_STATUS:
        render_state.segment_progress(segment_id=segment.id, progress=0.0, provider_status=WAITING_STATUS)


def _provider_failed(segment: Segment, task: ProviderTask) -> str | PollLater:
    message = f"{task.error_code or 'failed'}: {task.error_message or 'the provider reported a failure'}"
    metrics.record_provider_error(segment.render_provider, task.error_code or "failed")
    if task.error_code in PERMANENT_FAILURE_CODES:
        render_state.segment_fail(segment_id=segment.id, error=message)
        return "failed"
    return _new_attempt(segment, message, Decimal("0"))


def _new_attempt(segment: Segment, reason: str, wasted: Decimal) -> str | PollLater:
    try:
        started = render_state.segment_new_attempt(
            segment_id=segment.id, reason=reason, wasted_cost_usd=wasted
        )
    except IllegalTransition:
        return "skipped"  # cancelled meanwhile
    if not started:
        return "failed"  # the attempts are used up; the segment was failed with the reason
    return PollLater(0.0)  # submit again straight away


def _provider_message(exc: ProviderError) -> str:
    return f"{exc.code}: {exc.message}" if exc.code else exc.message


def _submit(
    segment: Segment, provider: VideoProvider, model: ModelSpec, work_dir: Path, report
) -> ProviderTask:
    job = segment.job
    frames = segment_frames(segment, model)
    request = RenderRequest(
        prompt=segment.prompt,
        seconds=segment.render_seconds or segment.duration_seconds,
        size=job.size,
        fps=job.fps,
        model=segment.render_model,
        reference_image=_fetch(frames.first, work_dir, "first", job, model),
        last_frame=_fetch(frames.last, work_dir, "last", job, model),
        reference_images=tuple(
            path
            for number, frame in enumerate(frames.references)
            if (path := _fetch(frame, work_dir, f"reference-{number}", job, model)) is not None
        ),
        segment_index=segment.index,
        segment_count=job.segments.count(),
        job_key=str(job.id),
        # One key per (segment, run, attempt): a create resent after a lost response is the same create.
        idempotency_key=f"segment-{segment.id}-run-{job.render_generation}-attempt-{segment.attempts}",
    )
    task = provider.submit(request, on_progress=report)
    try:
        render_state.segment_set_provider_task(
            segment_id=segment.id, task_id=task.id, provider_status=task.status, progress=task.progress
        )
    except (IllegalTransition, NotFound):
        # Cancelled (or its job deleted) while the provider rendered: an expected race, not a crash.
        # Ask the provider to stop the render nobody wants any more (best effort), then stop here.
        log.info(
            "segment %s was cancelled while %s rendered it; stopping", segment.id, segment.render_provider
        )
        with contextlib.suppress(ProviderError):
            provider.cancel(task.id)
        raise Abandoned() from None
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


def assemble_job(*, job_id: str, generation: int, lease: str) -> str:
    """Join the finished clips into the job's video, as the assembly run `lease` (jobs.leases), whose
    lease a heartbeat renews meanwhile. Returns completed, failed or skipped."""
    job = VideoJob.objects.filter(id=job_id).first()
    if job is None or job.render_generation != generation:
        return "skipped"
    if not job.is_active:
        return "skipped"
    segments = list(job.segments.order_by("index"))
    if any(s.status in {SegmentStatus.QUEUED, SegmentStatus.RENDERING} for s in segments):
        return "skipped"  # an early or duplicate trigger: the last segment to settle assembles
    unfinished = [s for s in segments if s.status != SegmentStatus.COMPLETED]
    if unfinished and all(s.status == SegmentStatus.CANCELLED and not s.error for s in unfinished):
        # Only segments a person cancelled are missing (a re-render of one segment of a cancelled job):
        # nothing failed, so the job goes back to cancelled, saying what is left.
        numbers = ", ".join(str(s.index + 1) for s in unfinished)
        render_state.job_rest(
            job_id=job.id, note=f"segments {numbers} were cancelled; render the job to finish the video"
        )
        return "cancelled"
    if unfinished:
        first = unfinished[0]
        reason = first.error or f"it is {first.status}"
        render_state.job_fail(
            job_id=job.id,
            error=(
                f"{len(unfinished)} of {len(segments)} segments did not render; "
                f"segment {first.index + 1}: {reason}"
            ),
        )
        return "failed"
    job = render_state.job_assembly_start(job_id=job.id, generation=generation, token=lease)
    if job is None:
        return "skipped"
    with heartbeat(lambda: leases.job_beat(job_id, lease), what=f"assembly of {job_id}"):
        return _assemble(job, segments)


def _assemble(job: VideoJob, segments: list[Segment]) -> str:
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
                on_progress=lambda f: render_state.job_assembly_progress(job_id=job.id, fraction=f * 0.9),
            )
            poster = make_poster(result.path, work_dir / "poster.jpg")
            with open(result.path, "rb") as video, open(poster, "rb") as image:
                try:
                    render_state.job_complete(
                        job_id=job.id, output=File(video), poster=File(image), duration=result.duration
                    )
                except IllegalTransition:
                    return "skipped"  # cancelled meanwhile, or a duplicate assembly finished first
        return "completed"
    except (MediaError, OSError) as exc:
        render_state.job_fail(job_id=job.id, error=f"assembly failed: {exc}")
        return "failed"
