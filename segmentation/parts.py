"""What a strategy hands to composition: one `Part` per time slice, made of whole units, with a `Cue`
when the slice is one of several showing the same action.

The one rule every automatic strategy follows ("never a fragment"):

* at least as many units as slices: consecutive units are grouped whole into balanced slices;
* fewer units than slices: each unit spans consecutive slices in proportion to its length (at least
  one each), and is repeated whole in every slice it spans. Each slice of a span carries a cue saying
  where in that action it is: the first is the ``beginning``, the last the ``ending``, the others a
  ``continuation``, always with ``part i of n`` -- the same words whether the job has 2 slices or 180.
"""

from __future__ import annotations

from collections.abc import Sequence

from .text import allocate_proportional, partition_balanced
from .types import Cue, Part


def span_cues(count: int) -> list[Cue | None]:
    """The cues of one action spread over `count` consecutive slices (none for a single slice)."""
    if count < 2:
        return [None] * count
    return [Cue(part, count) for part in range(1, count + 1)]


def spread_units(units: Sequence[str], count: int) -> list[Part]:
    """Lay `units` onto `count` consecutive slices by the module's rule; never cuts a unit."""
    if count < 1:
        raise ValueError(f"cannot lay units onto {count} slices")
    if not units:
        return [Part("")] * count
    if len(units) >= count:
        groups = partition_balanced([len(unit) + 1 for unit in units], count)
        return [Part(" ".join(units[start:end])) for start, end in groups]
    parts: list[Part] = []
    shares = allocate_proportional([len(unit) for unit in units], count)
    for unit, share in zip(units, shares, strict=True):
        parts.extend(Part(unit, cue) for cue in span_cues(share))
    return parts
