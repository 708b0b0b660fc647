"""`manual`: the person's own per-segment prompts, used verbatim (stripped), one per time slice.

The job prompt is validated like every strategy's but is not mixed into the segment prompts.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..registry import register
from ..text import is_blank
from ..timing import build_specs, format_number, plan_boundaries, validate_job, validate_specs
from ..types import SegmentationContext, SegmentationError, SegmentSpec


def check_manual_prompts(
    manual_prompts: object, duration: float, segment_length: float, count: int, max_chars: int
) -> list[str]:
    """Return the stripped manual prompts, or raise SegmentationError: field "segments" for the list as a
    whole, "segments.<i>.prompt" for one prompt (the path the API's body gives it, so a page can show the
    message on that card)."""
    timing = f"{format_number(duration)} s at {format_number(segment_length)} s per segment"
    needed = f"{count} segment prompt{'s' if count != 1 else ''}"
    prompts: list[object]
    if manual_prompts is None:
        prompts = []
    elif isinstance(manual_prompts, str):
        prompts = [manual_prompts]  # one prompt, not one per character
    elif isinstance(manual_prompts, Iterable):
        prompts = list(manual_prompts)
    else:
        raise SegmentationError(
            f"manual mode needs a list of segment prompts, got {type(manual_prompts).__name__}",
            field="segments",
        )
    if not prompts:
        raise SegmentationError(
            f"manual mode needs {needed} for {timing}, got none; write one prompt per segment",
            field="segments",
        )
    if len(prompts) != count:
        raise SegmentationError(
            f"manual mode needs {needed} for {timing}, got {len(prompts)}", field="segments"
        )
    cleaned: list[str] = []
    for position, text in enumerate(prompts, start=1):
        field = f"segments.{position - 1}.prompt"
        if not isinstance(text, str):
            raise SegmentationError(
                f"segment prompt {position} must be text, got {type(text).__name__}", field=field
            )
        if is_blank(text):
            raise SegmentationError(
                f"segment prompt {position} is empty; describe what happens in that segment", field=field
            )
        text = text.strip()
        if len(text) > max_chars:
            raise SegmentationError(
                f"segment prompt {position} is {len(text)} characters long; the limit is {max_chars} "
                "characters per segment",
                field=field,
            )
        cleaned.append(text)
    return cleaned


@register("manual", description="Manual: your own prompt for each segment")
def segment_manual(
    prompt: str, duration: float, segment_length: float, context: SegmentationContext
) -> list[SegmentSpec]:
    """The person's own per-segment prompts, verbatim."""
    _, duration, segment_length = validate_job(prompt, duration, segment_length, context)
    boundaries = plan_boundaries(duration, segment_length, context.min_segment_seconds)
    prompts = check_manual_prompts(
        context.manual_prompts, duration, segment_length, len(boundaries), context.max_segment_prompt_chars
    )
    specs = build_specs(prompts, boundaries, is_manual=True)
    validate_specs(specs, duration, context)
    return specs
