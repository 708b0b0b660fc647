"""The embedded default provider: draws a real H.264 + AAC clip per segment with ffmpeg.

No key, no network. Each clip visibly shows its segment number and its whole prompt (wrapped and
sized to fit by `local_caption`), over a moving gradient with a box that travels across the frame and
a bar that fills as the clip plays; colours, motion and tone are derived from the prompt, so a stitched
video shows at a glance that every segment was rendered, in order, from its own prompt. A reference
image, when given, is inset.

Motion is drawn by `overlay`, whose x/y expressions are evaluated per frame in `t` (seconds). Not by
`drawbox`: its expressions are evaluated once, and its `t` is the box's thickness, not the time.
"""

from __future__ import annotations

import colorsys
import hashlib
import os
import tempfile
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import ffmpeg
from django.conf import settings

from rendering.bounded import TimedOut, media_timeout, run_bounded
from rendering.ffmpeg_binary import ffmpeg_exe, font_file
from rendering.media_types import parse_size

from .base import (
    ModelSpec,
    ProgressCallback,
    ProviderCatalogue,
    ProviderError,
    ProviderTask,
    RenderRequest,
    TaskState,
    VideoProvider,
)
from .local_caption import Caption, fit_caption
from .registry import register_provider

LOCAL_MODEL = "local-v1"


def _work_dir() -> Path:
    path = Path(settings.LOCAL_PROVIDER_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _hex_colour(hue: float, saturation: float, value: float) -> str:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return f"0x{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


class Look:
    """Colours, motion and tone derived deterministically from a prompt."""

    def __init__(self, prompt: str, index: int) -> None:
        digest = hashlib.sha256(f"{index}\0{prompt}".encode()).digest()
        self.hue = digest[0] / 255
        self.colour_a = _hex_colour(self.hue, 0.65, 0.60)
        self.colour_b = _hex_colour(self.hue + 0.33, 0.75, 0.30)
        self.gradient_speed = 0.01 + digest[1] / 255 * 0.04
        # The box crosses the frame in 2 to 5 s, whatever its size, and bobs up and down.
        self.box_crossings_per_second = 0.2 + digest[2] / 255 * 0.3
        self.box_row = 0.55 + (digest[3] / 255) * 0.25  # fraction of the height
        self.tone_hz = 196 + digest[4] % 400
        # ffmpeg's gradients source places its colours at random unless seeded: the same prompt must make
        # the same clip (and two prompts reliably different ones).
        self.gradient_seed = int.from_bytes(digest[5:9], "big")


@dataclass(frozen=True)
class Layout:
    """Where things go in a frame of `width` x `height` pixels."""

    width: int
    height: int

    @property
    def margin(self) -> int:
        return max(4, self.width // 20)

    @property
    def title_size(self) -> int:
        return max(12, self.height // 11)

    @property
    def title_y(self) -> int:
        return self.height // 12

    @property
    def caption_y(self) -> int:
        return self.title_y + self.title_size + self.height // 24

    @property
    def bar_height(self) -> int:
        return max(4, self.height // 60)

    @property
    def box(self) -> int:
        return max(8, self.height // 9)

    def caption(self, prompt: str) -> Caption:
        """The whole prompt, wrapped to the frame below the title and above the progress bar."""
        return fit_caption(
            prompt,
            width=self.width - 2 * self.margin,
            height=self.height - self.caption_y - self.bar_height - self.height // 24,
            max_size=max(10, self.height // 20),
            min_size=max(8, self.height // 45),
            font_path=font_file(),
        )


def build_graph(request: RenderRequest, caption: Caption, caption_file: Path, title_file: Path, out: Path):
    width, height = parse_size(request.size)
    fps = request.fps
    frames = max(1, round(request.seconds * fps))
    seconds = frames / fps
    look = Look(request.prompt, request.segment_index)
    layout = Layout(width, height)
    font = font_file()
    font_args = {"fontfile": font} if font else {}

    def solid(colour: str, w: int, h: int):
        return ffmpeg.input(f"color=c={colour}:s={w}x{h}:r={fps}:d={seconds:.6f}", f="lavfi").video

    # Draw the gradient small and scale it up: a smooth gradient loses nothing and this is ~2x faster.
    small_w, small_h = max(2, width // 4 // 2 * 2), max(2, height // 4 // 2 * 2)
    video = ffmpeg.input(
        f"gradients=s={small_w}x{small_h}:r={fps}:c0={look.colour_a}:c1={look.colour_b}"
        f":speed={look.gradient_speed:.4f}:seed={look.gradient_seed}:duration={seconds:.6f}",
        f="lavfi",
    ).video.filter("scale", width, height, flags="fast_bilinear")

    if request.reference_image is not None:
        inset_h = max(2, height // 3 // 2 * 2)
        reference = (
            ffmpeg.input(str(request.reference_image), loop=1, framerate=fps, t=f"{seconds:.6f}")
            .video.filter("scale", -2, inset_h)
            .filter("pad", "iw+8", "ih+8", 4, 4, color="white")
        )
        video = ffmpeg.overlay(video, reference, x=f"W-w-{width // 32}", y=f"{height // 18}", shortest=1)

    # overlay evaluates x and y for every frame, with t the frame's time in seconds.
    box = layout.box
    span = width + box
    video = ffmpeg.overlay(
        video,
        solid("white", box, box),
        x=f"mod(t*{look.box_crossings_per_second * span:.3f},{span})-{box}",
        y=f"{int(height * look.box_row)}+{height // 14}*sin(t*3)",
        eval="frame",
    )
    # A bar along the bottom that fills as the clip plays: it slides in from the left, reaching the
    # right edge on the last frame.
    bar = layout.bar_height
    video = ffmpeg.overlay(
        video, solid("white", width, bar), x=f"(t/{seconds:.6f}-1)*{width}", y=height - bar, eval="frame"
    )
    video = (
        video.drawtext(
            textfile=str(title_file),
            expansion="none",
            fontsize=layout.title_size,
            fontcolor="white",
            x=layout.margin,
            y=layout.title_y,
            borderw=3,
            bordercolor="black@0.6",
            **font_args,
        )
        .drawtext(
            textfile=str(caption_file),
            expansion="none",
            fontsize=caption.font_size,
            fontcolor="white",
            x=layout.margin,
            y=layout.caption_y,
            line_spacing=caption.line_spacing,
            borderw=2,
            bordercolor="black@0.6",
            **font_args,
        )
        .filter("format", "yuv420p")
    )
    audio = (
        ffmpeg.input(f"sine=f={look.tone_hz}:sample_rate=48000:duration={seconds:.6f}", f="lavfi")
        .audio.filter("volume", 0.12)
        .filter("aformat", channel_layouts="stereo")
    )
    return ffmpeg.output(
        video,
        audio,
        str(out),
        vcodec="libx264",
        preset=settings.X264_PRESET,
        crf=23,
        g=2 * fps,
        acodec="aac",
        audio_bitrate="128k",
        ar=48000,
        ac=2,
        movflags="+faststart",
        **{"frames:v": frames, "t": f"{seconds:.6f}", "f": "mp4"},
    ).global_args("-hide_banner", "-nostdin", "-loglevel", "error", "-progress", "pipe:1", "-nostats")


@register_provider("local")
class LocalProvider(VideoProvider):
    def catalogue(self) -> ProviderCatalogue:
        return ProviderCatalogue(
            provider=self.name,
            label="Local renderer (offline, free)",
            models=(
                ModelSpec(
                    provider=self.name,
                    id=LOCAL_MODEL,
                    label="Procedural clips drawn with ffmpeg",
                    clip_seconds=None,  # any length, exactly
                    sizes={},  # any even WIDTHxHEIGHT
                    price_per_second={"*": Decimal("0")},
                    first_frame=True,  # a reference image or the previous clip's last frame, inset
                    source="this project",
                ),
            ),
            default_model=LOCAL_MODEL,
        )

    def _clip_path(self, task_id: str) -> Path:
        if not task_id.startswith("local-") or "/" in task_id or ".." in task_id:
            raise ProviderError(f"not a local task id: {task_id!r}", permanent=True, code="not_found")
        return _work_dir() / f"{task_id}.mp4"

    def submit(self, request: RenderRequest, *, on_progress: ProgressCallback | None = None) -> ProviderTask:
        # The local provider renders during submit: there is no remote queue to wait on.
        task_id = f"local-{uuid.uuid4().hex}"
        final = self._clip_path(task_id)
        partial = final.with_name(f".{final.stem}.partial.mp4")
        with tempfile.TemporaryDirectory(prefix="local-provider-") as tmp:
            title_file = Path(tmp) / "title.txt"
            caption_file = Path(tmp) / "caption.txt"
            title_file.write_text(f"Segment {request.segment_index + 1} / {request.segment_count}", "utf-8")
            width, height = parse_size(request.size)
            caption = Layout(width, height).caption(request.prompt)
            caption_file.write_text(caption.text, "utf-8")
            args = (
                build_graph(request, caption, caption_file, title_file, partial)
                .overwrite_output()
                .compile(cmd=ffmpeg_exe())
            )
            try:
                self._run_with_progress(args, request.seconds, on_progress)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
        os.replace(partial, final)
        return ProviderTask(id=task_id, status=TaskState.COMPLETED, progress=100.0)

    @staticmethod
    def _run_with_progress(args: list[str], seconds: float, on_progress: ProgressCallback | None) -> None:
        def progress(line: str) -> None:
            # ffmpeg -progress prints key=value lines; out_time_us is how far the output has got.
            if on_progress and line.startswith("out_time_us="):
                try:
                    done = int(line.split("=", 1)[1]) / 1_000_000
                except ValueError:
                    return
                # The callback may raise to abandon the render (the segment was cancelled).
                on_progress(max(0.0, min(99.0, 100.0 * done / max(seconds, 1e-6))))

        timeout = media_timeout(seconds)
        try:
            finished = run_bounded(args, timeout=timeout, on_stdout_line=progress)
        except TimedOut:
            raise ProviderError(
                f"ffmpeg took longer than {timeout:g} s to draw a {seconds:g} s clip; it was stopped",
                permanent=True,
                code="ffmpeg_timeout",
            ) from None
        if finished.returncode != 0:
            tail = "\n".join(finished.stderr.decode("utf-8", "replace").strip().splitlines()[-5:])
            raise ProviderError(
                f"ffmpeg failed to draw the clip: {tail}", permanent=True, code="ffmpeg_failed"
            )

    def poll(self, task_id: str) -> ProviderTask:
        if self._clip_path(task_id).exists():
            return ProviderTask(id=task_id, status=TaskState.COMPLETED, progress=100.0)
        raise ProviderError(
            f"local task {task_id} has no clip (already downloaded or never rendered)",
            permanent=True,
            code="not_found",
        )

    def download(self, task_id: str, dest: Path) -> Path:
        source = self._clip_path(task_id)
        if not source.exists():
            raise ProviderError(
                f"local task {task_id} has no clip to download", permanent=True, code="expired"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Same file system in the common case: a rename, atomic; across devices, copy then rename.
        try:
            os.replace(source, dest)
        except OSError:
            import shutil

            partial = dest.with_name(f".{dest.name}.partial")
            shutil.copyfile(source, partial)
            os.replace(partial, dest)
            source.unlink(missing_ok=True)
        return dest
