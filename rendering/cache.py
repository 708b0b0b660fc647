"""The render cache: never pay twice for the same clip.

A segment's cache key is the sha256 of canonical JSON of everything that decides the stored clip:
provider, model, size, fps, billed seconds, planned seconds, prompt, the reference image's sha256 (and
how it is fitted to the size), and in `chain` continuity the sha256 of the previous segment's last
frame (so a chain only hits while every earlier link matched too). The key is stored on the segment
when it completes.

Before a segment is submitted, rendering.pipeline looks for a completed segment with the same key; if
its files are still there, the clip, last frame and thumbnail are copied through the storage (each
job owns its files, so deleting one job never breaks another), the segment completes at no cost, and
the ledger records what was saved. No provider call is made.

Scope and policy:
- Only the same owner's clips are reused: a clip made from another person's prompt and reference
  images is theirs, and a key match would reveal that someone rendered exactly this.
- Only providers that bill (a price above zero) take part: the cache exists to save money, and a free
  provider's clips (the local renderer) are cheap to make again.
- A job can opt out (VideoJob.use_cache), RENDER_CACHE=0 turns it off everywhere, and a re-rendered
  segment (a person asking for a fresh take) never consults it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage

from jobs.catalogue import ModelSpec, model_spec
from jobs.models import Continuity, Segment, SegmentStatus
from rendering.frames import Frame, segment_frames

log = logging.getLogger(__name__)

KEY_VERSION = 1


def file_sha256(name: str) -> str | None:
    """sha256 of a stored file, or None when it is gone."""
    digest = hashlib.sha256()
    try:
        with default_storage.open(name, "rb") as handle:
            for chunk in iter(lambda: handle.read(1024 * 1024), b""):
                digest.update(chunk)
    except (FileNotFoundError, OSError):
        return None
    return digest.hexdigest()


def takes_part(segment: Segment, model: ModelSpec) -> bool:
    """True when this segment's clip is worth a cache key (its provider bills for it)."""
    job = segment.job
    return bool(settings.RENDER_CACHE) and model.price(job.size) > 0


def may_reuse(segment: Segment, model: ModelSpec) -> bool:
    """True when a clip may be taken from the cache for this segment instead of rendering it."""
    return takes_part(segment, model) and segment.job.use_cache and not segment.bypass_cache


def _sha(frame: Frame | None) -> str | None:
    if frame is None:
        return None
    return frame.sha256 or file_sha256(frame.name)


def key_inputs(segment: Segment) -> dict[str, Any]:
    """The inputs that decide the clip, including the pictures it is rendered from (rendering.frames,
    the same choice the pipeline sends)."""
    job = segment.job
    frames = segment_frames(segment, model_spec(segment.render_provider, segment.render_model))
    chained = job.continuity == Continuity.CHAIN and segment.index > 0
    reference_sha = None if chained else _sha(frames.first)
    continuity_sha = _sha(frames.first) if chained else None
    inputs: dict[str, Any] = {
        "v": KEY_VERSION,
        "provider": segment.render_provider,
        "model": segment.render_model,
        "size": job.size,
        "fps": job.fps,
        "billed_seconds": round(float(segment.render_seconds or segment.duration_seconds), 3),
        "planned_seconds": round(segment.duration_seconds, 3),
        "prompt": segment.prompt,
        "reference_sha256": reference_sha,
        "continuity_sha256": continuity_sha,
    }
    if frames.last is not None:
        inputs["last_frame_sha256"] = _sha(frames.last)
    if frames.references:
        inputs["reference_images_sha256"] = [_sha(frame) for frame in frames.references]
    if reference_sha or continuity_sha or frames.last or frames.references:
        # The image is fitted to the size before it is sent; cover and pad send different pictures.
        inputs["reference_fit"] = job.reference_fit
    return inputs


def segment_cache_key(segment: Segment) -> str:
    canonical = json.dumps(key_inputs(segment), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def find_reusable(segment: Segment, key: str) -> Segment | None:
    """The newest completed segment of the same owner with this key whose files are all still there."""
    owner_id = segment.job.owner_id
    candidates = (
        Segment.objects.filter(cache_key=key, status=SegmentStatus.COMPLETED, job__owner_id=owner_id)
        .exclude(id=segment.id)
        .exclude(clip="")
        .order_by("-updated_at")[:5]
    )
    for candidate in candidates:
        names = [candidate.clip.name] + ([candidate.last_frame.name] if candidate.last_frame else [])
        if all(default_storage.exists(name) for name in names):
            return candidate
        log.info("cache: segment %s has key %s but its files are gone", candidate.id, key[:12])
    return None
