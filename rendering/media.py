"""The media toolkit: probe files, pull exact frames out of them, run ffmpeg, write files atomically.

Why PyAV for reading: the imageio-ffmpeg wheel ships ``ffmpeg`` but no ``ffprobe``
(docs/architecture.md, Pitfalls), so ``ffmpeg.probe()`` fails on these machines; the ``av`` wheel
bundles its own libav* libraries and lets us decode exactly the frame we want instead of trusting a
keyframe seek.

Why ffmpeg-python for writing: filter graphs built in Python are easier to read and test than hand-made
argument lists, and every invocation goes through :func:`run_ffmpeg` so the binary, the quietness flags
and the error handling are the same everywhere.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image

from rendering.bounded import TimedOut, media_timeout, run_bounded
from rendering.ffmpeg_binary import ffmpeg_exe
from rendering.media_types import MediaInfo

PathLike = str | os.PathLike[str]

# Global flags for every ffmpeg run: no banner, never read stdin (a worker's stdin may be a terminal or a
# closed pipe), and only errors on stderr so MediaError carries the lines that matter.
QUIET_ARGS = ("-hide_banner", "-nostdin", "-nostats", "-loglevel", "error")

# How many stderr lines a MediaError keeps: enough to see the cause, short enough for a job's error field.
STDERR_TAIL_LINES = 12

# Image formats we write, chosen by the file suffix so callers cannot get a PNG named .jpg.
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}

# Formats libavformat will happily "open" although they are not audio/video (a text file can be read by
# the tty demuxer as ANSI art, an image by image2). None of them is a clip.
NON_CLIP_FORMATS = {"tty", "image2", "png_pipe", "jpeg_pipe", "webp_pipe", "gif"}


class MediaError(RuntimeError):
    """A media file could not be read or an ffmpeg run failed.

    ``stderr`` keeps the tail of ffmpeg's error output so the job's error message says what went wrong
    (a missing codec, a corrupt file) instead of only "exit status 1".
    """

    def __init__(self, message: str, *, stderr: bytes | str | None = None) -> None:
        self.stderr_tail = _tail(stderr)
        full = f"{message}: {self.stderr_tail}" if self.stderr_tail else message
        super().__init__(full)


def _tail(stderr: bytes | str | None) -> str:
    if not stderr:
        return ""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-STDERR_TAIL_LINES:])


# --------------------------------------------------------------------------------------------- files


@contextmanager
def atomic_output(path: PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; move it onto ``path`` on success, delete it on failure.

    The sibling lives in the same directory (so ``os.replace`` is an atomic rename on one filesystem),
    keeps the suffix (so ffmpeg and Pillow still infer the format) and starts with a dot (so directory
    listings and media servers skip it). A reader therefore sees either the old file or the complete new
    one, never a half-written video.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(f".{final.stem}.partial-{secrets.token_hex(4)}{final.suffix}")
    try:
        yield partial
        if not partial.exists():
            raise MediaError(f"nothing was written for {final}")
        os.replace(partial, final)
    except BaseException:
        # BaseException too: a KeyboardInterrupt or a Celery soft time limit must not leave debris.
        partial.unlink(missing_ok=True)
        raise


# -------------------------------------------------------------------------------------------- ffmpeg


def run_ffmpeg(stream: Any, *, what: str, strict: bool = False, media_seconds: float = 0.0) -> bytes:
    """Run an ffmpeg-python graph with our binary; return stdout, raise MediaError naming ``what``.

    Bounded (rendering.bounded): a deadline proportional to ``media_seconds`` of video, both pipes
    drained, the process group killed on overrun, so no input can stall a worker.

    ``what`` is a short phrase ("conform clip 3", "concatenate 6 clips") that ends up in the error, so a
    failed job says which step broke.

    ``strict`` also treats any error-level message as a failure. ffmpeg exits 0 when an input turns out
    to be truncated or a concat entry cannot be opened (it just writes a shorter file); ``-xerror`` is no
    substitute because it also aborts on the harmless DTS fix-ups every AAC stream-copy join needs.
    """
    exe = ffmpeg_exe()
    args = stream.global_args(*QUIET_ARGS).overwrite_output().compile(cmd=exe)
    timeout = media_timeout(media_seconds)
    try:
        finished = run_bounded(args, timeout=timeout)
    except TimedOut:
        raise MediaError(f"ffmpeg took longer than {timeout:g} s to {what}; it was stopped") from None
    except OSError as exc:  # binary missing or not executable
        raise MediaError(f"could not run ffmpeg ({exe}) to {what}: {exc}") from exc
    if finished.returncode != 0:
        raise MediaError(f"ffmpeg failed to {what}", stderr=finished.stderr)
    if strict and finished.stderr.strip():
        raise MediaError(f"ffmpeg reported errors while trying to {what}", stderr=finished.stderr)
    return finished.stdout


# --------------------------------------------------------------------------------------------- probe


def _open(path: PathLike) -> av.container.InputContainer:
    """Open a media file for reading, turning every flavour of failure into a MediaError."""
    p = Path(path)
    if not p.is_file():
        raise MediaError(f"media file not found: {p}")
    try:
        container = av.open(str(p), mode="r")
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"not a readable media file: {p} ({exc})") from None
    if container.format.name in NON_CLIP_FORMATS or not (container.streams.video or container.streams.audio):
        container.close()
        raise MediaError(f"not an audio/video file: {p} (detected format {container.format.name!r})")
    return container


def probe(path: PathLike) -> MediaInfo:
    """Describe a media file: duration, video codec/size/fps/pix_fmt/frames, audio codec/rate/channels.

    Audio fields are None when the file has no audio stream, video fields when it has no video stream.
    Raises MediaError for a missing, unreadable or non-media file.
    """
    return probe_streams(path)[0]


def probe_streams(path: PathLike) -> tuple[MediaInfo, tuple[str, ...]]:
    """:func:`probe` plus the type of every stream in index order (e.g. ``("video", "audio", "data")``).

    The concat demuxer pairs streams by index across files, so assembly needs the layout as well; one
    open instead of two matters when the whole stream-copy join takes a fifth of a second.
    """
    with _open(path) as container:
        try:
            video = container.streams.video[0] if container.streams.video else None
            audio = container.streams.audio[0] if container.streams.audio else None
            vcc = video.codec_context if video is not None else None
            acc = audio.codec_context if audio is not None else None
            info = MediaInfo(
                path=str(path),
                duration=_duration_seconds(container),
                video_codec=vcc.name if vcc is not None else None,
                width=(vcc.width or None) if vcc is not None else None,
                height=(vcc.height or None) if vcc is not None else None,
                fps=_average_fps(video),
                pix_fmt=vcc.pix_fmt if vcc is not None else None,
                video_frames=(video.frames or None) if video is not None else None,
                audio_codec=acc.name if acc is not None else None,
                sample_rate=(acc.sample_rate or None) if acc is not None else None,
                channels=(acc.layout.nb_channels or None) if acc is not None else None,
            )
        except av.error.FFmpegError as exc:
            raise MediaError(f"could not read {path}: {exc}") from None
        return info, tuple(stream.type for stream in container.streams)


def _average_fps(video: av.video.stream.VideoStream | None) -> Fraction | None:
    if video is None:
        return None
    rate = video.average_rate or video.guessed_rate or video.base_rate
    return Fraction(rate) if rate else None


def _duration_seconds(container: av.container.InputContainer) -> float:
    """Container duration; else the longest stream duration; else the end of the last packet.

    Some muxers (fragmented MP4, raw streams, files cut short) leave the header duration empty, and a
    duration of 0 would make every length check meaningless, so we fall back step by step.
    """
    if container.duration:
        return container.duration / av.time_base
    stream_seconds = [
        float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base
    ]
    if stream_seconds:
        return max(stream_seconds)
    end = 0.0
    for packet in container.demux():
        if packet.pts is not None and packet.time_base is not None:
            end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    return end


# -------------------------------------------------------------------------------------------- frames


def _video_stream(container: av.container.InputContainer, path: PathLike) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise MediaError(f"no video stream in {path}")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame threading: decoding one GOP is most of the work here
    return stream


def _decode_from(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, seconds: float
) -> Iterator[av.VideoFrame]:
    """Decode frames in display order starting at the keyframe at or before ``seconds``."""
    start = stream.start_time or 0
    offset = start + int(max(seconds, 0.0) / stream.time_base)
    container.seek(offset, stream=stream, backward=True, any_frame=False)
    for frame in container.decode(stream):
        if frame.pts is not None:
            yield frame


def _last_frame(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> av.VideoFrame:
    """The frame with the greatest pts: the one a player shows last.

    Not the last *decoded* frame: with B-frames the decoder's last output can be an earlier picture, and a
    keyframe seek (``-sseof``) lands on the GOP start, not the end (docs/architecture.md, Rendering).
    """
    return _last_frame_and_frame_at(container, stream, None)[0]


def _last_frame_and_frame_at(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, at_seconds: float | None
) -> tuple[av.VideoFrame, av.VideoFrame | None]:
    """The last frame, and the frame on screen at `at_seconds` when the pass that finds the last frame
    decodes it anyway (the time falls in the last GOP, as the middle of a short clip often does);
    None for the second otherwise, and the caller seeks for it."""
    duration = _duration_seconds(container)
    target = None if at_seconds is None else (stream.start_time or 0) + at_seconds / stream.time_base
    # Seek a little before the end; the seek itself goes back to the GOP's keyframe, so however long the
    # GOP is we still decode every frame of the last one.
    # If that finds nothing (a duration that overstates the picture, an index-less stream that cannot
    # seek), decode the whole stream from the start instead.
    for seek_at in (max(duration - 1.0, 0.0), 0.0):
        best: av.VideoFrame | None = None
        first: av.VideoFrame | None = None
        shown: av.VideoFrame | None = None  # greatest pts not after the target, as _frame_at picks
        try:
            for frame in _decode_from(container, stream, seek_at):
                if first is None:
                    first = frame
                if best is None or frame.pts > best.pts:
                    best = frame
                if target is not None and frame.pts <= target and (shown is None or frame.pts > shown.pts):
                    shown = frame
        except av.error.FFmpegError:
            if seek_at == 0.0:
                raise
            continue
        if best is not None:
            # The pass tells the frame at the target only if it started at or before it.
            covered = target is not None and first is not None and first.pts <= target
            return best, (shown if covered else None)
    raise MediaError("no decodable video frame")


def _frame_at(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, at_seconds: float
) -> av.VideoFrame:
    """The frame on screen at ``at_seconds``: greatest pts not after it (the first frame if earlier)."""
    start = stream.start_time or 0
    target = start + at_seconds / stream.time_base
    # Seek to the keyframe before the time and decode forward. Some demuxers (MPEG-TS) seek only
    # approximately, landing after the time or nowhere at all: then decode from the start instead.
    for seek_at in dict.fromkeys((at_seconds, 0.0)):
        first: av.VideoFrame | None = None
        chosen: av.VideoFrame | None = None
        for frame in _decode_from(container, stream, seek_at):
            if first is None:
                first = frame
            if frame.pts > target:
                break  # decoder output is in display order, so nothing later can be closer
            chosen = frame  # past the end this ends as the last frame, which is what stays on screen
        if chosen is not None:
            return chosen
        if seek_at == 0.0 and first is not None:  # asked before the first frame: it is shown first
            return first
    raise MediaError("no decodable video frame")


def _save_image(image: Image.Image, image_path: PathLike, *, fmt: str | None = None) -> Path:
    final = Path(image_path)
    fmt = fmt or IMAGE_FORMATS.get(final.suffix.lower())
    if fmt is None:
        raise ValueError(f"unsupported image suffix {final.suffix!r}; use one of {sorted(IMAGE_FORMATS)}")
    options: dict[str, Any] = {"quality": 90, "optimize": True} if fmt in {"JPEG", "WEBP"} else {}
    if fmt == "PNG":
        # Last frames are written once per segment on the hot path; level 1 is ~4x faster than the
        # default and lossless all the same.
        options["compress_level"] = 1
    with atomic_output(final) as partial:
        image.convert("RGB").save(partial, format=fmt, **options)
    return final


def _save_frame(frame: av.VideoFrame, image_path: PathLike) -> Path:
    """Save a full-size frame; a PNG is encoded by libavcodec straight from the decoder's picture, at a
    third of the CPU of converting it to a Pillow image and compressing there (lossless all the same).
    Every finished clip writes one, so it is on the path between a clip being ready and its segment
    completing."""
    final = Path(image_path)
    if IMAGE_FORMATS.get(final.suffix.lower()) != "PNG":
        return _save_image(frame.to_image(), final)
    encoder = av.CodecContext.create("png", "w")
    encoder.width, encoder.height, encoder.pix_fmt = frame.width, frame.height, "rgb24"
    # "sub" prediction at level 1: within a few per cent of the default's size, several times faster.
    encoder.options = {"pred": "sub", "compression_level": "1"}
    packets = encoder.encode(frame.reformat(format="rgb24")) + encoder.encode(None)
    with atomic_output(final) as partial, open(partial, "wb") as out:
        for packet in packets:
            out.write(bytes(packet))
    return final


def _picture(frame: av.VideoFrame, max_width: int | None) -> Image.Image:
    """The frame as a picture, shrunk to ``max_width`` keeping the aspect ratio; never enlarged (a poster
    gains nothing from it). swscale scales while it converts from the decoder's YUV: a tenth of the CPU of
    converting the whole frame and resizing it in Pillow, and every finished clip gets a thumbnail."""
    if max_width is not None and max_width <= 0:
        raise ValueError(f"max_width must be positive, got {max_width}")
    if max_width is None or frame.width <= max_width:
        return frame.to_image()
    height = max(1, round(frame.height * max_width / frame.width))
    return frame.reformat(width=max_width, height=height, format="rgb24", interpolation="LANCZOS").to_image()


def extract_last_frame(video_path: PathLike, image_path: PathLike) -> Path:
    """Save the exact last displayed frame of a video (PNG/JPEG/WebP by suffix); return the image path.

    Chain continuity feeds this image to the next segment as its first frame, so it must be the true last
    picture, not the keyframe an ``-sseof`` seek would land on.
    """
    with _open(video_path) as container:
        stream = _video_stream(container, video_path)
        try:
            frame = _last_frame(container, stream)
        except av.error.FFmpegError as exc:
            raise MediaError(f"could not decode the last frame of {video_path}: {exc}") from None
        return _save_frame(frame, image_path)


def extract_last_frame_and_thumbnail(
    video_path: PathLike, last_path: PathLike, thumb_path: PathLike, at_seconds: float, *, max_width: int
) -> tuple[Path, Path]:
    """:func:`extract_last_frame` and :func:`extract_frame` (at `at_seconds`, at most `max_width` wide)
    together, as every finished clip needs both: one opening of the file, and one decoding pass when the
    thumbnail's time falls in the last GOP."""
    if at_seconds < 0:
        raise ValueError(f"at_seconds must not be negative, got {at_seconds}")
    with _open(video_path) as container:
        stream = _video_stream(container, video_path)
        try:
            last, shown = _last_frame_and_frame_at(container, stream, at_seconds)
            if shown is None:
                shown = _frame_at(container, stream, at_seconds)
        except av.error.FFmpegError as exc:
            raise MediaError(f"could not decode the frames of {video_path}: {exc}") from None
        return _save_frame(last, last_path), _save_image(_picture(shown, max_width), thumb_path)


def extract_frame(
    video_path: PathLike, image_path: PathLike, at_seconds: float, *, max_width: int | None = None
) -> Path:
    """Save the frame displayed at ``at_seconds`` (for thumbnails and posters), optionally scaled down.

    A time past the end gives the last frame, which is what a player shows there.
    """
    if at_seconds < 0:
        raise ValueError(f"at_seconds must not be negative, got {at_seconds}")
    with _open(video_path) as container:
        stream = _video_stream(container, video_path)
        try:
            image = _picture(_frame_at(container, stream, at_seconds), max_width)
        except av.error.FFmpegError as exc:
            raise MediaError(f"could not decode {video_path} at {at_seconds:.3f}s: {exc}") from None
    return _save_image(image, image_path)
