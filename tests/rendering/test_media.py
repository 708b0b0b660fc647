"""rendering.media: probing, exact frame extraction, ffmpeg errors and atomic writes, on real files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import ffmpeg
import pytest
from PIL import Image

from rendering import media
from rendering.media import (
    MediaError,
    atomic_output,
    extract_frame,
    extract_last_frame,
    extract_last_frame_and_thumbnail,
    probe,
    run_ffmpeg,
)

FPS = 30


def is_red(rgb: tuple[int, ...]) -> bool:
    r, g, b = rgb[:3]
    return r > 180 and g < 80 and b < 80


def is_blue(rgb: tuple[int, ...]) -> bool:
    r, g, b = rgb[:3]
    return b > 180 and r < 80 and g < 80


def centre_pixel(image_path: Path) -> tuple[int, ...]:
    with Image.open(image_path) as image:
        return image.convert("RGB").getpixel((image.width // 2, image.height // 2))


def red_then_blue_clip(path: Path, *, red_frames: int, blue_frames: int, gop: int) -> Path:
    """A red clip whose last ``blue_frames`` frames are blue, with B-frames and a ``gop``-frame GOP.

    veryfast (not ultrafast) so the stream has B-frames: then decode order differs from display order,
    and only "greatest pts" (not "last decoded packet") finds the last picture.
    """
    total = red_frames + blue_frames
    source = ffmpeg.input(f"color=c=red:size=64x48:rate={FPS}", f="lavfi").filter(
        "drawbox", x=0, y=0, w="iw", h="ih", color="blue", t="fill", enable=f"gte(n,{red_frames})"
    )
    out = ffmpeg.output(
        source,
        str(path),
        vcodec="libx264",
        preset="veryfast",
        pix_fmt="yuv420p",
        g=gop,
        sc_threshold=0,  # no extra keyframe where the colour changes: the last frame must not be one
        frames=total,
    )
    run_ffmpeg(out, what="make the red-then-blue clip")
    return path


def displayed_frames(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return sorted(container.decode(video=0), key=lambda frame: frame.pts)


# --------------------------------------------------------------------------------------------- probe


def test_probe_reads_a_real_clip(make_clip):
    # Given a 2 s 320x240 30 fps H.264 + AAC clip
    clip = make_clip(seconds=2.0)

    # When it is probed
    info = probe(clip)

    # Then every field matches what was written
    assert info.path == str(clip)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert (info.video_codec, info.width, info.height, info.pix_fmt) == ("h264", 320, 240, "yuv420p")
    assert info.fps == Fraction(30)
    assert info.video_frames == 60
    assert (info.audio_codec, info.sample_rate, info.channels) == ("aac", 48000, 2)
    assert info.has_audio
    assert info.size == "320x240"


def test_probe_of_a_clip_without_audio(make_clip):
    info = probe(make_clip(audio=False, size="160x120", fps=25))

    assert (info.video_codec, info.width, info.height, info.fps) == ("h264", 160, 120, Fraction(25))
    assert (info.audio_codec, info.sample_rate, info.channels) == (None, None, None)
    assert not info.has_audio


def test_probe_of_mono_44k_audio(make_clip):
    info = probe(make_clip(sample_rate=44100, channels=1))

    assert (info.audio_codec, info.sample_rate, info.channels) == ("aac", 44100, 1)


@pytest.mark.parametrize("name", ["notes.txt", "looks-like-a-video.mp4"])
def test_probe_rejects_a_text_file(tmp_path, name):
    text_file = tmp_path / name
    text_file.write_text("this is not a video\n" * 200)

    with pytest.raises(MediaError, match="not"):
        probe(text_file)


def test_probe_rejects_a_missing_file(tmp_path):
    with pytest.raises(MediaError, match="not found"):
        probe(tmp_path / "nowhere.mp4")


# -------------------------------------------------------------------------------------------- frames


# One GOP for the whole clip (decode from the start), and a 3 s clip with 12-frame GOPs (seek near the end).
@pytest.mark.parametrize(("red_frames", "gop"), [(30, 250), (90, 12)])
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_extract_last_frame_returns_the_true_last_frame(work, red_frames, gop, suffix):
    # Given a clip whose only blue frame is the very last one, and that frame is not a keyframe
    clip = red_then_blue_clip(work / "clip.mp4", red_frames=red_frames, blue_frames=1, gop=gop)
    frames = displayed_frames(clip)
    assert len(frames) == red_frames + 1
    assert is_red(frames[-2].to_image().getpixel((32, 24)))
    assert not frames[-1].key_frame, "the test needs a last frame that a keyframe seek would miss"

    # When the last frame is extracted
    image = extract_last_frame(clip, work / f"last{suffix}")

    # Then it is the blue one, in the format the suffix asks for
    assert image == work / f"last{suffix}"
    assert is_blue(centre_pixel(image))
    with Image.open(image) as opened:
        assert opened.format == {".png": "PNG", ".jpg": "JPEG"}[suffix]
        assert opened.size == (64, 48)
    assert sorted(p.name for p in work.iterdir()) == sorted(["clip.mp4", f"last{suffix}"])


def test_extract_last_frame_needs_a_video_stream(tmp_path):
    tone = tmp_path / "tone.m4a"
    run_ffmpeg(
        ffmpeg.input("sine=duration=0.5", f="lavfi").output(str(tone), acodec="aac"), what="make a tone"
    )

    with pytest.raises(MediaError, match="no video stream"):
        extract_last_frame(tone, tmp_path / "last.png")
    assert not (tmp_path / "last.png").exists()


def test_extract_frame_picks_the_frame_on_screen_at_a_time(tmp_path):
    # Given one second of red then one second of blue
    clip = red_then_blue_clip(tmp_path / "clip.mp4", red_frames=30, blue_frames=30, gop=250)

    # Then the frame on screen is red before 1 s, blue from 1 s on, and the last frame past the end
    assert is_red(centre_pixel(extract_frame(clip, tmp_path / "a.png", 0.0)))
    assert is_red(centre_pixel(extract_frame(clip, tmp_path / "b.png", 0.99)))
    assert is_blue(centre_pixel(extract_frame(clip, tmp_path / "c.png", 1.0)))
    assert is_blue(centre_pixel(extract_frame(clip, tmp_path / "d.png", 1.5)))
    assert is_blue(centre_pixel(extract_frame(clip, tmp_path / "e.png", 60.0)))


@pytest.mark.parametrize("suffix", [".ts", ".mkv"])
def test_frames_are_exact_in_containers_with_rough_seeking(work, suffix):
    # MPEG-TS seeks approximately (it can land nowhere) and starts at 1.4 s; Matroska has a sparse index.
    clip = red_then_blue_clip(work / f"clip{suffix}", red_frames=90, blue_frames=1, gop=12)

    assert is_blue(centre_pixel(extract_last_frame(clip, work / "last.png")))
    assert is_red(centre_pixel(extract_frame(clip, work / "a.png", 2.99)))
    assert is_blue(centre_pixel(extract_frame(clip, work / "b.png", 3.0)))


def test_extract_frame_scales_down_keeping_the_aspect_ratio(make_clip, tmp_path):
    clip = make_clip(size="320x240", seconds=1.0)

    small = extract_frame(clip, tmp_path / "thumb.jpg", 0.5, max_width=160)
    same = extract_frame(clip, tmp_path / "full.png", 0.5, max_width=1280)  # never enlarged

    with Image.open(small) as image:
        assert (image.format, image.size) == ("JPEG", (160, 120))
    with Image.open(same) as image:
        assert image.size == (320, 240)


def test_extract_frame_rejects_bad_arguments(make_clip, tmp_path):
    clip = make_clip(seconds=0.5)

    with pytest.raises(ValueError, match="negative"):
        extract_frame(clip, tmp_path / "x.png", -1.0)
    with pytest.raises(ValueError, match="suffix"):
        extract_frame(clip, tmp_path / "x.tiff", 0.1)
    assert list(tmp_path.glob("x.*")) == []


def pixels(image_path: Path) -> bytes:
    with Image.open(image_path) as image:
        return image.convert("RGB").tobytes()


# (red, blue, gop, thumbnail time): the thumbnail's time in the last GOP (one decoding pass), before it
# (a second seek), and in a one-GOP clip; each time lands where red turns blue or just before.
@pytest.mark.parametrize(
    ("red_frames", "blue_frames", "gop", "at", "one_pass"),
    [
        (60, 30, 30, 2.0, True),
        (45, 45, 30, 1.49, False),
        (30, 30, 250, 1.0, True),
        (30, 30, 250, 0.99, True),
        (90, 1, 12, 1.5, False),
    ],
)
def test_last_frame_and_thumbnail_together_are_the_frames_taken_one_by_one(
    work, monkeypatch, red_frames, blue_frames, gop, at, one_pass
):
    # Given a red-then-blue clip with B-frames
    clip = red_then_blue_clip(work / "clip.mp4", red_frames=red_frames, blue_frames=blue_frames, gop=gop)
    seeks = []
    frame_at = media._frame_at
    monkeypatch.setattr(media, "_frame_at", lambda *args: seeks.append(args[2]) or frame_at(*args))

    # When the last frame and a thumbnail are taken together, and then each on its own
    last, thumb = extract_last_frame_and_thumbnail(
        clip, work / "last.png", work / "thumb.png", at, max_width=32
    )
    assert seeks == ([] if one_pass else [at])  # a second seek only when the last GOP starts after `at`
    monkeypatch.setattr(media, "_frame_at", frame_at)
    alone_last = extract_last_frame(clip, work / "alone-last.png")
    alone_thumb = extract_frame(clip, work / "alone-thumb.png", at, max_width=32)

    # Then they are the same pictures, pixel for pixel, and the frame on screen at the time is the right one
    assert (last, thumb) == (work / "last.png", work / "thumb.png")
    assert pixels(last) == pixels(alone_last)
    assert pixels(thumb) == pixels(alone_thumb)
    assert is_blue(centre_pixel(last))
    on_screen_is_blue = int(at * FPS + 1e-9) >= red_frames  # the frame shown at `at` started by then
    assert (is_blue if on_screen_is_blue else is_red)(centre_pixel(thumb))
    with Image.open(thumb) as image:
        assert image.size == (32, 24)


def test_the_last_frame_png_is_the_decoded_picture_losslessly(make_clip, tmp_path):
    # Given a clip with a busy picture (test pattern, noise-free), whose last frame is saved as PNG
    clip = make_clip(size="320x240", seconds=1.0)
    last = extract_last_frame(clip, tmp_path / "last.png")

    # Then the PNG holds exactly the RGB picture of the last displayed frame
    with Image.open(last) as image:
        assert (image.format, image.mode, image.size) == ("PNG", "RGB", (320, 240))
    assert pixels(last) == displayed_frames(clip)[-1].to_image().convert("RGB").tobytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial file left


def test_last_frame_and_thumbnail_refuse_a_negative_time_and_leave_nothing(make_clip, tmp_path):
    clip = make_clip(seconds=0.5)

    with pytest.raises(ValueError, match="negative"):
        extract_last_frame_and_thumbnail(clip, tmp_path / "l.png", tmp_path / "t.jpg", -0.1, max_width=64)
    assert list(tmp_path.glob("[lt].*")) == []


# -------------------------------------------------------------------------------- ffmpeg and writes


def test_run_ffmpeg_turns_failures_into_media_error_with_stderr(tmp_path):
    graph = ffmpeg.input(str(tmp_path / "missing.mp4")).output(str(tmp_path / "out.mp4"))

    with pytest.raises(MediaError, match="ffmpeg failed to copy the missing file") as caught:
        run_ffmpeg(graph, what="copy the missing file")

    assert "No such file or directory" in caught.value.stderr_tail
    assert "No such file or directory" in str(caught.value)


def test_atomic_output_renames_only_on_success(work):
    final = work / "video.mp4"

    with atomic_output(final) as partial:
        # The partial is a hidden sibling with the same suffix, so ffmpeg still infers the format.
        assert partial.parent == work
        assert partial.suffix == ".mp4"
        assert partial.name.startswith(".video.partial-")
        partial.write_bytes(b"complete")
        assert not final.exists()

    assert final.read_bytes() == b"complete"
    assert [p.name for p in work.iterdir()] == ["video.mp4"]


def test_atomic_output_keeps_the_old_file_and_cleans_up_on_failure(work):
    final = work / "video.mp4"
    final.write_bytes(b"old")

    with pytest.raises(RuntimeError, match="boom"), atomic_output(final) as partial:
        partial.write_bytes(b"half")
        raise RuntimeError("boom")

    assert final.read_bytes() == b"old"
    assert [p.name for p in work.iterdir()] == ["video.mp4"]


def test_atomic_output_complains_when_nothing_was_written(work):
    with pytest.raises(MediaError, match="nothing was written"), atomic_output(work / "a" / "x.mp4"):
        pass

    assert list((work / "a").iterdir()) == []
