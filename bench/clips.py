"""Benchmark input: N identical-format H.264 + AAC clips, generated once and cached under var/bench-clips.

Generating a minute of 720p takes longer than most of what the benchmarks measure, so the clips are kept
between runs, in a folder named after every parameter (and a recipe version) so a change never reuses
clips made differently. Requires Django settings to be configured (for the ffmpeg binary).
"""

from __future__ import annotations

from pathlib import Path

import ffmpeg

from rendering.media import atomic_output, run_ffmpeg
from rendering.media_types import parse_size

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO_ROOT / "var" / "bench-clips"
RECIPE_VERSION = 1  # bump when the recipe below changes, so cached clips are regenerated


def clip_set_dir(*, count: int, seconds: float, size: str, fps: int, root: Path = DEFAULT_ROOT) -> Path:
    return root / f"v{RECIPE_VERSION}-{count}x{seconds:g}s-{size}-{fps}fps"


def render_clip(path: Path, *, index: int, seconds: float, size: str, fps: int) -> Path:
    """One clip shaped like a provider's: moving picture (a hue per index so clips differ), a tone,
    libx264 with B-frames and a 2 s GOP, AAC 48 kHz stereo."""
    width, height = parse_size(size)
    picture = ffmpeg.input(f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}", f="lavfi").filter(
        "hue", h=(index * 47) % 360
    )
    tone = ffmpeg.input(f"sine=frequency={220 + 55 * index}:sample_rate=48000:duration={seconds}", f="lavfi")
    with atomic_output(path) as partial:
        out = ffmpeg.output(
            picture,
            tone,
            str(partial),
            **{"c:v": "libx264", "c:a": "aac", "b:a": "128k"},
            preset="veryfast",
            crf=23,
            pix_fmt="yuv420p",
            g=2 * fps,
            ar=48000,
            ac=2,
            movflags="+faststart",
        )
        run_ffmpeg(out, what=f"generate benchmark clip {path.name}")
    return path


def ensure_clips(
    *, count: int, seconds: float, size: str, fps: int, root: Path = DEFAULT_ROOT, verbose: bool = True
) -> list[Path]:
    """The cached clip set for these parameters, rendering only the clips that are missing."""
    directory = clip_set_dir(count=count, seconds=seconds, size=size, fps=fps, root=root)
    paths = [directory / f"clip-{index:02d}.mp4" for index in range(count)]
    for index, path in enumerate(paths):
        if path.is_file():
            continue
        if verbose:
            print(f"generating {path.relative_to(root.parent)} ...", flush=True)
        render_clip(path, index=index, seconds=seconds, size=size, fps=fps)
    return paths
