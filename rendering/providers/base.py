"""The provider contract: submit a clip, poll it, download it; plus what a provider/model can do."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path


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
    price_per_second: dict[str, Decimal] = field(default_factory=dict)
    max_prompt_chars: int = 32000
    supports_reference_image: bool = True

    def check_model(self, model: str) -> str:
        chosen = model or self.default_model
        if chosen not in self.models:
            raise CapabilityError(
                f"unknown model {chosen!r}; this provider offers: {', '.join(self.models)}", field="model"
            )
        return chosen

    def check_size(self, size: str) -> str:
        from rendering.media_types import parse_size

        try:
            parse_size(size)
        except ValueError as exc:
            raise CapabilityError(str(exc), field="size") from None
        if self.sizes is not None and size not in self.sizes:
            raise CapabilityError(
                f"size {size!r} is not offered; choose one of: {', '.join(self.sizes)}", field="size"
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

    def price(self, model: str) -> Decimal:
        return self.price_per_second.get(model, Decimal("0"))

    def cost(self, model: str, billed_seconds: float) -> Decimal:
        # Providers bill whole seconds; round up so the estimate never undershoots.
        return (self.price(model) * Decimal(math.ceil(billed_seconds - 1e-9))).quantize(Decimal("0.0001"))


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
