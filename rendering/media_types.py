"""What we know about a media file after probing it (see rendering.media.probe)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from jobs.sizes import parse_size

__all__ = ["ClipTarget", "MediaInfo", "parse_size"]


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
