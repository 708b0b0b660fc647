"""`even`: equal time slices, the narrative cut into equal-length parts, shared context in every slice."""

from __future__ import annotations

from collections.abc import Sequence

from ..registry import register
from ..text import partition_balanced, split_words
from ..types import SegmentationContext, SegmentSpec
from .narrative import segment_narrative


def split_evenly(units: Sequence[str], count: int) -> list[tuple[str, bool]]:
    """Cut the narrative into `count` consecutive parts of roughly equal length.

    Returns `(text, continued)` pairs. Cuts fall between sentences (`units`) when there are at least
    `count` of them, else between words; with fewer words than parts, every part is the whole
    narrative and the later ones are marked as continuing it. No narrative (only labelled context
    lines) gives empty parts, which compose to the context plus the shot header.
    """
    if not units:
        return [("", False)] * count
    pieces = list(units) if len(units) >= count else split_words(" ".join(units))
    if len(pieces) < count:
        whole = " ".join(units)
        return [(whole, index > 0) for index in range(count)]
    groups = partition_balanced([len(piece) + 1 for piece in pieces], count)
    return [(" ".join(pieces[start:end]), False) for start, end in groups]


@register(
    "even",
    description="Even: equal time slices, the prompt split evenly across them, shared subject/style in each",
)
def segment_even(
    prompt: str, duration: float, segment_length: float, context: SegmentationContext
) -> list[SegmentSpec]:
    """Equal time slices; the narrative is split evenly and every slice carries the shared subject/style."""
    return segment_narrative(
        prompt, duration, segment_length, context, lambda parsed, count: split_evenly(parsed.units, count)
    )
