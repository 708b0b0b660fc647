"""`even`: equal time slices, the narrative laid evenly over them in whole units, shared context in each.

The units (sentences, list items, screenplay speeches, clauses of very long sentences; a scene heading
joined to the unit after it) are laid onto the slices by `segmentation.parts.spread_units`: grouped
whole into parts of similar length when there are at least as many units as slices, else each unit
repeated over consecutive slices in proportion to its length, with a beginning/continuation/ending cue.
No slice is ever handed a piece of a unit.
"""

from __future__ import annotations

from ..parts import spread_units
from ..registry import register
from ..types import SegmentationContext, SegmentSpec
from .narrative import segment_narrative


@register(
    "even",
    description="Even: equal time slices, the prompt laid evenly across them in whole sentences, "
    "shared subject/style in each",
)
def segment_even(
    prompt: str, duration: float, segment_length: float, context: SegmentationContext
) -> list[SegmentSpec]:
    """Equal time slices; the narrative is laid evenly over them in whole units, each slice carrying the
    shared subject/style."""
    return segment_narrative(
        prompt, duration, segment_length, context, lambda parsed, count: spread_units(parsed.beats, count)
    )
