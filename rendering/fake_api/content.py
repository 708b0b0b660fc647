"""Real MP4 (and JPEG) content for the fake API: the requested size and length, made once and cached."""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from pathlib import Path

from rendering.ffmpeg_binary import ffmpeg_exe, font_file

_lock = threading.Lock()
_cache_dir = Path(tempfile.gettempdir()) / "sora-controller-fake-api"


def video_bytes(size: str, seconds: float, fps: int) -> bytes:
    """An H.264 + AAC MP4 of exactly `seconds` at `size`; cached per (size, seconds, fps)."""
    path = _cache_dir / f"clip-{size}-{seconds:g}s-{fps}fps.mp4"
    with _lock:
        if not path.exists():
            _render(path, size, seconds, fps)
    return path.read_bytes()


def thumbnail_bytes(size: str) -> bytes:
    path = _cache_dir / f"thumb-{size}.jpg"
    with _lock:
        if not path.exists():
            width, height = size.split("x")
            _run(
                ["-f", "lavfi", "-i", f"testsrc2=s={width}x{height}:r=1:d=1", "-frames:v", "1", str(path)],
                path,
            )
    return path.read_bytes()


def _render(path: Path, size: str, seconds: float, fps: int) -> None:
    width, height = (int(v) for v in size.split("x"))
    frames = round(seconds * fps)
    font = font_file()
    label = f"fake video API  {size}  {seconds:g}s"
    text = (
        f"drawtext=text='{label}':fontsize={max(12, height // 24)}:fontcolor=white"
        ":x=20:y=20:box=1:boxcolor=black@0.5"
    )
    if font:
        text += f":fontfile={font}"
    args = [
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=s={width}x{height}:r={fps}:d={seconds}",
        "-f",
        "lavfi",
        "-i",
        f"sine=f=440:sample_rate=48000:d={seconds}",
        "-vf",
        f"{text},format=yuv420p",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        str(2 * fps),
        "-c:a",
        "aac",
        "-ar",
        "48000",
        "-ac",
        "2",
        "-frames:v",
        str(frames),
        "-t",
        f"{seconds}",
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        str(path),
    ]
    _run(args, path)


def _run(args: list[str], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    args = [a if a != str(path) else str(partial) for a in args]
    fmt = ["-f", "image2"] if path.suffix == ".jpg" else []
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args[:-1], *fmt, args[-1]]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"fake API could not make content: {result.stderr[-500:]}")
    os.replace(partial, path)
