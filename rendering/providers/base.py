"""The provider contract: submit a clip, poll it, download it; plus what a provider/model can do."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

# Codes of a failed render that no retry can fix; any other failure is worth another attempt.
PERMANENT_FAILURE_CODES = frozenset(
    {
        "moderation_blocked",
        "invalid_request",
        "content_policy_violation",
        "invalid_prompt",
        "invalid_image_size",
    }
)


class ProviderError(Exception):
    """A provider call failed. `permanent` says whether trying again can help (healthchecks-style)."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        code: str = "",
        retry_after: float | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.code = code
        self.retry_after = retry_after
        self.status_code = status_code


class CapabilityError(ValueError):
    """A request that the provider cannot serve (size, model, length). `field` names the input."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Capabilities:
    models: tuple[str, ...]
    default_model: str
    # None: any even WIDTHxHEIGHT is accepted.
    sizes: tuple[str, ...] | None
    # None: any length is rendered exactly; else the provider renders only these lengths.
    clip_seconds: tuple[float, ...] | None
    # USD per rendered second, by "model" or, more specific, "model@WIDTHxHEIGHT".
    price_per_second: dict[str, Decimal] = field(default_factory=dict)
    max_prompt_chars: int = 32000
    supports_reference_image: bool = True
    # Sizes per model where a model offers fewer than `sizes`.
    sizes_by_model: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The provider refuses a reference image that is not exactly the clip's size (the Videos API).
    reference_must_match_size: bool = False

    def check_model(self, model: str) -> str:
        chosen = model or self.default_model
        if chosen not in self.models:
            raise CapabilityError(
                f"unknown model {chosen!r}; this provider offers: {', '.join(self.models)}", field="model"
            )
        return chosen

    def check_size(self, size: str, model: str = "") -> str:
        from rendering.media_types import parse_size

        try:
            parse_size(size)
        except ValueError as exc:
            raise CapabilityError(str(exc), field="size") from None
        allowed = self.sizes_by_model.get(model) or self.sizes
        if allowed is not None and size not in allowed:
            who = f"model {model}" if model in self.sizes_by_model else "this provider"
            raise CapabilityError(
                f"size {size!r} is not offered by {who}; choose one of: {', '.join(allowed)}", field="size"
            )
        return size

    def billed_seconds(self, seconds: float) -> float:
        """The clip length the provider renders (and bills) for a segment of `seconds`.

        Providers with a fixed set of lengths render the nearest allowed length at or above the
        segment; assembly trims the extra.
        """
        if self.clip_seconds is None:
            return seconds
        for allowed in sorted(self.clip_seconds):
            if allowed + 1e-9 >= seconds:
                return float(allowed)
        longest = max(self.clip_seconds)
        raise CapabilityError(
            f"segments of {seconds:g} s are longer than this provider's longest clip ({longest:g} s); "
            f"use segment_seconds of at most {longest:g}",
            field="segment_seconds",
        )

    def price(self, model: str, size: str = "") -> Decimal:
        if size and f"{model}@{size}" in self.price_per_second:
            return self.price_per_second[f"{model}@{size}"]
        return self.price_per_second.get(model, Decimal("0"))

    def cost(self, model: str, billed_seconds: float, size: str = "") -> Decimal:
        # Providers bill whole seconds; round up so the estimate never undershoots.
        seconds = Decimal(math.ceil(billed_seconds - 1e-9))
        return (self.price(model, size) * seconds).quantize(Decimal("0.0001"))


@dataclass(frozen=True)
class RenderRequest:
    prompt: str
    seconds: float
    size: str
    fps: int
    model: str
    reference_image: Path | None = None
    # For providers that draw (local): which segment this is, to make each visibly different.
    segment_index: int = 0
    segment_count: int = 1
    job_key: str = ""
    # Sent as Idempotency-Key where the protocol allows, so a create retried after a lost response
    # is not billed twice.
    idempotency_key: str = ""


class TaskState:
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True)
class ProviderTask:
    id: str
    status: str
    progress: float = 0.0
    error_code: str = ""
    error_message: str = ""
    # Seconds the provider asks us to wait before polling again, when it says.
    poll_after: float | None = None

    @property
    def done(self) -> bool:
        return self.status in {TaskState.COMPLETED, TaskState.FAILED}


ProgressCallback = Callable[[float], None]


class VideoProvider(ABC):
    name: str = ""

    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @abstractmethod
    def submit(self, request: RenderRequest, *, on_progress: ProgressCallback | None = None) -> ProviderTask:
        """Start rendering one clip; return the provider's task (its id is stored before polling)."""

    @abstractmethod
    def poll(self, task_id: str) -> ProviderTask: ...

    @abstractmethod
    def download(self, task_id: str, dest: Path) -> Path:
        """Write the finished clip to `dest` (complete or not at all)."""
