"""`sentences`: scene-aware. Scenes (explicit markers, else paragraphs) are mapped onto the time slices.

* exactly as many scenes as slices: one scene per slice;
* more scenes than slices: consecutive scenes are grouped into balanced slices, cutting at scene
  breaks where that keeps the balance (within a third of a slice's share of the text) and otherwise
  between units (sentences, list items, speeches) -- never inside one;
* fewer scenes than slices: each scene gets consecutive slices in proportion to its length (at least
  one), and its units are laid over them by `segmentation.parts.spread_units` (grouped whole, or a
  unit repeated over the slices it spans). Every slice of a scene that spans several carries the cue
  of where in the scene it is (beginning, continuation, ending; part i of n). A screenplay heading
  (INT./EXT.) is repeated in every slice of its scene.

Every segment carries the shared context (see `segmentation.text`).
"""

from __future__ import annotations

from ..parts import span_cues, spread_units
from ..registry import register
from ..text import Scene, allocate_proportional, partition_balanced
from ..types import Part, SegmentationContext, SegmentSpec
from .narrative import segment_narrative


def _spread_scene(scene: Scene, count: int) -> list[Part]:
    """Lay one scene over `count` consecutive slices, each with the scene's cue."""
    if count == 1:
        return [Part(scene.text)]
    units = scene.sentences or (scene.heading or "",)
    heading = scene.heading if scene.sentences else None
    texts = [part.text for part in spread_units(units, count)]
    if heading:
        texts = [f"{heading} {text}" for text in texts]
    return [Part(text, cue) for text, cue in zip(texts, span_cues(count), strict=True)]


def map_scenes(scenes: tuple[Scene, ...], count: int) -> list[Part]:
    """Map scenes onto `count` slices (rules in the module docstring)."""
    if not scenes:
        return [Part("")] * count
    if len(scenes) == count:
        return [Part(scene.text) for scene in scenes]
    if len(scenes) > count:
        units: list[str] = []
        scene_breaks: list[int] = []
        for scene in scenes:
            units.extend(scene.beats)  # a heading stays with its scene's first unit
            scene_breaks.append(len(units))
        weights = [len(unit) + 1 for unit in units]
        groups = partition_balanced(
            weights, count, preferred_cuts=scene_breaks, tolerance=sum(weights) / count / 3
        )
        return [Part(" ".join(units[start:end])) for start, end in groups]
    parts: list[Part] = []
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
