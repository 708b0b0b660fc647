"""The pipeline that the automatic strategies share: validate, slice the time, divide the narrative
into one part per slice, compose each part with the shared subject/style, and check the result.
Strategies differ only in how they divide (`divide`)."""

from __future__ import annotations

from collections.abc import Callable

from ..text import ParsedPrompt, compose_segment_prompts, parse_prompt
from ..timing import build_specs, plan_boundaries, validate_job, validate_specs
from ..types import Part, SegmentationContext, SegmentSpec

# (parsed prompt, number of slices) -> one part (whole units and an optional cue) per slice
Divide = Callable[[ParsedPrompt, int], list[Part]]


def segment_narrative(
    prompt: str, duration: float, segment_length: float, context: SegmentationContext, divide: Divide
) -> list[SegmentSpec]:
    prompt, duration, segment_length = validate_job(prompt, duration, segment_length, context)
    boundaries = plan_boundaries(duration, segment_length, context.min_segment_seconds, context.clip_lengths)
    parsed = parse_prompt(prompt)
    prompts = compose_segment_prompts(
        parsed, divide(parsed, len(boundaries)), context.max_segment_prompt_chars
    )
    specs = build_specs(prompts, boundaries)
    validate_specs(specs, duration, context)
    return specs
