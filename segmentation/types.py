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


@dataclass(frozen=True)
class Cue:
    """Slice `part` (1-based) of the `of` consecutive slices that show one action."""

    part: int
    of: int

    def __post_init__(self) -> None:
        if not 1 <= self.part <= self.of or self.of < 2:
            raise ValueError(f"a cue needs 1 <= part <= of and of >= 2, got part {self.part} of {self.of}")

    @property
    def position(self) -> str:
        if self.part == 1:
            return "beginning"
        if self.part == self.of:
            return "ending"
        return "continuation"

    @property
    def label(self) -> str:
        """How the shot header says it: "continuation, part 2 of 3"."""
        return f"{self.position}, part {self.part} of {self.of}"


@dataclass(frozen=True)
class Part:
    """The narrative of one slice (whole units joined by spaces) and its cue, if it continues an action."""

    text: str
    cue: Cue | None = None
