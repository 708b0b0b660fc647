"""What we know about a media file after probing it (see rendering.media.probe)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class MediaInfo:
    path: str
    duration: float  # seconds, container duration
    video_codec: str | None  # e.g. "h264"
    width: int | None
    height: int | None
    fps: Fraction | None  # average frame rate
    pix_fmt: str | None  # e.g. "yuv420p"
    video_frames: int | None  # frame count when the container knows it
    audio_codec: str | None  # e.g. "aac", None when there is no audio stream
    sample_rate: int | None
    channels: int | None

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class ClipTarget:
    """The format every clip of a job is brought to so that they concatenate by stream copy."""

    width: int = 1280
    height: int = 720
    fps: int = 30
    video_codec: str = "h264"
    pix_fmt: str = "yuv420p"
    audio_codec: str = "aac"
    sample_rate: int = 48000
    channels: int = 2

    @classmethod
    def from_size(cls, size: str, fps: int = 30) -> ClipTarget:
        width, height = parse_size(size)
        return cls(width=width, height=height, fps=fps)


def parse_size(size: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720); raises ValueError with a readable message otherwise."""
    try:
        w_str, h_str = size.lower().split("x")
        width, height = int(w_str), int(h_str)
    except (AttributeError, ValueError):
        raise ValueError(f"size must look like WIDTHxHEIGHT (e.g. 1280x720), got {size!r}") from None
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"size {size!r} must have positive, even width and height")
    if width > 4096 or height > 4096:
        raise ValueError(f"size {size!r} is larger than 4096 pixels on a side")
    return width, height
