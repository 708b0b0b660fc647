"""The state machine the workers drive: every change a render makes to a segment or a job.

Each worker transition is one row of `SEGMENT_MOVES` or `JOB_MOVES` and goes through one function
(`_move_segment`, `_move_job`) that, in one transaction: locks the job row (one lock order: job, then
segments), claims the row with a conditional UPDATE from the row's allowed statuses (so a duplicate
task, a cancel or a webhook racing it loses cleanly with IllegalTransition), charges the ledger
(jobs.ledger.charge, the one money path), recomputes the job's progress and publishes the new state
after commit. The tables are checked against the transition graph in jobs.transitions at import.

No row lock is held across a provider call or an ffmpeg run: workers claim, commit, then work, and come
back here with the result. Files are written under fresh names before the row names them.

Longer than 400 lines on purpose: the tables and every worker transition belong together, so a reader
sees all the ways a segment or a job can move (and what each charges) in one place.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.files.base import File
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from . import budget, leases, ledger
from .catalogue import CapabilityError, model_spec
from .errors import IllegalTransition, NotFound
from .events import JOB_ASSEMBLY, JOB_STATUS, SEGMENT_STATE, job_status, publish_after_commit, segment_state
from .files import delete_files
from .models import (
    FINISHED_JOB_STATUSES,
    IN_FLIGHT_SEGMENT_STATUSES,
    RENDERING_JOB_STATUSES,
    SETTLED_SEGMENT_STATUSES,
    JobStatus,
    Segment,
    SegmentStatus,
    SpendKind,
    Take,
    Version,
    VideoJob,
)
from .planning import render_length, uses_reference_slots
from .selectors import segment_with_job
from .transitions import (
    JOB_TRANSITIONS,
    SEGMENT_TRANSITIONS,
    check_move,
    claim_job,
    claim_segment,
    lock_job_of_segment,
)

# The share of job progress given to rendering; assembly takes the rest.
RENDER_SHARE = 90.0


@dataclass(frozen=True)
class Move:
    sources: frozenset[str]
    target: str


def _moves(graph: dict[str, set[str]], table: dict[str, tuple[set[str], str]]) -> dict[str, Move]:
    moves = {name: Move(frozenset(sources), target) for name, (sources, target) in table.items()}
    for move in moves.values():
        check_move(graph, move.sources, move.target)
    return moves


S = SegmentStatus
SEGMENT_MOVES = _moves(
    SEGMENT_TRANSITIONS,
    {
        "start": ({S.QUEUED}, S.RENDERING),
        "record_task": ({S.RENDERING}, S.RENDERING),
        "report_progress": ({S.RENDERING}, S.RENDERING),
        "new_attempt": ({S.RENDERING}, S.RENDERING),
        "fail_over": ({S.RENDERING}, S.RENDERING),
        "complete": ({S.RENDERING}, S.COMPLETED),
        "fail": (set(IN_FLIGHT_SEGMENT_STATUSES), S.FAILED),
        # A chained segment whose predecessor did not complete cannot start: cancelled, to be retried.
        "skip": ({S.PENDING, S.QUEUED}, S.CANCELLED),
    },
)
J = JobStatus
JOB_MOVES = _moves(
    JOB_TRANSITIONS,
    {
        "start_rendering": ({J.QUEUED}, J.RENDERING),
        # A run with nothing left to render (a retry after an assembly failure) assembles from queued.
        "start_assembly": (set(RENDERING_JOB_STATUSES), J.ASSEMBLING),
        "complete": ({J.ASSEMBLING}, J.COMPLETED),
        "fail": ({J.QUEUED, J.RENDERING, J.ASSEMBLING}, J.FAILED),
        # A run of a cancelled job's chosen segments ended with others still cancelled: cancelled again.
        "rest": ({J.QUEUED, J.RENDERING}, J.CANCELLED),
    },
)


@dataclass(frozen=True)
class Charge:
    kind: str
    amount_usd: Decimal
    note: str = ""
    provider_task_id: str | None = None


def _move_segment(
    segment_id: int,
    move: str,
    *,
    charges: tuple[Charge, ...] = (),
    publish: bool = True,
    match: dict[str, Any] | None = None,
    **fields: Any,
) -> Segment:
    """Lock, claim, charge, recompute progress and publish one segment transition (see the module doc).
    Raises IllegalTransition when the segment is not in one of the move's source statuses (or does not
    match `match`)."""
    step = SEGMENT_MOVES[move]
    with transaction.atomic():
        lock_job_of_segment(segment_id)
        segment = claim_segment(segment_id, step.target, allowed=step.sources, match=match, **fields)
        if step.target in SETTLED_SEGMENT_STATUSES:
            # Whoever settled it now takes the job's next step; if that is lost, the reaper takes it.
            leases.job_expect_progress(segment.job_id)
        for charge in charges:
            ledger.charge(
                segment=segment,
                kind=charge.kind,
                amount_usd=charge.amount_usd,
                note=charge.note,
                provider_task_id=charge.provider_task_id,
            )
        if charges:
            segment.refresh_from_db(fields=["cost_usd"])
        job = segment.job
        job.progress = recompute_progress(job)
        if publish:
            publish_after_commit(job.id, SEGMENT_STATE, segment_state(segment), job=job_status(job))
    return segment


def _move_job(
    job_id: uuid.UUID | str, move: str, *, match: dict[str, Any] | None = None, **fields: Any
) -> VideoJob:
    """Claim one job transition and publish the job's new status after commit."""
    step = JOB_MOVES[move]
    with transaction.atomic():
        job = claim_job(job_id, step.target, allowed=step.sources, match=match, **fields)
        publish_after_commit(job.id, JOB_STATUS, job_status(job))
    return job


def recompute_progress(job: VideoJob) -> float:
    """Job progress while rendering: the duration-weighted mean of its segments' progress, scaled to
    the render share. Written only while the job renders; returns the job's progress either way."""
    if job.status not in RENDERING_JOB_STATUSES:
        return job.progress
    rows = list(Segment.objects.filter(job_id=job.id).values_list("progress", "start_seconds", "end_seconds"))
    total = sum(end - start for _, start, end in rows) or 1.0
    done = sum(progress * (end - start) for progress, start, end in rows) / total
    progress = round(RENDER_SHARE * done / 100.0, 2)
    VideoJob.objects.filter(id=job.id, status__in=RENDERING_JOB_STATUSES).update(progress=progress)
    return progress


# --- Segments ---------------------------------------------------------------------------------------


class LeaseHeld(Exception):
    """Another run of render_segment holds the segment's lease (jobs.leases): this one stops, touching
    nothing (not even the provider slot, which is the live run's)."""


def segment_claim(*, segment_id: int, generation: int, token: str) -> Segment | None:
    """Claim a queued segment for rendering (attempts + 1) for the run `token`, or take the next step
    on a rendering one whose lease that run holds (or that a lost run left expired). Returns None when
    there is nothing to do (the run is stale, or the segment is settled); raises LeaseHeld when another
    live run holds the segment."""
    # The next step of a run that holds the segment (every poll) takes the lease with the one conditional
    # UPDATE it needs anyway, without the job's lock: the UPDATE writes only lease columns, which no
    # job-level move reads, and every write the step makes later is a checked move of its own. The
    # generation and the job's status are checked after; a stale run that took a lease gives it back.
    # Anything else (a first claim, a lease held by another run) goes the long way.
    if leases.segment_take(segment_id, token):
        segment = segment_with_job(segment_id)
        if (
            segment is not None
            and segment.status == SegmentStatus.RENDERING
            and segment.job.render_generation == generation
            and segment.job.status not in FINISHED_JOB_STATUSES
        ):
            return segment
        leases.segment_let_go(segment_id, token)
        return None  # stale, or settled since the UPDATE: nothing to do, as the long way would say
    with transaction.atomic():
        lock_job_of_segment(segment_id)
        segment = segment_with_job(segment_id)
        if segment is None or segment.job.render_generation != generation:
            return None
        if segment.job.status in FINISHED_JOB_STATUSES:
            return None
        if segment.status == SegmentStatus.RENDERING:
            # The next step of our own run, or a resume after a crash (no new attempt is counted).
            if not leases.segment_take(segment_id, token):
                raise LeaseHeld(f"segment {segment_id} is held by another run")
            return segment  # read under the job's lock; the take changed only its lease columns
        if segment.status != SegmentStatus.QUEUED:
            return None
        if segment.job.status == JobStatus.QUEUED:
            _move_job(segment.job_id, "start_rendering")
        # One conditional UPDATE moves it to rendering and gives it to this run: of several messages
        # for a queued segment (the reaper re-sends lost ones), the first wins.
        return _move_segment(
            segment_id, "start", attempts=F("attempts") + 1, error="", **leases.working_fields(token)
        )


def segment_set_provider_task(
    *, segment_id: int, task_id: str, provider_status: str = "", progress: float | None = None
) -> None:
    """Store the provider's task id before polling, so a restarted worker resumes instead of paying again.
    Given the task's first `progress`, it is recorded and shown in the same move (one transaction per
    create instead of two), else the move is not published: the caller reports progress next."""
    fields: dict[str, Any] = {"provider_task_id": task_id, "provider_status": provider_status}
    if progress is not None:
        fields["progress"] = max(0.0, min(100.0, float(progress)))
    _move_segment(segment_id, "record_task", publish=progress is not None, **fields)


def segment_progress(
    *, segment_id: int, progress: float, provider_status: str = "", token: str | None = None
) -> bool:
    """Record progress; returns False when the segment is no longer rendering (cancelled) or, given the
    run's `token`, no longer held by that run (taken over after it was presumed lost): stop work."""
    try:
        _move_segment(
            segment_id,
            "report_progress",
            match={"lease_token": token} if token is not None else None,
            progress=max(0.0, min(100.0, float(progress))),
            provider_status=provider_status or F("provider_status"),
        )
    except (IllegalTransition, NotFound):  # cancelled, or its job deleted: the worker stops
        return False
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
    """Store the finished clip (and its last frame and thumbnail) and mark the segment completed,
    charging `cost_usd` as a render or, for a clip reused from the render cache (`cached_from_id`),
    recording `saved_usd` as a cache saving."""
    segment = Segment.objects.select_related("job").get(id=segment_id)
    if segment.status != SegmentStatus.RENDERING:
        raise IllegalTransition(f"segment {segment.index + 1} is {segment.status}; it cannot complete")
    # Files are written under fresh names before the row changes, so a reader never sees a torn clip.
    # Earlier files stay: they are earlier takes (Take), which a person may pick again.
    tag = uuid.uuid4().hex[:8]
    segment.clip.save(f"{segment.index:04d}-{tag}.mp4", clip, save=False)
    if last_frame is not None:
        segment.last_frame.save(f"{segment.index:04d}-{tag}-last.png", last_frame, save=False)
    if thumbnail is not None:
        segment.thumbnail.save(f"{segment.index:04d}-{tag}-thumb.jpg", thumbnail, save=False)
    new_files = [f.name for f in (segment.clip, segment.last_frame, segment.thumbnail) if f]
    charges = [Charge(SpendKind.RENDER, cost_usd)]
    if cached_from_id is not None:
        note = f"reused the clip of segment {cached_from_id}"
        charges.append(Charge(SpendKind.CACHE_SAVING, saved_usd, note, provider_task_id=""))
    rendered_by = f"{segment.render_provider}:{segment.render_model}"
    try:
        with transaction.atomic():
            # The job's lock first, so racing completions number their takes one after the other (the
            # losers then fail the claim below, and their takes roll back with it).
            lock_job_of_segment(segment_id)
            take = _new_take(segment, rendered_by, cost_usd, cached=cached_from_id is not None)
            segment = _move_segment(
                segment_id,
                "complete",
                charges=tuple(charges),
                clip=segment.clip.name,
                last_frame=segment.last_frame.name if last_frame is not None else "",
                thumbnail=segment.thumbnail.name if thumbnail is not None else "",
                take_number=take.number,
                progress=100.0,
                provider_status="completed",
                rendered_by=rendered_by,
                error="",
                cache_key=cache_key,
                cached_from_id=cached_from_id,
            )
    except Exception:
        delete_files(new_files)
        raise
    return segment


def _new_take(segment: Segment, rendered_by: str, cost_usd: Decimal, *, cached: bool) -> Take:
    """Keep this render as the segment's next take (its files are the segment's new ones)."""
    last = Take.objects.filter(segment_id=segment.id).aggregate(n=Max("number"))["n"] or 0
    return Take.objects.create(
        segment_id=segment.id,
        number=last + 1,
        prompt=segment.prompt,
        clip=segment.clip.name,
        last_frame=segment.last_frame.name if segment.last_frame else "",
        thumbnail=segment.thumbnail.name if segment.thumbnail else "",
        duration_seconds=segment.duration_seconds,
        rendered_by=rendered_by,
        cost_usd=cost_usd,
        cached=cached,
    )


def segment_fail(*, segment_id: int, error: str, cost_usd: Decimal = Decimal("0")) -> Segment | None:
    """Mark a rendering (or queued) segment failed with the reason a person will read; `cost_usd` is a
    render the provider billed that produced nothing usable. None when it had already settled."""
    try:
        return _move_segment(
            segment_id,
            "fail",
            charges=(Charge(SpendKind.WASTED, cost_usd, error),),
            error=error[:4000],
        )
    except IllegalTransition:
        return None


def segment_skip(*, segment_id: int, reason: str) -> None:
    """A chained segment whose predecessor did not complete cannot start: it is cancelled, to be retried."""
    with contextlib.suppress(IllegalTransition):  # it started or settled meanwhile: nothing to skip
        _move_segment(segment_id, "skip", error=reason)


def segment_new_attempt(*, segment_id: int, reason: str, wasted_cost_usd: Decimal = Decimal("0")) -> bool:
    """Start another provider render of a rendering segment (the last one failed, or its download
    expired): record what the lost render cost, forget the provider task and count the attempt.
    Returns False when the attempts are used up; the segment is then failed with the reason."""
    wasted = (Charge(SpendKind.WASTED, wasted_cost_usd, reason),)
    with transaction.atomic():
        lock_job_of_segment(segment_id)
        attempts = Segment.objects.filter(id=segment_id).values_list("attempts", flat=True).first()
        if attempts is not None and attempts >= settings.SEGMENT_MAX_ATTEMPTS:
            message = f"used all {settings.SEGMENT_MAX_ATTEMPTS} attempts; last: {reason}"
            _move_segment(segment_id, "fail", charges=wasted, error=message[:4000])
            return False
        _move_segment(
            segment_id,
            "new_attempt",
            charges=wasted,
            attempts=F("attempts") + 1,
            provider_task_id="",
            provider_status="resubmitting",
            progress=0.0,
            error=reason[:4000],
        )
    return True


def segment_fail_over(*, segment_id: int, reason: str) -> str | None:
    """Move a rendering segment whose provider is down onto the job's next fallback model that can render
    its planned length at the job's size, re-priced and re-checked against the budget; the provider task
    is forgotten and the segment is submitted afresh. Returns the new "provider:model", or None when no
    fallback is left (the caller then fails the segment). Never called after a content refusal."""
    with transaction.atomic():
        lock_job_of_segment(segment_id)
        segment = Segment.objects.select_related("job").get(id=segment_id)
        job = segment.job
        chain = [f"{job.provider}:{job.model}", *job.fallback_models]
        current = f"{segment.render_provider}:{segment.render_model}"
        later = chain[chain.index(current) + 1 :] if current in chain else []
        skipped = []
        for choice in later:
            provider, model_id = choice.split(":", 1)
            try:
                model = model_spec(provider, model_id)
                references = uses_reference_slots(job.continuity, model)
                seconds = render_length(
                    segment.duration_seconds, model.lengths_for(job.size, references=references)
                )
            except CapabilityError as exc:
                skipped.append(f"{choice}: {exc.message}")
                continue
            budget.check_failover(segment=segment, cost=model.cost(seconds, job.size))
            _move_segment(
                segment_id,
                "fail_over",
                provider=provider,
                model=model_id,
                render_seconds=seconds,
                provider_task_id="",
                provider_status="failing over",
                progress=0.0,
                error=f"{reason[:3000]} (moved to {choice})"
                + (f"; skipped {'; '.join(skipped)}" if skipped else ""),
            )
            return choice
    return None


# --- Jobs -------------------------------------------------------------------------------------------


def job_assembly_start(*, job_id: uuid.UUID | str, generation: int, token: str) -> VideoJob | None:
    """Claim the job for the assembly run `token`; None when the run is stale, the job is no longer
    rendering, or another live assembly run holds it."""
    with transaction.atomic():
        job = VideoJob.objects.select_for_update().filter(id=job_id).first()
        if job is None or job.render_generation != generation:
            return None
        if job.segments.exclude(status=SegmentStatus.COMPLETED).exists():
            raise IllegalTransition(f"job {job_id} still has segments that are not completed")
        if job.status == JobStatus.ASSEMBLING:
            # A redelivered or reaped assembly after the assembler died: assemble again if its lease
            # expired (the output is written under a new name and claimed once by job_complete).
            if not leases.job_take_assembly(job_id, token):
                return None
            return job  # read under its row lock; the take changed only its lease columns
        try:
            return _move_job(
                job_id,
                "start_assembly",
                match={"render_generation": generation},
                **leases.job_assembly_fields(token),
            )
        except IllegalTransition:
            return None


def job_assembly_progress(*, job_id: uuid.UUID | str, fraction: float) -> None:
    fraction = max(0.0, min(1.0, fraction))
    progress = min(RENDER_SHARE + (100.0 - RENDER_SHARE) * fraction, 99.9)
    with transaction.atomic():
        VideoJob.objects.filter(id=job_id, status=JobStatus.ASSEMBLING).update(progress=progress)
        publish_after_commit(
            job_id,
            JOB_ASSEMBLY,
            {"progress": round(fraction * 100, 1)},
            job={"status": JobStatus.ASSEMBLING, "progress": round(progress, 1)},
        )


def job_complete(*, job_id: uuid.UUID | str, output: File, poster: File | None, duration: float) -> VideoJob:
    job = VideoJob.objects.get(id=job_id)
    if job.status != JobStatus.ASSEMBLING:
        raise IllegalTransition(f"job {job_id} is {job.status}; it cannot complete")
    # Written under fresh names; earlier videos stay, as earlier versions whose links keep working.
    tag = uuid.uuid4().hex[:8]
    job.output_video.save(f"video-{tag}.mp4", output, save=False)
    if poster is not None:
        job.poster_image.save(f"poster-{tag}.jpg", poster, save=False)
    new_files = [f.name for f in (job.output_video, job.poster_image) if f]
    try:
        with transaction.atomic():
            VideoJob.objects.select_for_update().filter(id=job_id).first()  # racing assemblies: one at a time
            version = _new_version(job, duration)
            job = _move_job(
                job_id,
                "complete",
                output_video=job.output_video.name,
                poster_image=job.poster_image.name if poster is not None else "",
                output_duration_seconds=duration,
                version_number=version.number,
                progress=100.0,
                error="",
                finished_at=timezone.now(),
            )
    except Exception:
        delete_files(new_files)
        raise
    return job


def _new_version(job: VideoJob, duration: float) -> Version:
    """Keep this assembled video as the job's next version, with the takes it was made from."""
    last = Version.objects.filter(job_id=job.id).aggregate(n=Max("number"))["n"] or 0
    return Version.objects.create(
        job_id=job.id,
        number=last + 1,
        video=job.output_video.name,
        poster=job.poster_image.name if job.poster_image else "",
        duration_seconds=duration,
        takes=list(
            Segment.objects.filter(job_id=job.id).order_by("index").values_list("take_number", flat=True)
        ),
    )


def job_rest(*, job_id: uuid.UUID | str, note: str) -> VideoJob | None:
    """The run rendered what it was asked to, but segments a person cancelled still have no clip: the job
    is cancelled again (not failed: nothing went wrong), with a note of what is left to render."""
    try:
        return _move_job(job_id, "rest", error=note[:4000], finished_at=timezone.now())
    except IllegalTransition:
        return None


def job_fail(*, job_id: uuid.UUID | str, error: str) -> VideoJob | None:
    """Fail the job with a reason; finished clips are kept so a retry renders only what failed."""
    try:
        return _move_job(job_id, "fail", error=error[:4000], finished_at=timezone.now())
    except IllegalTransition:
        return None
