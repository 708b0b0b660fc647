"""Fixtures for the rendering tests: tiny real clips made by ffmpeg from lavfi sources.

Real files, not mocks: what these tests guard (stream copy, frame-exact trims, the true last frame) only
exists in real containers. The clips are small and short so the whole suite stays fast on two cores.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import ffmpeg
import pytest

from rendering.fake_api.fal import FakeFalServer, FalFakeConfig
from rendering.fake_api.vertex import FakeVertexServer, VertexConfig
from rendering.media import run_ffmpeg


class MakeClip(Protocol):
    def __call__(
        self,
        path: Path | None = None,
        *,
        seconds: float = 2.0,
        size: str = "320x240",
        fps: int = 30,
        audio: bool = True,
        sample_rate: int = 48000,
        channels: int = 2,
        color: str | None = "red",
        pix_fmt: str = "yuv420p",
    ) -> Path: ...


def write_clip(
    path: Path,
    *,
    seconds: float = 2.0,
    size: str = "320x240",
    fps: int = 30,
    audio: bool = True,
    sample_rate: int = 48000,
    channels: int = 2,
    color: str | None = "red",
    pix_fmt: str = "yuv420p",
) -> Path:
    """Write an H.264 (libx264 ultrafast) + AAC MP4: a solid ``color`` (testsrc2 when None) and a sine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if color is None:
        picture = f"testsrc2=size={size}:rate={fps}:duration={seconds}"
    else:
        picture = f"color=c={color}:size={size}:rate={fps}:duration={seconds}"
    streams: list[Any] = [ffmpeg.input(picture, f="lavfi")]
    options: dict[str, Any] = {"c:v": "libx264", "preset": "ultrafast", "pix_fmt": pix_fmt, "t": seconds}
    if audio:
        tone = f"sine=frequency=440:sample_rate={sample_rate}:duration={seconds}"
        streams.append(ffmpeg.input(tone, f="lavfi"))
        options.update({"c:a": "aac", "ar": sample_rate, "ac": channels})
    run_ffmpeg(ffmpeg.output(*streams, str(path), **options), what=f"make test clip {path.name}")
    return path


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """An empty directory of the test's own (tmp_path also holds the project's isolated media root),
    so "no leftover files" can be asserted by listing it."""
    directory = tmp_path / "work"
    directory.mkdir()
    return directory


@pytest.fixture
def make_clip(tmp_path: Path) -> MakeClip:
    """Factory: ``make_clip(path=None, *, seconds=2.0, size="320x240", fps=30, audio=True,
    sample_rate=48000, channels=2, color="red", pix_fmt="yuv420p") -> Path``.

    With no path the clip goes to a fresh name under the test's tmp_path.
    """
    counter = itertools.count()

    def make(path: Path | None = None, **options: Any) -> Path:
        # The options and their defaults are write_clip's (MakeClip spells them out for callers).
        target = Path(path) if path is not None else tmp_path / f"clip-{next(counter):03d}.mp4"
        return write_clip(target, **options)

    return make


# --- The provider stand-ins, with the providers pointed at them through the documented settings -----


@pytest.fixture
def fal(settings, monkeypatch) -> Iterator[FakeFalServer]:
    with FakeFalServer(FalFakeConfig(queue_latency=0.05, latency=0.3)) as server:
        settings.FAL_QUEUE_URL = server.url
        settings.FAL_KEY = server.config.key
        settings.PUBLIC_BASE_URL = ""  # no webhooks: the pipeline polls
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_file))
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
        yield server


@pytest.fixture
def vertex(settings, monkeypatch) -> Iterator[FakeVertexServer]:
    with FakeVertexServer(VertexConfig(latency=0.3)) as server:
        for name, value in server.client_env().items():
            monkeypatch.setenv(name, value)
        settings.VERTEX_PROJECT = server.project
        settings.VERTEX_LOCATION = server.location
        settings.VERTEX_BASE_URL = server.url
        settings.GOOGLE_APPLICATION_CREDENTIALS = str(server.key_file)
        settings.VERTEX_OUTPUT_GCS_URI = ""
        settings.VERTEX_GCS_BASE_URL = server.url
        yield server
