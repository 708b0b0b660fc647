"""Time-side helpers shared by every strategy: input validation, boundary planning, spec assembly.

Everything here is pure (no ORM, no Django settings): limits come from the `SegmentationContext`.

Boundary rule (`plan_boundaries`): contiguous slices from 0 to the duration; every slice is
`segment_length` long except the last, which holds the remainder. Work is done in whole milliseconds,
so float noise (30.0000001 s at 10 s) never creates a sliver; a remainder shorter than
`min_segment_seconds` is merged into the previous slice (30.5 s at 10 s with a 1 s minimum gives
10, 10, 10.5) unless it is the only slice. The last end is the duration exactly, as given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from numbers import Real

from .text import is_blank, validate_prompt
from .types import SegmentationContext, SegmentationError, SegmentSpec

__all__ = [
    "build_specs",
    "fit_lengths",
    "fitted_boundaries",
    "format_number",
    "plan_boundaries",
    "segment_count",
    "validate_duration",
    "validate_job",
    "validate_segment_length",
    "validate_specs",
]


def format_number(value: object) -> str:
    """Render a number for a user-facing message: 10 not 10.0, 30.5, NaN, infinity."""
    if isinstance(value, bool) or not isinstance(value, Real | Decimal):
        return repr(value)
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "infinity" if number > 0 else "-infinity"
    if number.is_integer():
        return str(int(number))
    return repr(number)


def _validate_seconds(value: object, *, field: str, low: float, high: float) -> float:
    bounds = f"between {format_number(low)} and {format_number(high)} seconds"
    if isinstance(value, bool) or not isinstance(value, Real | Decimal):
        raise SegmentationError(f"{field} must be a number of seconds {bounds}, got {value!r}", field=field)
    number = float(value)
    if not math.isfinite(number):
        raise SegmentationError(
            f"{field} must be a finite number {bounds}, got {format_number(number)}", field=field
        )
    if not low <= number <= high:
        raise SegmentationError(f"{field} must be {bounds}, got {format_number(number)}", field=field)
    return number


def validate_duration(duration: object, context: SegmentationContext) -> float:
    """Return the duration as a float, or raise SegmentationError(field="duration_seconds")."""
    return _validate_seconds(
        duration,
        field="duration_seconds",
        low=context.min_duration_seconds,
        high=context.max_duration_seconds,
    )


def validate_segment_length(segment_length: object, context: SegmentationContext) -> float:
    """Return the segment length as a float, or raise SegmentationError(field="segment_seconds")."""
    return _validate_seconds(
        segment_length,
        field="segment_seconds",
        low=context.min_segment_seconds,
        high=context.max_segment_seconds,
    )


def validate_job(
    prompt: object, duration: object, segment_length: object, context: SegmentationContext
) -> tuple[str, float, float]:
    """The shared validation every strategy runs first: prompt, then duration, then segment length.

    Returns `(prompt, duration, segment_length)` with the prompt unchanged (not stripped) and the
    numbers as floats.
    """
    checked_prompt = validate_prompt(prompt, context)
    checked_duration = validate_duration(duration, context)
    checked_length = validate_segment_length(segment_length, context)
    return checked_prompt, checked_duration, checked_length


def _to_millis(seconds: float) -> int:
    return round(seconds * 1000)


def fit_lengths(
    duration: float, target: float, allowed: Sequence[float], min_segment_seconds: float = 1.0
) -> list[float]:
    """Clip lengths, each one the model renders, for a video of `duration` asked in segments of about
    `target` seconds: summing to the duration exactly where the lengths allow it, else to the smallest
    sum above it (the overshoot is trimmed from the last clip only, which must keep at least
    `min_segment_seconds`); among those, the lengths closest to the target, then the fewest. Longest
    first, so the trimmed clip is the shortest. E.g. 30 s at 10: 8+8+8+6 on (4, 6, 8), 10+10+10 on
    (5, 10), 12+12+8 on (4, 8, 12) with the last shown for 6 s.

    Work is in whole milliseconds divided by the lengths' common divisor, so a 30-minute job on any
    real set of lengths is a small dynamic programme.
    """
    lengths = sorted({_to_millis(a) for a in allowed if math.isfinite(a) and _to_millis(a) > 0})
    if not lengths:
        raise SegmentationError("the model renders no clip lengths", field="segment_seconds")
    unit = math.gcd(*lengths)
    steps = [length // unit for length in lengths]
    total_ms, target_ms = _to_millis(duration), _to_millis(target)
    need = -(-total_ms // unit)  # ceil: the sum must reach the duration
    limit = need + max(steps)
    # best[s] = (sum of |length - target| in ms, count, last step) of the best way to sum to s units.
    best: list[tuple[int, int, int] | None] = [None] * (limit + 1)
    best[0] = (0, 0, 0)
    for total in range(1, limit + 1):
        for step in steps:
            previous = best[total - step] if total >= step else None
            if previous is None:
                continue
            candidate = (previous[0] + abs(step * unit - target_ms), previous[1] + 1, step)
            if best[total] is None or candidate[:2] < best[total][:2]:
                best[total] = candidate
    min_ms = max(0, _to_millis(min_segment_seconds))
    candidates: list[list[int]] = []
    for total in range(need, limit + 1):
        if best[total] is None:
            continue
        picked: list[int] = []
        rest = total
        while rest:
            step = best[rest][2]
            picked.append(step * unit)
            rest -= step
        picked.sort(reverse=True)
        if picked[-1] - (total * unit - total_ms) >= min(min_ms, total_ms):
            return [ms / 1000 for ms in picked]
        candidates.append(picked)
    # Every sum leaves the trimmed clip shorter than the minimum: keep the smallest overshoot anyway.
    return [ms / 1000 for ms in candidates[0]]


def fitted_boundaries(
    duration: float, target: float, allowed: Sequence[float], min_segment_seconds: float = 1.0
) -> list[tuple[float, float]]:
    """`fit_lengths` as contiguous shown slices: the last ends at the duration (its clip is trimmed)."""
    boundaries: list[tuple[float, float]] = []
    start_ms = 0
    lengths = fit_lengths(duration, target, allowed, min_segment_seconds)
    for index, length in enumerate(lengths):
        end_ms = start_ms + _to_millis(length)
        end = float(duration) if index == len(lengths) - 1 else end_ms / 1000
        boundaries.append((start_ms / 1000, end))
        start_ms = end_ms
    return boundaries


def plan_boundaries(
    duration: float,
    segment_length: float,
    min_segment_seconds: float = 1.0,
    clip_lengths: Sequence[float] | None = None,
) -> list[tuple[float, float]]:
    """Contiguous `(start, end)` slices covering `[0, duration]`; see the module docstring for the rule.
    With `clip_lengths` (what the chosen model renders), the slices are those lengths (`fit_lengths`)."""
    if clip_lengths:
        return fitted_boundaries(duration, segment_length, clip_lengths, min_segment_seconds)
    if not math.isfinite(duration) or _to_millis(duration) <= 0:
        raise SegmentationError(
            f"duration_seconds must be a positive number of seconds, got {format_number(duration)}",
            field="duration_seconds",
        )
    if not math.isfinite(segment_length) or _to_millis(segment_length) <= 0:
        raise SegmentationError(
            f"segment_seconds must be a positive number of seconds, got {format_number(segment_length)}",
            field="segment_seconds",
        )
    total_ms = _to_millis(duration)
    step_ms = _to_millis(segment_length)
    min_ms = max(0, _to_millis(min_segment_seconds)) if math.isfinite(min_segment_seconds) else 0
    full, remainder = divmod(total_ms, step_ms)
    if full == 0:
        count = 1
    elif remainder == 0 or remainder < min_ms:
        count = full  # exact fit, or a too-short remainder merged into the last slice
    else:
        count = full + 1
    boundaries: list[tuple[float, float]] = []
    for index in range(count):
        start = index * step_ms / 1000
        end = float(duration) if index == count - 1 else (index + 1) * step_ms / 1000
        boundaries.append((start, end))
    return boundaries


def segment_count(duration: float, segment_length: float, min_segment_seconds: float = 1.0) -> int:
    """How many segments `plan_boundaries` makes for these inputs."""
    return len(plan_boundaries(duration, segment_length, min_segment_seconds))


def build_specs(
    prompts: Sequence[str], boundaries: Sequence[tuple[float, float]], *, is_manual: bool = False
) -> list[SegmentSpec]:
    """Pair prompts with boundaries into SegmentSpecs indexed 0..n-1."""
    if len(prompts) != len(boundaries):
        raise SegmentationError(
            f"got {len(prompts)} segment prompts for {len(boundaries)} time slices", field="segments"
        )
    return [
        SegmentSpec(index=index, prompt=prompt, start_seconds=start, end_seconds=end, is_manual=is_manual)
        for index, (prompt, (start, end)) in enumerate(zip(prompts, boundaries, strict=True))
    ]


def validate_specs(specs: Sequence[SegmentSpec], duration: float, context: SegmentationContext) -> None:
    """Check the invariants every strategy promises; raise SegmentationError(field="segments") if broken.

    Indexes 0..n-1, contiguous slices, the first starting at 0 and the last ending at `duration`, every
    prompt non-empty and at most `context.max_segment_prompt_chars` characters.
    """
    if not specs:
        raise SegmentationError("segmentation produced no segments", field="segments")
    previous_end = 0.0
    for position, spec in enumerate(specs):
        number = position + 1
        if spec.index != position:
            raise SegmentationError(
                f"segment {number} has index {spec.index}; indexes must run 0..{len(specs) - 1}",
                field="segments",
            )
        if spec.start_seconds != previous_end:
            raise SegmentationError(
                f"segment {number} starts at {format_number(spec.start_seconds)} s but the previous one "
                f"ends at {format_number(previous_end)} s",
                field="segments",
            )
        if not spec.end_seconds > spec.start_seconds:
            raise SegmentationError(f"segment {number} has no length", field="segments")
        if not isinstance(spec.prompt, str) or is_blank(spec.prompt):
            raise SegmentationError(f"segment {number} has an empty prompt", field="segments")
        if len(spec.prompt) > context.max_segment_prompt_chars:
            raise SegmentationError(
                f"segment {number} prompt is {len(spec.prompt)} characters; the limit is "
                f"{context.max_segment_prompt_chars} characters",
                field="segments",
            )
        previous_end = spec.end_seconds
    if specs[-1].end_seconds != duration:
        raise SegmentationError(
            f"the last segment ends at {format_number(specs[-1].end_seconds)} s, not at the duration "
            f"{format_number(duration)} s",
            field="segments",
        )
