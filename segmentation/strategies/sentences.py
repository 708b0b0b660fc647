"""`sentences`: scene-aware. Scenes (explicit markers, else paragraphs) are mapped onto the time slices.

* exactly as many scenes as slices: one scene per slice;
* more scenes than slices: consecutive scenes are grouped into balanced slices, cutting at scene
  breaks where that keeps the balance (within a third of a slice's share of the text) and otherwise
  between sentences -- never inside a sentence;
* fewer scenes than slices: each scene gets consecutive slices in proportion to its length (at least
  one); its sentences are spread over them and the later slices are marked "(continued)". A screenplay
  heading (INT./EXT.) is repeated in every slice of its scene.

Every segment carries the shared context (see `segmentation.text`).
"""

from __future__ import annotations

from ..registry import register
from ..text import (
    Scene,
    allocate_proportional,
    partition_balanced,
)
from ..types import SegmentationContext, SegmentSpec
from .narrative import segment_narrative


def _spread_scene(scene: Scene, count: int) -> list[tuple[str, bool]]:
    """Spread one scene over `count` consecutive slices; slices after the first are "continued"."""
    sentences = scene.sentences or (scene.heading or "",)
    heading = scene.heading if scene.sentences else None
    if len(sentences) >= count:
        groups = partition_balanced([len(sentence) + 1 for sentence in sentences], count)
        texts = [" ".join(sentences[start:end]) for start, end in groups]
    else:
        # Fewer sentences than slices: each sentence spans consecutive slices, in order.
        texts = [sentences[slot * len(sentences) // count] for slot in range(count)]
    if heading:
        texts = [f"{heading} {text}" for text in texts]
    return [(text, slot > 0) for slot, text in enumerate(texts)]


def map_scenes(scenes: tuple[Scene, ...], count: int) -> list[tuple[str, bool]]:
    """Map scenes onto `count` slices as `(text, continued)` pairs (rules in the module docstring)."""
    if not scenes:
        return [("", False)] * count
    if len(scenes) == count:
        return [(scene.text, False) for scene in scenes]
    if len(scenes) > count:
        units: list[str] = []
        scene_breaks: list[int] = []
        for scene in scenes:
            units.extend(scene.units)
            scene_breaks.append(len(units))
        weights = [len(unit) + 1 for unit in units]
        groups = partition_balanced(
            weights, count, preferred_cuts=scene_breaks, tolerance=sum(weights) / count / 3
        )
        return [(" ".join(units[start:end]), False) for start, end in groups]
    parts: list[tuple[str, bool]] = []
    shares = allocate_proportional([len(scene.text) for scene in scenes], count)
    for scene, share in zip(scenes, shares, strict=True):
        parts.extend(_spread_scene(scene, share))
    return parts


@register(
    "sentences",
    description="Scenes: split on scene markers and sentences, one scene (or group of scenes) per slice",
)
def segment_by_scenes(
    prompt: str, duration: float, segment_length: float, context: SegmentationContext
) -> list[SegmentSpec]:
    """Scene-aware split on scene markers and sentences, mapped onto equal time slices."""
    return segment_narrative(
        prompt, duration, segment_length, context, lambda parsed, count: map_scenes(parsed.scenes, count)
    )
