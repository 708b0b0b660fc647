"""Value types shared by every segmentation strategy. No ORM here: strategies are pure functions."""

from __future__ import annotations

from dataclasses import dataclass, field


class SegmentationError(ValueError):
    """Bad input to a strategy. `field` names the offending input so APIs can report it per field."""

    def __init__(self, message: str, *, field: str = "prompt") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class SegmentSpec:
    index: int
    prompt: str
    start_seconds: float
    end_seconds: float
    is_manual: bool = False

    @property
    def duration_seconds(self) -> float:
        return self.end_seconds - self.start_seconds


@dataclass(frozen=True)
class SegmentationContext:
    """Everything a strategy may use beyond (prompt, duration, segment_length)."""

    manual_prompts: tuple[str, ...] = ()
    max_segment_prompt_chars: int = 32000
    min_duration_seconds: float = 1.0
    max_duration_seconds: float = 1800.0
    min_segment_seconds: float = 1.0
    max_segment_seconds: float = 60.0
    max_prompt_chars: int = 200_000
    # The clip lengths the chosen model renders: the slices are planned from them (None: any length).
    clip_lengths: tuple[float, ...] | None = None
    extra: dict = field(default_factory=dict)
