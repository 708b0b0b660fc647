"""Stitch a job's per-segment clips into one video, re-encoding only what has to change.

The concat demuxer with ``-c copy`` joins clips that share codec, size, frame rate and audio layout in a
fraction of a second; re-encoding the same minute of 720p takes ~100x longer and MoviePy ~300x longer
(docs/architecture.md, Pitfalls). So: probe every clip, conform only the clips that differ from the job's
:class:`~rendering.media_types.ClipTarget` (and within those only the streams that differ), then one stream
copy. Every file is written under a temporary name and renamed, so a half-written video is never served.

Longer than 400 lines on purpose: comparing, conforming and joining are one decision (what differs decides
what is re-encoded, which decides what can be copied), read top to bottom in this order.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import ffmpeg
from django.conf import settings

from rendering.media import (
    MediaError,
    PathLike,
    atomic_output,
    extract_frame,
    probe,
    probe_streams,
    run_ffmpeg,
)
from rendering.media_types import ClipTarget, MediaInfo

logger = logging.getLogger(__name__)

# Frame rates closer than this are the same rate: 30 fps stored with a coarse time base can read back as
# 30.004, while 29.97 (30000/1001) is a different rate whose clips would drift against 30 fps ones.
FPS_TOLERANCE = Fraction(1, 100)
# The assembled video may differ from the planned total by this much (AAC frames are ~21 ms).
TOTAL_DURATION_TOLERANCE = 0.1
CRF = 20
AUDIO_BITRATE = "128k"
VIDEO_ENCODERS = {"h264": "libx264"}
AUDIO_ENCODERS = {"aac": "aac"}
# faststart moves the index to the front so browsers start playing before the whole file arrives.
MP4_ARGS: dict[str, Any] = {"format": "mp4", "movflags": "+faststart"}

ConformMode = Literal["copy", "audio", "video+audio"]


@dataclass(frozen=True)
class ClipInput:
    """One rendered clip and the planned seconds to keep from its start.

    A provider may render 12 s for a 10 s segment (it only offers 4/8/12 s); ``duration`` is the 10.
    """

    path: Path
    duration: float


@dataclass
class AssemblyResult:
    """What :func:`assemble` did, for the job record and the benchmark."""

    path: Path
    duration: float  # probed duration of the assembled file
    method: str  # "copy" when every clip was joined as it was, "normalised" when any was re-encoded
    normalised: list[int] = field(default_factory=list)  # indexes of the clips that were re-encoded
    seconds: float = 0.0  # wall time of the whole assembly


# ---------------------------------------------------------------------------------------- comparing


@dataclass(frozen=True)
class _Difference:
    kind: Literal["video", "audio"]  # which stream must be re-encoded to fix it
    text: str


def _fmt_fps(fps: Fraction | None) -> str:
    if fps is None:
        return "unknown"
    return str(fps.numerator) if fps.denominator == 1 else f"{float(fps):.3f}"


def _video_differences(info: MediaInfo, target: ClipTarget) -> list[str]:
    if info.video_codec is None:
        return ["no video track"]
    found = []
    if info.video_codec != target.video_codec:
        found.append(f"video codec {info.video_codec} (want {target.video_codec})")
    if (info.width, info.height) != (target.width, target.height):
        found.append(f"size {info.size} (want {target.width}x{target.height})")
    if info.fps is None or abs(info.fps - target.fps) > FPS_TOLERANCE:
        found.append(f"fps {_fmt_fps(info.fps)} (want {target.fps})")
    if info.pix_fmt != target.pix_fmt:
        found.append(f"pix_fmt {info.pix_fmt} (want {target.pix_fmt})")
    return found


def _audio_differences(info: MediaInfo, target: ClipTarget) -> list[str]:
    if not info.has_audio:
        return ["no audio track"]
    found = []
    if info.audio_codec != target.audio_codec:
        found.append(f"audio codec {info.audio_codec} (want {target.audio_codec})")
    if info.sample_rate != target.sample_rate:
        found.append(f"sample rate {info.sample_rate} Hz (want {target.sample_rate} Hz)")
    if info.channels != target.channels:
        found.append(f"channels {info.channels} (want {target.channels})")
    return found


def _differences(info: MediaInfo, target: ClipTarget) -> list[_Difference]:
    return [_Difference("video", t) for t in _video_differences(info, target)] + [
        _Difference("audio", t) for t in _audio_differences(info, target)
    ]


def differences(info: MediaInfo, target: ClipTarget) -> list[str]:
    """What keeps this clip from being stream-copied next to clips at ``target``; empty = compatible."""
    return [d.text for d in _differences(info, target)]


def _half_frame(target: ClipTarget) -> float:
    return 0.5 / target.fps


def _video_seconds(info: MediaInfo) -> float:
    """Length of the picture track: frames / fps when known (exact for CFR), else the container's."""
    if info.video_frames and info.fps:
        return float(info.video_frames / info.fps)
    return info.duration


def _needs_trim(info: MediaInfo, planned: float, target: ClipTarget) -> bool:
    """Whether the clip must be cut (or its picture padded) to last ``planned`` seconds.

    Raises MediaError when the clip is shorter than planned by more than half a frame: stretching it would
    silently desynchronise the job's timeline, so that is the provider's bug to surface.
    """
    if planned <= 0:
        raise MediaError(f"planned duration must be positive, got {planned}")
    half = _half_frame(target)
    if info.duration < planned - half:
        raise MediaError(
            f"clip {info.path} lasts {info.duration:.3f}s, shorter than the planned {planned:.3f}s"
        )
    # Both the container and the picture track must end on time: the concat list places the next clip at
    # the planned offset, so a longer audio tail would overlap it and a shorter picture would leave a gap.
    return abs(info.duration - planned) > half or abs(_video_seconds(info) - planned) > half


# ---------------------------------------------------------------------------------------- conforming


def _encoders(target: ClipTarget) -> tuple[str, str]:
    try:
        return VIDEO_ENCODERS[target.video_codec], AUDIO_ENCODERS[target.audio_codec]
    except KeyError:
        raise MediaError(
            f"no encoder for target {target.video_codec}/{target.audio_codec};"
            f" supported: {sorted(VIDEO_ENCODERS)}/{sorted(AUDIO_ENCODERS)}"
        ) from None


def _video_args(target: ClipTarget) -> dict[str, Any]:
    """One set of encoder settings for every re-encode, so re-encoded clips concatenate cleanly.

    A fixed 2 s GOP with closed GOPs means every clip starts on an IDR frame that references nothing
    before it, which is what a stream-copy join needs.
    """
    return {
        "c:v": _encoders(target)[0],
        "preset": settings.X264_PRESET,
        "crf": CRF,
        "pix_fmt": target.pix_fmt,
        "g": 2 * target.fps,
        "keyint_min": target.fps,
        "flags": "+cgop",
    }


def _audio_args(target: ClipTarget) -> dict[str, Any]:
    return {
        "c:a": _encoders(target)[1],
        "b:a": AUDIO_BITRATE,
        "ar": target.sample_rate,
        "ac": target.channels,
    }


def _channel_layout(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")


def _audio_track(inp: Any, info: MediaInfo, target: ClipTarget, seconds: float) -> Any:
    """The clip's first audio stream (or silence) resampled to the target and exactly ``seconds`` long.

    A clip without audio gets a silent track, because the concat demuxer needs every clip to have the same
    streams; a missing track would drop or misplace the audio of every later clip.
    """
    if info.has_audio:
        audio = inp["a:0"].filter("asetpts", "PTS-STARTPTS")
    else:
        layout = _channel_layout(target.channels)
        audio = ffmpeg.input(f"anullsrc=r={target.sample_rate}:cl={layout}", f="lavfi")
    return (
        audio.filter(
            "aformat",
            sample_fmts="fltp",
            sample_rates=target.sample_rate,
            channel_layouts=_channel_layout(target.channels),
        )
        # Pad short audio with silence, then cut: the track ends exactly where the picture does.
        .filter("apad", whole_dur=f"{seconds:.6f}")
        .filter("atrim", end=f"{seconds:.6f}")
    )


def _video_track(inp: Any, target: ClipTarget, frames: int) -> Any:
    """The clip's picture at the target size/fps/pix_fmt, exactly ``frames`` frames long.

    Letterboxed rather than stretched or cropped, so a provider's odd aspect ratio never distorts or loses
    the picture. The last frame is cloned if the picture ends early (allowed within half a frame).
    """
    w, h = target.width, target.height
    return (
        inp["v:0"]
        .filter("setpts", "PTS-STARTPTS")
        .filter("fps", target.fps)
        .filter("scale", w, h, force_original_aspect_ratio="decrease", force_divisible_by=2)
        .filter("pad", w, h, "(ow-iw)/2", "(oh-ih)/2", color="black")
        .filter("setsar", 1)
        .filter("format", target.pix_fmt)
        .filter("tpad", stop_mode="clone", stop=frames)
        .filter("trim", end_frame=frames)
        .filter("setpts", "PTS-STARTPTS")
    )


def _reencode(src: Path, dst: Path, info: MediaInfo, target: ClipTarget, seconds: float) -> None:
    frames = max(1, round(seconds * target.fps))
    exact = frames / target.fps  # the audio must match the picture, not the (rounded) request
    inp = ffmpeg.input(str(src))
    out = ffmpeg.output(
        _video_track(inp, target, frames),
        _audio_track(inp, info, target, exact),
        str(dst),
        **_video_args(target),
        **_audio_args(target),
        **MP4_ARGS,
    )
    what = f"re-encode {src.name} to {target.width}x{target.height}@{target.fps}"
    run_ffmpeg(out, what=what, strict=True, media_seconds=seconds)


def _reencode_audio(src: Path, dst: Path, info: MediaInfo, target: ClipTarget) -> None:
    inp = ffmpeg.input(str(src))
    audio = _audio_track(inp, info, target, _video_seconds(info))
    out = ffmpeg.output(inp["v:0"], audio, str(dst), **{"c:v": "copy"}, **_audio_args(target), **MP4_ARGS)
    run_ffmpeg(
        out, what=f"re-encode the audio of {src.name}", strict=True, media_seconds=_video_seconds(info)
    )


def _remux(src: Path, dst: Path) -> None:
    # Only the first video and audio streams: data/timecode tracks would break the concat demuxer's
    # stream-by-index matching.
    inp = ffmpeg.input(str(src))
    out = ffmpeg.output(inp["v:0"], inp["a:0"], str(dst), c="copy", **MP4_ARGS)
    run_ffmpeg(out, what=f"remux {src.name}", strict=True)


def conform_clip(src: PathLike, dst: PathLike, target: ClipTarget, *, duration: float | None = None) -> str:
    """Write ``src`` to ``dst`` at ``target`` and ``duration``, re-encoding only what differs.

    Returns ``"copy"`` (remuxed), ``"audio"`` (video copied, audio re-encoded or silence added) or
    ``"video+audio"`` (both re-encoded: the picture differs or the clip had to be trimmed, which a stream
    copy can only do at keyframes). Raises MediaError if the clip is shorter than ``duration``.
    """
    src, dst = Path(src), Path(dst)
    _encoders(target)  # fail before any work if we could not re-encode to this target
    info = probe(src)
    if info.video_codec is None:
        raise MediaError(f"clip {src} has no video track")
    diffs = _differences(info, target)
    trim = duration is not None and _needs_trim(info, duration, target)
    video_differs = any(d.kind == "video" for d in diffs)
    audio_differs = any(d.kind == "audio" for d in diffs)
    if diffs or trim:
        reasons = [d.text for d in diffs] + ([f"trim to {duration:.3f}s"] if trim else [])
        logger.info("conforming %s: %s", src.name, "; ".join(reasons))

    mode: ConformMode
    with atomic_output(dst) as partial:
        if video_differs or trim:
            seconds = duration if duration is not None else _video_seconds(info)
            _reencode(src, partial, info, target, seconds)
            mode = "video+audio"
        elif audio_differs:
            _reencode_audio(src, partial, info, target)
            mode = "audio"
        else:
            _remux(src, partial)
            mode = "copy"
    return mode


# ------------------------------------------------------------------------------------------ joining


def _concat_quote(path: Path) -> str:
    """Quote a path for the concat demuxer's list file.

    Inside single quotes nothing is special except the quote itself, which is written as ``'\\''``
    (close, escaped quote, reopen), exactly as in a POSIX shell. A line break cannot be expressed at all.
    """
    text = str(path)
    if "\n" in text or "\r" in text:
        raise MediaError(f"cannot concatenate a file whose name contains a line break: {text!r}")
    return "'" + text.replace("'", "'\\''") + "'"


def _concat_list(paths: Sequence[Path], durations: Sequence[float] | None) -> str:
    lines = ["ffconcat version 1.0"]
    for index, path in enumerate(paths):
        # Absolute paths: relative ones would be resolved against the list file's temporary directory.
        lines.append(f"file {_concat_quote(path.resolve())}")
        if durations is not None:
            # The demuxer places the next clip at this offset. Without it, it uses each file's container
            # duration, whose sub-frame excess (an AAC tail) would accumulate over a long job.
            lines.append(f"duration {durations[index]:.6f}")
    return "\n".join(lines) + "\n"


def _concat_into(paths: Sequence[Path], dst: Path, durations: Sequence[float] | None = None) -> None:
    if not paths:
        raise MediaError("nothing to concatenate: the clip list is empty")
    if durations is not None and len(durations) != len(paths):
        raise ValueError(f"{len(durations)} durations for {len(paths)} clips")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise MediaError(f"clips not found: {', '.join(missing)}")
    with tempfile.TemporaryDirectory(prefix="concat-") as tmp:
        listing = Path(tmp) / "clips.ffconcat"
        listing.write_text(_concat_list(paths, durations), encoding="utf-8")
        inp = ffmpeg.input(str(listing), f="concat", safe=0)
        # copyts: keep the demuxer's timestamps. Without it ffmpeg shifts the whole output by the first
        # clip's AAC priming (-21 ms), so the picture starts 21 ms late and every clip is offset.
        out = ffmpeg.output(inp["v:0"], inp["a:0?"], str(dst), c="copy", copyts=None, **MP4_ARGS)
        total = sum(durations) if durations is not None else 0.0
        # A stream copy is fast; the deadline still grows with the clips, a second per ten of video.
        run_ffmpeg(out, what=f"concatenate {len(paths)} clips", strict=True, media_seconds=total / 10)


def concat_copy(
    paths: Sequence[PathLike], out: PathLike, *, durations: Sequence[float] | None = None
) -> Path:
    """Join clips that already share a format by stream copy (no re-encode); return ``out``.

    ``durations`` optionally gives each clip's exact length so the timeline does not drift.
    """
    clip_paths = [Path(p) for p in paths]
    with atomic_output(out) as partial:
        _concat_into(clip_paths, partial, durations)
    return Path(out)


# ---------------------------------------------------------------------------------------- assembling


class _Progress:
    """Maps the three phases onto 0..1: probing 10 %, conforming 80 %, joining 10 %."""

    PROBE, CONFORM = 0.1, 0.8

    def __init__(self, callback: Callable[[float], None] | None) -> None:
        self.callback = callback
        self.last = 0.0

    def __call__(self, fraction: float) -> None:
        self.last = max(self.last, min(fraction, 1.0))  # never goes backwards
        if self.callback is not None:
            self.callback(self.last)

    def probed(self, done: int, total: int) -> None:
        self(self.PROBE * done / total)

    def conformed(self, done: int, total: int) -> None:
        self(self.PROBE + self.CONFORM * done / total)


@dataclass(frozen=True)
class _Probed:
    info: MediaInfo
    layout: tuple[str, ...]  # stream types in index order


def _usable_as_is(probed: _Probed, clip: ClipInput, target: ClipTarget) -> bool:
    """A clip joins by stream copy untouched when it matches the target, is on time, and has one video
    then one audio stream (the concat demuxer pairs streams by index across files)."""
    trim = _needs_trim(probed.info, clip.duration, target)  # raises for a too-short clip
    return not trim and not differences(probed.info, target) and probed.layout == ("video", "audio")


def _probe_clip(index: int, clip: ClipInput) -> _Probed:
    try:
        return _Probed(*probe_streams(clip.path))
    except MediaError as exc:
        raise MediaError(f"clip {index}: {exc}") from exc


def _clips_to_conform(clips: Sequence[ClipInput], probed: Sequence[_Probed], target: ClipTarget) -> list[int]:
    """Indexes of the clips that cannot be joined as they are. Decided for every clip before conforming
    any, so a clip that is too short fails the assembly before minutes of re-encoding."""
    found = []
    for index, (clip, probe_result) in enumerate(zip(clips, probed, strict=True)):
        try:
            if not _usable_as_is(probe_result, clip, target):
                found.append(index)
        except MediaError as exc:
            raise MediaError(f"clip {index}: {exc}") from exc
    return found


def _check_total(path: Path, expected: float) -> float:
    actual = probe(path).duration
    if abs(actual - expected) > TOTAL_DURATION_TOLERANCE:
        raise MediaError(
            f"assembled video lasts {actual:.3f}s but the clips were planned for {expected:.3f}s"
        )
    return actual


def assemble(
    clips: Sequence[ClipInput],
    out: PathLike,
    target: ClipTarget,
    *,
    work_dir: PathLike | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> AssemblyResult:
    """Join ``clips`` into ``out`` at ``target``: conform only the clips that differ, then stream copy.

    ``work_dir`` holds the conformed clips (a temporary directory inside it, removed afterwards);
    ``on_progress`` receives fractions from 0 to 1. The result is checked by probing: its duration must be
    within 0.1 s of the planned total, else MediaError (and nothing is left under ``out``).
    """
    started = time.perf_counter()
    if not clips:
        raise MediaError("cannot assemble a video from an empty clip list")
    out = Path(out)
    progress = _Progress(on_progress)

    probed = []
    for index, clip in enumerate(clips):
        probed.append(_probe_clip(index, clip))
        progress.probed(index + 1, len(clips))
    to_conform = _clips_to_conform(clips, probed, target)

    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="assemble-", dir=work_dir) as tmp:
        paths = [Path(clip.path) for clip in clips]
        normalised = []
        for done, index in enumerate(to_conform, start=1):
            conformed = Path(tmp) / f"clip-{index:04d}.mp4"
            mode = conform_clip(paths[index], conformed, target, duration=clips[index].duration)
            paths[index] = conformed
            if mode != "copy":
                normalised.append(index)
            progress.conformed(done, len(to_conform))

        expected = sum(clip.duration for clip in clips)
        with atomic_output(out) as partial:
            _concat_into(paths, partial, [clip.duration for clip in clips])
            duration = _check_total(partial, expected)
    progress(1.0)

    result = AssemblyResult(
        path=out,
        duration=duration,
        method="normalised" if normalised else "copy",
        normalised=normalised,
        seconds=time.perf_counter() - started,
    )
    logger.info(
        "assembled %d clips into %s (%.2fs, %s, normalised %s) in %.2fs",
        len(clips),
        out.name,
        duration,
        result.method,
        normalised,
        result.seconds,
    )
    return result


def make_poster(
    video: PathLike, image_path: PathLike, *, at_seconds: float | None = None, max_width: int = 1280
) -> Path:
    """Write a JPEG poster frame (default: one third in, past any opening fade; never beyond the end)."""
    if Path(image_path).suffix.lower() not in {".jpg", ".jpeg"}:
        raise ValueError(f"a poster is a JPEG; name it .jpg or .jpeg, got {image_path}")
    duration = probe(video).duration
    at = duration / 3 if at_seconds is None else at_seconds
    return extract_frame(video, image_path, min(max(at, 0.0), duration), max_width=max_width)
