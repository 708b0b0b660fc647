"""Edit a saved draft's plan: its cards reordered, split, merged, added or removed in one step.

The new cards are planned exactly as a new job with these cards would be (jobs.planning.plan_job on the
job's own spec, in manual mode), so every rule of creation applies once: prompt lengths (the server's
and the model's), the number of segments and the duration limits, the model's clip lengths (manual
slices snapped as at creation), the budget caps, the fallbacks. The duration follows the cards: one
segment length (the job's) per card, as on the new-video page.

A card may name the current segment it came from (`source`): the reference images bound to that segment
follow the card. When several cards name the same segment (a split), the first of them keeps the images;
a segment no card names (removed, or the second half of a merge) loses its images, files included.
Images of the whole job stay. Only a draft's plan changes (nothing rendered, nothing to keep); anything
else is IllegalTransition (409). Everything is written in one transaction and the files of dropped
images are deleted only once it commits, so a refusal leaves the job as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from .errors import IllegalTransition, InvalidInput
from .events import JOB_STATUS, job_status, publish_after_commit
from .files import delete_files_after_commit
from .models import JobStatus, ReferenceImage, Segment, VideoJob
from .planning import CheckedJob, job_spec_of, plan_job
from .services import planned_segments

# plan_job's errors about the duration come from the number of cards here: filed under the cards.
_COUNT_FIELDS = ("duration_seconds", "segment_seconds")


@dataclass(frozen=True)
class PlanCard:
    """One card of the new plan: its prompt and the index of the current segment it came from (None: a
    new card)."""

    prompt: str
    source: int | None = None


def cards_duration(job: VideoJob, count: int) -> float:
    """How long the video of `count` cards is before the model's lengths are applied: one segment
    length each (the new-video page's rule, which prices the same way)."""
    return round(count * job.segment_seconds, 3)


def video_job_plan_update(*, job: VideoJob, cards: Sequence[PlanCard]) -> VideoJob:
    """Replace the draft `job`'s segments with `cards`, in order (see the module doc). Returns the job
    as stored. Raises InvalidInput (400, field paths segments.<i>.prompt / segments.<i>.source /
    segments) or IllegalTransition (409) and then changes nothing."""
    _refuse_unless_draft(job.status, job)
    _check_sources(cards, job.segments.count())
    checked = _plan(job, cards)  # outside any transaction, like every plan (jobs.services)
    with transaction.atomic():
        status = (
            VideoJob.objects.select_for_update().filter(id=job.id).values_list("status", flat=True).first()
        )
        _refuse_unless_draft(status, job)
        # Checked again under the lock: another edit may have changed the segments meanwhile.
        _check_sources(cards, Segment.objects.filter(job_id=job.id).count())
        _replace_segments(job, cards, checked)
        VideoJob.objects.filter(id=job.id).update(
            duration_seconds=checked.duration_seconds,
            segment_seconds=checked.segment_seconds,
            # A person's cards: the plan is theirs now, as if created in manual mode.
            strategy="manual",
            cost_estimate_usd=checked.plan.cost_usd,
            billed_seconds_estimate=checked.plan.billed_seconds,
            fallback_models=checked.fallback_models,
            notices=checked.notices,
            updated_at=timezone.now(),
        )
        job.refresh_from_db()
        # Other pages watching the draft fetch a fresh snapshot with the new cards.
        publish_after_commit(job.id, JOB_STATUS, job_status(job))
    return job


def _refuse_unless_draft(status: str | None, job: VideoJob) -> None:
    if status != JobStatus.DRAFT:
        raise IllegalTransition(
            f"job {job.id} is {status}; only a draft's plan can be edited (duplicate it as a new draft)"
        )


def _check_sources(cards: Sequence[PlanCard], count: int) -> None:
    if not cards:
        raise InvalidInput("a plan needs at least one card", field="segments")
    errors = {
        f"segments.{position}.source": [
            f"segment {card.source} does not exist; this draft has segments 0 to {count - 1}"
        ]
        for position, card in enumerate(cards)
        if card.source is not None and not 0 <= card.source < count
    }
    if errors:
        raise InvalidInput(errors)


def _plan(job: VideoJob, cards: Sequence[PlanCard]) -> CheckedJob:
    duration = cards_duration(job, len(cards))
    spec = job_spec_of(
        job, duration_seconds=duration, strategy="manual", manual_prompts=[card.prompt for card in cards]
    )
    try:
        return plan_job(spec)
    except InvalidInput as exc:
        raise InvalidInput(_about_cards(exc.errors, len(cards), job.segment_seconds, duration)) from None


def _about_cards(
    errors: dict[str, list[str]], count: int, segment_seconds: float, duration: float
) -> dict[str, list[str]]:
    """plan_job's errors as this request's: a duration out of bounds is a matter of how many cards."""
    out: dict[str, list[str]] = {}
    for name, messages in errors.items():
        if name in _COUNT_FIELDS:
            what = f"{count} card{'s' if count != 1 else ''} of {segment_seconds:g} s make {duration:g} s"
            out.setdefault("segments", []).extend(f"{what}: {message}" for message in messages)
        else:
            out.setdefault(name, []).extend(messages)
    return out


def _replace_segments(job: VideoJob, cards: Sequence[PlanCard], checked: CheckedJob) -> None:
    """The new segment rows, with each segment-bound image moved to the first card naming its segment
    and the others dropped (rows now, files after commit). A draft's segments were never rendered: they
    own no clip, take or spend line, so replacing the rows loses nothing."""
    first_card: dict[int, int] = {}
    for position, card in enumerate(cards):
        if card.source is not None:
            first_card.setdefault(card.source, position)
    bound = ReferenceImage.objects.filter(job_id=job.id, segment__isnull=False)
    moving: dict[int, list[int]] = {}
    dropped: list[tuple[int, str]] = []
    for image_id, old_index, name in bound.values_list("id", "segment__index", "image"):
        if old_index in first_card:
            moving.setdefault(first_card[old_index], []).append(image_id)
        else:
            dropped.append((image_id, name))
    # Detached while the segments are replaced (their rows would take the images with them).
    ReferenceImage.objects.filter(id__in=[i for ids in moving.values() for i in ids]).update(segment=None)
    ReferenceImage.objects.filter(id__in=[image_id for image_id, _ in dropped]).delete()
    Segment.objects.filter(job_id=job.id).delete()
    Segment.objects.bulk_create(planned_segments(job, checked.plan))
    new_ids = dict(Segment.objects.filter(job_id=job.id).values_list("index", "id"))
    for position, image_ids in moving.items():
        ReferenceImage.objects.filter(id__in=image_ids).update(segment_id=new_ids[position])
    delete_files_after_commit(name for _, name in dropped if name)
