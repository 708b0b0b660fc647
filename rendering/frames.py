"""Which pictures a segment is rendered from, by the job's continuity mode and what its model takes: the
one definition that the pipeline sends and the render cache hashes.

- parallel: the segment's own reference image, else (first segment only) the job's, as its first frame.
- chain: the previous segment's exact last shown frame as the first frame (the first segment as parallel).
- reference: the job's reference images on the model's reference slots (Veo's asset images); on a model
  without slots, the segment's own image or the job's as the first frame.
- bridge: each segment renders from its own keyframe (its reference image; the job's for the first
  segment) to the next segment's keyframe as its last frame, so every segment renders at once and each
  seam is the same picture on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobs.catalogue import ModelSpec
from jobs.models import Continuity, ReferenceImage, Segment
from jobs.planning import uses_reference_slots
from jobs.selectors import segment_own_image, segment_reference_image


@dataclass(frozen=True)
class Frame:
    name: str  # the file in storage
    sha256: str | None = None  # known for uploaded images; a clip's last frame is hashed when needed


@dataclass(frozen=True)
class SegmentFrames:
    first: Frame | None = None
    last: Frame | None = None
    references: tuple[Frame, ...] = ()


def _image(image: ReferenceImage | None) -> Frame | None:
    return Frame(image.image.name, image.sha256) if image is not None else None


def segment_frames(segment: Segment, model: ModelSpec) -> SegmentFrames:
    job = segment.job
    if job.continuity == Continuity.CHAIN and segment.index > 0:
        previous = Segment.objects.filter(job=job, index=segment.index - 1).only("last_frame").first()
        if previous is not None and previous.last_frame:
            return SegmentFrames(first=Frame(previous.last_frame.name))
        return SegmentFrames()
    if uses_reference_slots(job.continuity, model):
        images = ReferenceImage.objects.filter(job=job, segment__isnull=True).order_by("-created_at", "-id")
        return SegmentFrames(references=tuple(_image(i) for i in images[: model.reference_images]))
    if job.continuity == Continuity.BRIDGE:
        following = Segment.objects.filter(job=job, index=segment.index + 1).first()
        last = _image(segment_own_image(following)) if following is not None and model.last_frame else None
        return SegmentFrames(first=_image(segment_reference_image(segment)), last=last)
    return SegmentFrames(first=_image(segment_reference_image(segment)))
