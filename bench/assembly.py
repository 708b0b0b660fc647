"""Benchmark: join the same clips four ways and compare wall time with our ``assemble()``.

    python bench/assembly.py [--clips 6] [--seconds 10] [--size 1280x720] [--fps 30] [--no-moviepy]

(a) ours: ``rendering.assembly.assemble`` (probe, conform nothing, one stream copy, verify)
(b) MoviePy 2.x ``concatenate_videoclips`` + ``write_videofile`` (libx264/aac): what sora-extend and
    MoneyPrinterTurbo do
(c) a plain ffmpeg re-encode of the concatenation (concat demuxer + libx264 veryfast + aac)
(d) a bare ``ffmpeg -f concat -safe 0 -i list -c copy out.mp4``

Targets (docs/architecture.md, Pitfalls): ours at least 100x faster than MoviePy, and within 2x of
the bare stream copy (our extra work is probing and verifying). Exits 1 when a target that was measured fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]

FAST_RUNS = 5  # best of N for the sub-second methods: removes page-cache and scheduler noise
SLOW_RUNS = 1  # one run is plenty when a run takes tens of seconds
MOVIEPY_TARGET = 100.0  # ours must be at least this many times faster than MoviePy
BARE_COPY_TARGET = 2.0  # ours may take at most this many times the bare stream copy


def _setup_django() -> None:
    """Make ``python bench/assembly.py`` work from the repo root (sys.path[0] is bench/ then)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sora_controller.settings")
    import django

    django.setup()


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=6, help="number of clips (default 6)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per clip (default 10)")
    parser.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT (default 1280x720)")
    parser.add_argument("--fps", type=int, default=30, help="frames per second (default 30)")
    parser.add_argument("--no-moviepy", action="store_true", help="skip the (slow) MoviePy method")
    args = parser.parse_args(list(argv))
    if args.clips < 1 or args.seconds <= 0 or args.fps < 1:
        parser.error("--clips, --seconds and --fps must be positive")
    return args


def best_of(runs: int, job: Callable[[], Path]) -> tuple[float, Path]:
    """Smallest wall time of ``runs`` calls (the least disturbed one), and the output path."""
    best = float("inf")
    out = Path()
    for _ in range(runs):
        started = time.perf_counter()
        out = job()
        best = min(best, time.perf_counter() - started)
    return best, out


# ------------------------------------------------------------------------------------------ methods


def write_concat_list(paths: Sequence[Path], directory: Path) -> Path:
    """The list file the plain-ffmpeg methods read (written once, outside the timings)."""
    quoted = ("'" + str(p.resolve()).replace("'", "'\\''") + "'" for p in paths)
    listing = directory / "clips.txt"
    listing.write_text("".join(f"file {q}\n" for q in quoted), encoding="utf-8")
    return listing


def run_ours(paths: Sequence[Path], out: Path, *, seconds: float, size: str, fps: int) -> Path:
    from rendering.assembly import ClipInput, assemble
    from rendering.media_types import ClipTarget

    clips = [ClipInput(path=p, duration=seconds) for p in paths]
    result = assemble(clips, out, ClipTarget.from_size(size, fps))
    if result.method != "copy":  # the benchmark would be measuring something else
        raise RuntimeError(f"expected a pure stream copy, got {result.method} {result.normalised}")
    return out


def run_moviepy(paths: Sequence[Path], out: Path, *, fps: int, temp_dir: Path) -> Path:
    """The MoviePy pipeline as sora-extend / MoneyPrinterTurbo write it: decode every frame in Python,
    re-encode everything (MoviePy's default libx264 preset, medium)."""
    from moviepy import VideoFileClip, concatenate_videoclips

    sources = [VideoFileClip(str(p)) for p in paths]
    try:
        joined = concatenate_videoclips(sources)
        joined.write_videofile(
            str(out),
            codec="libx264",
            audio_codec="aac",
            fps=fps,
            threads=os.cpu_count(),
            temp_audiofile_path=str(temp_dir),
            logger=None,
        )
        joined.close()
    finally:
        for clip in sources:
            clip.close()
    return out


def run_ffmpeg_cli(args: Sequence[str]) -> None:
    from rendering.ffmpeg_binary import ffmpeg_exe

    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    subprocess.run(command, check=True, capture_output=True)


def run_reencode(listing: Path, out: Path) -> Path:
    from django.conf import settings

    concat = ["-f", "concat", "-safe", "0", "-i", str(listing)]
    run_ffmpeg_cli([*concat, "-c:v", "libx264", "-preset", settings.X264_PRESET, "-c:a", "aac", str(out)])
    return out


def run_bare_copy(listing: Path, out: Path) -> Path:
    run_ffmpeg_cli(["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(out)])
    return out


# ------------------------------------------------------------------------------------------- report


def _ratio_text(name: str, seconds: float, ours: float) -> str:
    if seconds < ours:
        return f"{name} is {ours / seconds:.1f}x faster than ours"
    factor = seconds / ours
    precision = 0 if factor >= 10 else 1
    return f"{name} is {factor:.{precision}f}x slower than ours"


def _row(key: str, method: str, seconds: float, out: Path, runs: int) -> dict[str, Any]:
    from rendering.media import probe

    return {"key": key, "method": method, "seconds": seconds, "duration": probe(out).duration, "runs": runs}


def add_ratios(rows: list[dict[str, Any]]) -> None:
    ours = next(r for r in rows if r["key"] == "ours")["seconds"]
    for row in rows:
        row["ratio"] = row["seconds"] / ours if row["seconds"] is not None else None
        if row["key"] == "ours":
            row["ratio_text"] = "baseline"
        elif row["seconds"] is None:
            row["ratio_text"] = row.get("note", "skipped")
        else:
            row["ratio_text"] = _ratio_text(row["short"], row["seconds"], ours)


def targets(rows: Sequence[dict[str, Any]]) -> list[tuple[str, bool | None, str]]:
    """(description, passed or None when not measured, measured factor) for each target."""
    seconds = {row["key"]: row["seconds"] for row in rows}
    ours, moviepy, bare = seconds["ours"], seconds["moviepy"], seconds["bare-copy"]
    versus_moviepy = f"ours >= {MOVIEPY_TARGET:.0f}x faster than MoviePy"
    versus_bare = f"ours within {BARE_COPY_TARGET:.0f}x of the bare stream copy"
    found: list[tuple[str, bool | None, str]] = []
    if moviepy is None:
        found.append((versus_moviepy, None, "not measured"))
    else:
        found.append((versus_moviepy, moviepy / ours >= MOVIEPY_TARGET, f"{moviepy / ours:.0f}x"))
    found.append((versus_bare, ours / bare <= BARE_COPY_TARGET, f"{ours / bare:.2f}x"))
    return found


def print_report(rows: Sequence[dict[str, Any]], args: argparse.Namespace) -> None:
    total = args.clips * args.seconds
    print(
        f"\nJoining {args.clips} x {args.seconds:g} s {args.size} @ {args.fps} fps (H.264 + AAC), "
        f"expected {total:g} s, {os.cpu_count()} CPU cores\n"
    )
    print("| method | wall seconds | output duration (s) | ratio vs ours |")
    print("|---|---:|---:|---|")
    for row in rows:
        seconds = "-" if row["seconds"] is None else f"{row['seconds']:.3f}"
        duration = "-" if row["duration"] is None else f"{row['duration']:.3f}"
        print(f"| {row['method']} | {seconds} | {duration} | {row['ratio_text']} |")
    print()
    for row in rows:
        # Every method must produce the whole video; a fast wrong answer is not a result.
        if row["duration"] is not None and abs(row["duration"] - total) > 0.1:
            print(f"WARNING: {row['short']} produced {row['duration']:.3f} s instead of {total:g} s")
    for description, passed, measured in targets(rows):
        verdict = "SKIPPED" if passed is None else ("PASS" if passed else "FAIL")
        print(f"Target: {description}: {verdict} ({measured})")


# --------------------------------------------------------------------------------------------- main


def _skipped(key: str, method: str, short: str, note: str) -> dict[str, Any]:
    return {
        "key": key,
        "method": method,
        "short": short,
        "seconds": None,
        "duration": None,
        "runs": 0,
        "note": note,
    }


def _moviepy_row(paths: Sequence[Path], out_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    method = f"MoviePy concatenate_videoclips + write_videofile (libx264/aac), {SLOW_RUNS} run"
    if args.no_moviepy:
        return _skipped("moviepy", method, "MoviePy", "skipped (--no-moviepy)")
    try:
        import moviepy  # noqa: F401
    except ImportError:
        return _skipped(
            "moviepy", method, "MoviePy", "skipped (moviepy is not installed: pip install moviepy)"
        )
    seconds, out = best_of(
        SLOW_RUNS, lambda: run_moviepy(paths, out_dir / "moviepy.mp4", fps=args.fps, temp_dir=out_dir)
    )
    return {**_row("moviepy", method, seconds, out, SLOW_RUNS), "short": "MoviePy"}


def main(argv: Sequence[str]) -> list[dict[str, Any]]:
    """Run the benchmark; print the table and targets; return one dict per method.

    Each row: key, method, short, seconds (None when skipped), duration (probed), runs, ratio (seconds /
    ours), ratio_text.
    """
    args = parse_args(argv)
    _setup_django()
    from django.conf import settings

    from bench.clips import ensure_clips

    paths = ensure_clips(count=args.clips, seconds=args.seconds, size=args.size, fps=args.fps)
    out_root = REPO_ROOT / "var"
    out_root.mkdir(exist_ok=True)
    out_dir = Path(tempfile.mkdtemp(prefix="bench-assembly-", dir=out_root))
    try:
        listing = write_concat_list(paths, out_dir)
        rows: list[dict[str, Any]] = []

        seconds, out = best_of(
            FAST_RUNS,
            lambda: run_ours(paths, out_dir / "ours.mp4", seconds=args.seconds, size=args.size, fps=args.fps),
        )
        rows.append(
            {
                **_row(
                    "ours", f"ours: assemble() (stream copy), best of {FAST_RUNS}", seconds, out, FAST_RUNS
                ),
                "short": "ours",
            }
        )

        rows.append(_moviepy_row(paths, out_dir, args))

        seconds, out = best_of(SLOW_RUNS, lambda: run_reencode(listing, out_dir / "reencode.mp4"))
        method = f"ffmpeg re-encode (concat + libx264 {settings.X264_PRESET} + aac), {SLOW_RUNS} run"
        rows.append({**_row("reencode", method, seconds, out, SLOW_RUNS), "short": "ffmpeg re-encode"})

        seconds, out = best_of(FAST_RUNS, lambda: run_bare_copy(listing, out_dir / "bare.mp4"))
        method = f"bare `ffmpeg -f concat -c copy`, best of {FAST_RUNS}"
        rows.append({**_row("bare-copy", method, seconds, out, FAST_RUNS), "short": "bare stream copy"})
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)

    add_ratios(rows)
    print_report(rows, args)
    return rows


if __name__ == "__main__":
    results = main(sys.argv[1:])
    sys.exit(1 if any(passed is False for _, passed, _ in targets(results)) else 0)
