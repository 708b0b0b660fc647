"""Time-side rules: input validation, boundary planning, spec assembly and the spec invariants."""

from __future__ import annotations

import itertools
import math
from decimal import Decimal

import pytest

from segmentation.text import validate_prompt
from segmentation.timing import (
    build_specs,
    format_number,
    plan_boundaries,
    segment_count,
    validate_duration,
    validate_job,
    validate_segment_length,
    validate_specs,
)
from segmentation.types import SegmentationContext, SegmentationError, SegmentSpec

CTX = SegmentationContext()


def lengths(boundaries: list[tuple[float, float]]) -> list[float]:
    return [round(end - start, 6) for start, end in boundaries]


# --- plan_boundaries ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "segment", "minimum", "expected"),
    [
        (25, 10, 1, [(0, 10), (10, 20), (20, 25)]),
        (30, 10, 1, [(0, 10), (10, 20), (20, 30)]),
        (30.0000001, 10, 1, [(0, 10), (10, 20), (20, 30.0000001)]),  # float noise: no sliver
        (29.9999999, 10, 1, [(0, 10), (10, 20), (20, 29.9999999)]),
        (30.5, 10, 1, [(0, 10), (10, 20), (20, 30.5)]),  # short remainder merged
        (31, 10, 1, [(0, 10), (10, 20), (20, 30), (30, 31)]),  # remainder == minimum is kept
        (30.5, 10, 0.25, [(0, 10), (10, 20), (20, 30), (30, 30.5)]),
        (5, 10, 1, [(0, 5)]),  # shorter than one segment
        (0.5, 10, 1, [(0, 0.5)]),  # the only segment is never merged away
        (1, 1, 1, [(0, 1)]),
        (10, 10, 1, [(0, 10)]),
        (3.3333, 1.1111, 1, [(0, 1.111), (1.111, 2.222), (2.222, 3.3333)]),  # milliseconds
        (12.3456, 5, 1, [(0, 5), (5, 10), (10, 12.3456)]),
    ],
)
def test_plan_boundaries(duration: float, segment: float, minimum: float, expected: list) -> None:
    assert plan_boundaries(duration, segment, minimum) == [(float(a), float(b)) for a, b in expected]


def test_plan_boundaries_default_minimum_is_one_second() -> None:
    assert plan_boundaries(30.5, 10) == [(0.0, 10.0), (10.0, 20.0), (20.0, 30.5)]


def test_plan_boundaries_thirty_minutes() -> None:
    boundaries = plan_boundaries(1800, 10)
    assert len(boundaries) == 180 == segment_count(1800, 10)
    assert boundaries[-1] == (1790.0, 1800.0)
    assert len(plan_boundaries(1800, 1)) == 1800


@pytest.mark.parametrize(
    "duration", [1, 1.5, 7.25, 9.999, 10, 10.0004, 19.9991, 59.9999999, 61, 100.1, 1799.9]
)
@pytest.mark.parametrize("segment", [1, 2.5, 4, 10, 12, 33.3, 60])
def test_plan_boundaries_invariants(duration: float, segment: float) -> None:
    boundaries = plan_boundaries(duration, segment, 1.0)
    assert boundaries[0][0] == 0
    assert boundaries[-1][1] == duration  # exactly, not rounded
    for (_, end), (start, _) in itertools.pairwise(boundaries):
        assert end == start
    for start, end in boundaries:
        assert end > start
        assert round(start * 1000) == start * 1000 or start == 0  # starts are whole milliseconds
    for slice_length in lengths(boundaries)[:-1]:
        assert slice_length == pytest.approx(round(segment, 3))
    last = boundaries[-1][1] - boundaries[-1][0]
    if len(boundaries) > 1:
        assert 1.0 - 1e-6 <= last < segment + 1.0 + 1e-6


@pytest.mark.parametrize(
    ("duration", "segment", "field"),
    [
        (0, 10, "duration_seconds"),
        (-1, 10, "duration_seconds"),
        (math.nan, 10, "duration_seconds"),
        (10, 0, "segment_seconds"),
        (10, -2, "segment_seconds"),
        (10, math.inf, "segment_seconds"),
    ],
)
def test_plan_boundaries_rejects_non_positive(duration: float, segment: float, field: str) -> None:
    with pytest.raises(SegmentationError) as info:
        plan_boundaries(duration, segment, 1)
    assert info.value.field == field


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("duration", [1, 1.0, 30, 1799.999, 1800, 1800.0, Decimal("12.5")])
def test_duration_accepted(duration: float) -> None:
    assert validate_duration(duration, CTX) == float(duration)


@pytest.mark.parametrize(
    ("duration", "shown"),
    [
        (0, "got 0"),
        (-5, "got -5"),
        (0.999, "got 0.999"),
        (1800.5, "got 1800.5"),
        (3600, "got 3600"),
        (math.nan, "got NaN"),
        (math.inf, "got infinity"),
        (-math.inf, "got -infinity"),
        (True, "got True"),
        ("30", "got '30'"),
        (None, "got None"),
    ],
)
def test_duration_refused(duration: object, shown: str) -> None:
    with pytest.raises(SegmentationError) as info:
        validate_duration(duration, CTX)
    assert info.value.field == "duration_seconds"
    assert "between 1 and 1800 seconds" in info.value.message
    assert info.value.message.endswith(shown)
    assert str(info.value) == info.value.message


def test_duration_message_is_actionable() -> None:
    with pytest.raises(SegmentationError) as info:
        validate_duration(0, CTX)
    assert info.value.message == "duration_seconds must be between 1 and 1800 seconds, got 0"


def test_duration_bounds_come_from_context() -> None:
    ctx = SegmentationContext(min_duration_seconds=5, max_duration_seconds=90)
    with pytest.raises(SegmentationError, match="between 5 and 90 seconds, got 91"):
        validate_duration(91, ctx)
    assert validate_duration(90, ctx) == 90.0


@pytest.mark.parametrize("segment", [1, 4, 10, 59.5, 60])
def test_segment_length_accepted(segment: float) -> None:
    assert validate_segment_length(segment, CTX) == float(segment)


@pytest.mark.parametrize("segment", [0, 0.5, -10, 60.001, 61, math.nan, math.inf, "10", False])
def test_segment_length_refused(segment: object) -> None:
    with pytest.raises(SegmentationError) as info:
        validate_segment_length(segment, CTX)
    assert info.value.field == "segment_seconds"
    assert "segment_seconds must be" in info.value.message
    assert "between 1 and 60 seconds" in info.value.message


def test_segment_length_message() -> None:
    with pytest.raises(SegmentationError) as info:
        validate_segment_length(61, CTX)
    assert info.value.message == "segment_seconds must be between 1 and 60 seconds, got 61"


def test_validate_job_checks_prompt_first_and_returns_floats() -> None:
    assert validate_job("A cat.", 30, 10, CTX) == ("A cat.", 30.0, 10.0)
    with pytest.raises(SegmentationError) as info:
        validate_job("  ", 0, 0, CTX)
    assert info.value.field == "prompt"
    with pytest.raises(SegmentationError) as info:
        validate_job("A cat.", 30, 0, CTX)
    assert info.value.field == "segment_seconds"


def test_prompt_length_limit() -> None:
    ctx = SegmentationContext(max_prompt_chars=10)
    assert validate_prompt("x" * 10, ctx) == "x" * 10
    with pytest.raises(SegmentationError) as info:
        validate_prompt("x" * 11, ctx)
    assert info.value.field == "prompt"
    assert "11 characters" in info.value.message and "maximum is 10" in info.value.message


@pytest.mark.parametrize(
    ("value", "text"),
    [(10, "10"), (10.0, "10"), (30.5, "30.5"), (1800.0001, "1800.0001"), (math.nan, "NaN"), ("x", "'x'")],
)
def test_format_number(value: object, text: str) -> None:
    assert format_number(value) == text


# --- specs ----------------------------------------------------------------------------------------


def test_build_specs_pairs_prompts_and_boundaries() -> None:
    specs = build_specs(["a", "b"], [(0.0, 10.0), (10.0, 15.0)], is_manual=True)
    assert specs == [SegmentSpec(0, "a", 0.0, 10.0, True), SegmentSpec(1, "b", 10.0, 15.0, True)]
    assert specs[1].duration_seconds == 5.0
    with pytest.raises(SegmentationError) as info:
        build_specs(["a"], [(0.0, 10.0), (10.0, 15.0)])
    assert info.value.field == "segments"


@pytest.mark.parametrize(
    "specs",
    [
        [],
        [SegmentSpec(1, "a", 0.0, 10.0)],  # index does not start at 0
        [SegmentSpec(0, "a", 0.0, 5.0), SegmentSpec(1, "b", 6.0, 10.0)],  # gap
        [SegmentSpec(0, "a", 1.0, 10.0)],  # does not start at 0
        [SegmentSpec(0, "a", 0.0, 9.0)],  # does not end at the duration
        [SegmentSpec(0, " \u3000", 0.0, 10.0)],  # blank prompt
        [SegmentSpec(0, "x" * 32001, 0.0, 10.0)],  # prompt too long
        [SegmentSpec(0, "a", 0.0, 0.0), SegmentSpec(1, "b", 0.0, 10.0)],  # zero length
    ],
)
def test_validate_specs_rejects_broken_plans(specs: list[SegmentSpec]) -> None:
    with pytest.raises(SegmentationError) as info:
        validate_specs(specs, 10.0, CTX)
    assert info.value.field == "segments"


def test_validate_specs_accepts_good_plan() -> None:
    validate_specs([SegmentSpec(0, "x" * 32000, 0.0, 10.0), SegmentSpec(1, "b", 10.0, 12.5)], 12.5, CTX)
