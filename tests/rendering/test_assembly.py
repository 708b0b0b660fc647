"""rendering.assembly: compare, conform, concatenate and assemble real clips; posters."""

from __future__ import annotations

import dataclasses
import hashlib
from fractions import Fraction
from pathlib import Path

import av
import ffmpeg
import pytest
from PIL import Image

from rendering import assembly
from rendering.assembly import (
    AssemblyResult,
    ClipInput,
    assemble,
    concat_copy,
    conform_clip,
    differences,
    make_poster,
)
from rendering.media import MediaError, probe, run_ffmpeg
from rendering.media_types import ClipTarget, MediaInfo

TARGET = ClipTarget(width=320, height=240, fps=30)
FRAME = 1 / TARGET.fps

MATCHING = MediaInfo(
    path="clip.mp4",
    duration=10.0,
    video_codec="h264",
    width=320,
    height=240,
    fps=Fraction(30),
    pix_fmt="yuv420p",
    video_frames=300,
    audio_codec="aac",
    sample_rate=48000,
    channels=2,
)


def video_packet_digest(path: Path) -> str:
    """Hash of the video packets' bytes: equal digests prove the picture was copied, not re-encoded."""
    digest = hashlib.sha256()
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            if packet.size:
                digest.update(bytes(packet))
    return digest.hexdigest()


def decoded_frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def peak_audio_level(path: Path) -> float:
    with av.open(str(path)) as container:
        return max(float(abs(frame.to_ndarray()).max()) for frame in container.decode(audio=0))


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*") if ".partial-" in p.name)


# --------------------------------------------------------------------------------------- differences


def test_differences_is_empty_for_a_matching_clip():
    assert differences(MATCHING, TARGET) == []


def test_differences_tolerates_fps_rounding():
    # 30 fps written with a 1/90000 time base can read back as 30.004: still 30 for stream copy.
    assert differences(dataclasses.replace(MATCHING, fps=Fraction(30004, 1000)), TARGET) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"video_codec": "hevc"}, "video codec hevc (want h264)"),
        ({"width": 640, "height": 480}, "size 640x480 (want 320x240)"),
        ({"fps": Fraction(25)}, "fps 25 (want 30)"),
        ({"fps": Fraction(30000, 1001)}, "fps 29.970 (want 30)"),
        ({"fps": None}, "fps unknown (want 30)"),
        ({"pix_fmt": "yuv444p"}, "pix_fmt yuv444p (want yuv420p)"),
        ({"audio_codec": "mp3"}, "audio codec mp3 (want aac)"),
        ({"sample_rate": 44100}, "sample rate 44100 Hz (want 48000 Hz)"),
        ({"channels": 1}, "channels 1 (want 2)"),
        ({"audio_codec": None, "sample_rate": None, "channels": None}, "no audio track"),
        ({"video_codec": None, "width": None, "height": None, "fps": None}, "no video track"),
    ],
)
def test_differences_names_each_mismatch(change, expected):
    assert differences(dataclasses.replace(MATCHING, **change), TARGET) == [expected]


def test_differences_lists_every_mismatch():
    odd = dataclasses.replace(MATCHING, width=640, height=480, fps=Fraction(25), channels=1)

    assert differences(odd, TARGET) == [
        "size 640x480 (want 320x240)",
        "fps 25 (want 30)",
        "channels 1 (want 2)",
    ]


# ------------------------------------------------------------------------------------------ conform


def test_conform_matching_clip_is_a_stream_copy(make_clip, work):
    clip = make_clip(seconds=2.0)

    mode = conform_clip(clip, work / "out.mp4", TARGET, duration=2.0)

    assert mode == "copy"
    assert video_packet_digest(work / "out.mp4") == video_packet_digest(clip)
    assert differences(probe(work / "out.mp4"), TARGET) == []
    assert leftovers(work) == []


def test_conform_within_half_a_frame_is_not_a_trim(make_clip, work):
    clip = make_clip(seconds=2.0)

    assert conform_clip(clip, work / "out.mp4", TARGET, duration=2.0 + 0.4 * FRAME) == "copy"


def test_conform_mono_44k_audio_reencodes_only_the_audio(make_clip, work):
    clip = make_clip(sample_rate=44100, channels=1)

    mode = conform_clip(clip, work / "out.mp4", TARGET, duration=2.0)

    info = probe(work / "out.mp4")
    assert mode == "audio"
    assert (info.audio_codec, info.sample_rate, info.channels) == ("aac", 48000, 2)
    assert video_packet_digest(work / "out.mp4") == video_packet_digest(clip)
    assert info.duration == pytest.approx(2.0, abs=FRAME)
    assert peak_audio_level(work / "out.mp4") > 0.05  # the tone survived (mono -> stereo is -3 dB)


def test_conform_clip_without_audio_gets_a_silent_stereo_track(make_clip, work):
    clip = make_clip(audio=False, seconds=2.0)

    mode = conform_clip(clip, work / "out.mp4", TARGET)

    info = probe(work / "out.mp4")
    assert mode == "audio"
    assert (info.audio_codec, info.sample_rate, info.channels) == ("aac", 48000, 2)
    assert info.duration == pytest.approx(2.0, abs=FRAME)
    assert peak_audio_level(work / "out.mp4") == 0.0
    assert video_packet_digest(work / "out.mp4") == video_packet_digest(clip)


def test_conform_other_size_and_fps_reencodes_the_video(make_clip, work):
    clip = make_clip(size="480x360", fps=25, seconds=2.0, color=None)

    mode = conform_clip(clip, work / "out.mp4", TARGET, duration=2.0)

    info = probe(work / "out.mp4")
    assert mode == "video+audio"
    assert differences(info, TARGET) == []
    assert info.video_frames == 60
    assert info.duration == pytest.approx(2.0, abs=FRAME)


def test_conform_letterboxes_instead_of_stretching(make_clip, work):
    # A 16:9 clip into a 4:3 target keeps its shape: black bars above and below.
    clip = make_clip(size="320x180", seconds=1.0, color="white")

    conform_clip(clip, work / "out.mp4", TARGET)

    with av.open(str(work / "out.mp4")) as container:
        image = next(container.decode(video=0)).to_image()
    assert image.size == (320, 240)
    assert max(image.getpixel((160, 5))) < 40  # bar
    assert min(image.getpixel((160, 120))) > 200  # picture


def test_conform_trims_a_long_clip_to_the_exact_frame(make_clip, work):
    # A provider rendered 3 s for a 2 s segment.
    clip = make_clip(seconds=3.0)

    mode = conform_clip(clip, work / "out.mp4", TARGET, duration=2.0)

    info = probe(work / "out.mp4")
    assert mode == "video+audio"
    assert info.video_frames == 60
    assert decoded_frame_count(work / "out.mp4") == 60
    assert info.duration == pytest.approx(2.0, abs=FRAME)


def test_conform_refuses_a_clip_shorter_than_planned(make_clip, work):
    clip = make_clip(seconds=2.0)

    with pytest.raises(MediaError, match=r"shorter than the planned 3\.000s"):
        conform_clip(clip, work / "out.mp4", TARGET, duration=3.0)
    assert list(work.iterdir()) == []


# ------------------------------------------------------------------------------------------- concat


def test_concat_copy_joins_clips_whose_names_need_quoting(make_clip, work):
    # Given three matching clips, one in a folder with a space and a name with a single quote
    odd_dir = work / "my clips"
    clips = [
        make_clip(seconds=1.0, color="red"),
        make_clip(odd_dir / "it's a clip.mp4", seconds=1.0, color="green"),
        make_clip(seconds=1.0, color="blue"),
    ]

    # When they are concatenated by stream copy
    out = concat_copy(clips, work / "joined.mp4")

    # Then the result lasts the sum and holds every frame
    info = probe(out)
    assert out == work / "joined.mp4"
    assert info.duration == pytest.approx(3.0, abs=0.1)
    assert decoded_frame_count(out) == 90
    assert differences(info, TARGET) == []
    assert leftovers(work) == []


def test_concat_copy_refuses_an_empty_list(work):
    with pytest.raises(MediaError, match="empty"):
        concat_copy([], work / "joined.mp4")
    assert list(work.iterdir()) == []


# ----------------------------------------------------------------------------------------- assemble


def test_assemble_matching_clips_is_pure_stream_copy(make_clip, work):
    clips = [ClipInput(make_clip(seconds=1.0), 1.0) for _ in range(3)]
    progress: list[float] = []

    result = assemble(clips, work / "final.mp4", TARGET, on_progress=progress.append)

    assert isinstance(result, AssemblyResult)
    assert (result.path, result.method, result.normalised) == (work / "final.mp4", "copy", [])
    assert result.duration == pytest.approx(3.0, abs=0.1)
    assert probe(result.path).duration == pytest.approx(result.duration)
    assert result.seconds > 0
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    assert all(0.0 <= p <= 1.0 for p in progress)
    assert sorted(p.name for p in work.iterdir()) == ["final.mp4"]


def test_assemble_normalises_only_the_odd_clip(make_clip, work):
    clips = [
        ClipInput(make_clip(seconds=1.0), 1.0),
        ClipInput(make_clip(seconds=1.0, size="640x480", fps=25, sample_rate=44100, channels=1), 1.0),
        ClipInput(make_clip(seconds=1.0, color="blue"), 1.0),
    ]
    conform_dir = work / "tmp"

    result = assemble(clips, work / "final.mp4", TARGET, work_dir=conform_dir)

    info = probe(result.path)
    assert (result.method, result.normalised) == ("normalised", [1])
    assert result.duration == pytest.approx(3.0, abs=0.1)
    assert (info.width, info.height, info.sample_rate, info.channels) == (320, 240, 48000, 2)
    assert decoded_frame_count(result.path) == 90
    assert list(conform_dir.iterdir()) == []  # the conformed copy was cleaned up


def test_assemble_trims_a_clip_rendered_longer_than_planned(make_clip, work):
    # A provider offering only fixed lengths rendered 1.5 s for a 1 s segment.
    clips = [ClipInput(make_clip(seconds=1.0), 1.0), ClipInput(make_clip(seconds=1.5), 1.0)]

    result = assemble(clips, work / "final.mp4", TARGET)

    assert (result.method, result.normalised) == ("normalised", [1])
    assert result.duration == pytest.approx(2.0, abs=0.1)
    assert decoded_frame_count(result.path) == 60


def test_assemble_adds_silence_to_a_clip_without_audio(make_clip, work):
    clips = [ClipInput(make_clip(seconds=1.0), 1.0), ClipInput(make_clip(seconds=1.0, audio=False), 1.0)]

    result = assemble(clips, work / "final.mp4", TARGET)

    assert (result.method, result.normalised) == ("normalised", [1])
    assert probe(result.path).has_audio


def test_assemble_remuxes_a_clip_with_another_stream_order_without_reencoding(make_clip, work):
    # The concat demuxer pairs streams by index, so an audio-first clip must be remuxed (not re-encoded).
    plain = make_clip(seconds=1.0, color="green")
    audio_first = work / "audio-first.mp4"
    run_ffmpeg(
        ffmpeg.output(
            ffmpeg.input(str(plain))["a"], ffmpeg.input(str(plain))["v"], str(audio_first), c="copy"
        ),
        what="make an audio-first clip",
    )
    clips = [ClipInput(make_clip(seconds=1.0), 1.0), ClipInput(audio_first, 1.0)]

    result = assemble(clips, work / "final.mp4", TARGET)

    assert (result.method, result.normalised) == ("copy", [])
    assert decoded_frame_count(result.path) == 60
    assert differences(probe(result.path), TARGET) == []


def test_assemble_refuses_an_empty_clip_list(work):
    with pytest.raises(MediaError, match="empty clip list"):
        assemble([], work / "final.mp4", TARGET)


def test_assemble_refuses_a_clip_shorter_than_planned(make_clip, work):
    clips = [ClipInput(make_clip(seconds=1.0), 1.0), ClipInput(make_clip(seconds=1.0), 2.0)]

    with pytest.raises(MediaError, match=r"clip 1: .* shorter than the planned"):
        assemble(clips, work / "final.mp4", TARGET)
    assert not (work / "final.mp4").exists()


def test_assemble_failure_on_a_corrupt_clip_leaves_nothing_behind(make_clip, work):
    corrupt = work / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 500)
    clips = [ClipInput(make_clip(seconds=1.0), 1.0), ClipInput(corrupt, 1.0)]

    with pytest.raises(MediaError, match="clip 1"):
        assemble(clips, work / "final.mp4", TARGET, work_dir=work / "tmp")

    assert not (work / "final.mp4").exists()
    assert leftovers(work) == []


def truncated_clip(make_clip, work: Path, *, size: str, fps: int) -> Path:
    """A clip cut off mid-download: its index (moved to the front by faststart) still promises the full
    length, so probing succeeds and only ffmpeg, reading the data, can notice."""
    whole = make_clip(seconds=2.0, size=size, fps=fps, color=None)
    faststart = concat_copy([whole], work / "faststart.mp4")  # a remux with +faststart
    cut = work / "cut.mp4"
    cut.write_bytes(faststart.read_bytes()[: faststart.stat().st_size * 2 // 3])
    faststart.unlink()
    assert probe(cut).duration == pytest.approx(2.0, abs=0.05)
    return cut


@pytest.mark.parametrize(
    ("size", "fps"),
    [("320x240", 30), ("640x480", 25)],
    ids=["joined-as-is", "conformed-first"],
)
def test_assemble_failure_on_a_truncated_clip_leaves_nothing_behind(make_clip, work, size, fps):
    # Given a truncated clip in the middle, one that is either joined as-is or has to be conformed
    clips = [
        ClipInput(make_clip(seconds=1.0), 1.0),
        ClipInput(truncated_clip(make_clip, work, size=size, fps=fps), 2.0),
        ClipInput(make_clip(seconds=1.0), 1.0),
    ]

    # When the assembly runs, ffmpeg's complaint becomes an error instead of a silently short video
    with pytest.raises(MediaError, match="ffmpeg reported errors"):
        assemble(clips, work / "final.mp4", TARGET, work_dir=work / "tmp")

    # And nothing is left: no output, no partial file, no conformed copies
    assert not (work / "final.mp4").exists()
    assert leftovers(work) == []
    assert list((work / "tmp").iterdir()) == []


def test_assemble_failed_duration_check_leaves_no_output(make_clip, work, monkeypatch):
    # Force the final duration check to fail after ffmpeg has written the joined file.
    monkeypatch.setattr(assembly, "TOTAL_DURATION_TOLERANCE", -1.0)
    clips = [ClipInput(make_clip(seconds=1.0), 1.0)]

    with pytest.raises(MediaError, match=r"planned for 1\.000s"):
        assemble(clips, work / "final.mp4", TARGET)

    assert not (work / "final.mp4").exists()
    assert leftovers(work) == []


def test_assemble_keeps_the_previous_video_when_it_fails(make_clip, work):
    (work / "final.mp4").write_bytes(b"previous render")
    clips = [ClipInput(make_clip(seconds=1.0), 1.0), ClipInput(work / "missing.mp4", 1.0)]

    with pytest.raises(MediaError, match="clip 1: media file not found"):
        assemble(clips, work / "final.mp4", TARGET)

    assert (work / "final.mp4").read_bytes() == b"previous render"


# ------------------------------------------------------------------------------------------- poster


def test_make_poster_writes_a_jpeg_no_wider_than_asked(make_clip, work):
    clip = make_clip(size="640x480", seconds=1.0, color=None)

    poster = make_poster(clip, work / "poster.jpg", max_width=320)

    with Image.open(poster) as image:
        assert (image.format, image.size) == ("JPEG", (320, 240))
    assert sorted(p.name for p in work.iterdir()) == ["poster.jpg"]


def test_make_poster_past_the_end_uses_the_last_frame(make_clip, work):
    clip = make_clip(seconds=0.5)

    poster = make_poster(clip, work / "poster.jpeg", at_seconds=99.0)

    with Image.open(poster) as image:
        assert (image.format, image.size) == ("JPEG", (320, 240))


def test_make_poster_insists_on_a_jpeg_name(make_clip, work):
    with pytest.raises(ValueError, match="JPEG"):
        make_poster(make_clip(seconds=0.5), work / "poster.png")
