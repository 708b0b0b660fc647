"""The provider contract: submit a clip, poll it, download it; plus what a provider/model can do."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# The catalogue types live below jobs (planning prices with them); providers build them.
from jobs.catalogue import CapabilityError, ModelSpec, ProviderCatalogue

__all__ = [
    "PERMANENT_FAILURE_CODES",
    "CapabilityError",
    "ModelSpec",
    "ProgressCallback",
    "ProviderCatalogue",
    "ProviderError",
    "ProviderTask",
    "RenderRequest",
    "TaskState",
    "VideoProvider",
]

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


@dataclass(frozen=True)
class RenderRequest:
    prompt: str
    seconds: float
    size: str
    fps: int
    model: str
    # The first frame the clip starts from (chain continuity, or the reference image on a model without
    # reference slots), already fitted to the size where the model insists.
    reference_image: Path | None = None
    # The frame the clip must end on (bridge continuity), where the model takes one.
    last_frame: Path | None = None
    # Reference ("asset") images, where the model has slots for them.
    reference_images: tuple[Path, ...] = ()
    # Render a soundtrack where the model offers audio.
    audio: bool = False
    seed: int | None = None
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
    def catalogue(self) -> ProviderCatalogue:
        """The provider's models: lengths, sizes, prices, inputs, and the settings it needs."""

    @abstractmethod
    def submit(self, request: RenderRequest, *, on_progress: ProgressCallback | None = None) -> ProviderTask:
        """Start rendering one clip; return the provider's task (its id is stored before polling)."""

    @abstractmethod
    def poll(self, task_id: str) -> ProviderTask: ...

    @abstractmethod
    def download(self, task_id: str, dest: Path) -> Path:
        """Write the finished clip to `dest` (complete or not at all)."""

    def cancel(self, task_id: str) -> None:  # noqa: B027 - optional: not every protocol can cancel
        """Ask the provider to stop rendering `task_id` (best effort; a finished task stays finished)."""
