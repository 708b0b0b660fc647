"""The local provider writes real H.264 + AAC clips of exactly the requested length and size."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from rendering.media import extract_frame, probe
from rendering.providers.base import ProviderError, RenderRequest
from rendering.providers.registry import get_provider, provider_names


def render(tmp_path: Path, name: str, **overrides) -> Path:
    fields = {
        "prompt": "A red fox runs through a snowy forest",
        "seconds": 2.0,
        "size": "320x240",
        "fps": 30,
        "model": "local-v1",
        "segment_index": 0,
        "segment_count": 2,
    }
    fields.update(overrides)
    provider = get_provider("local")
    progress: list[float] = []
    task = provider.submit(RenderRequest(**fields), on_progress=progress.append)
    assert task.status == "completed"
    assert provider.poll(task.id).status == "completed"
    out = provider.download(task.id, tmp_path / f"{name}.mp4")
    with pytest.raises(ProviderError, match="no clip"):
        provider.download(task.id, tmp_path / "again.mp4")
    return out


def mean_colour(path: Path, box: tuple[int, int, int, int]) -> tuple[float, float, float]:
    with Image.open(path) as image:
        pixels = list(image.convert("RGB").crop(box).getdata())
    return tuple(sum(p[i] for p in pixels) / len(pixels) for i in range(3))


def test_registry_lists_local():
    assert "local" in provider_names()


@pytest.mark.parametrize(("seconds", "size", "fps"), [(2.0, "320x240", 30), (1.5, "256x144", 24)])
def test_clip_is_h264_aac_of_exact_length_and_size(tmp_path, seconds, size, fps):
    clip = render(tmp_path, "clip", seconds=seconds, size=size, fps=fps)
    info = probe(clip)
    assert info.video_codec == "h264" and info.pix_fmt == "yuv420p"
    assert info.size == size and info.fps == fps
    assert info.audio_codec == "aac" and info.sample_rate == 48000 and info.channels == 2
    assert info.duration == pytest.approx(seconds, abs=0.05)
    assert info.video_frames == round(seconds * fps)


def test_segments_look_different(tmp_path):
    a = render(tmp_path, "a", prompt="Ocean waves at noon", segment_index=0)
    b = render(tmp_path, "b", prompt="Volcano erupting at night", segment_index=1)
    frame_a = extract_frame(a, tmp_path / "a.png", 1.0)
    frame_b = extract_frame(b, tmp_path / "b.png", 1.0)
    # Compare a background patch below the text: colour comes from the prompt.
    colour_a = mean_colour(frame_a, (150, 200, 200, 220))
    colour_b = mean_colour(frame_b, (150, 200, 200, 220))
    assert sum(abs(x - y) for x, y in zip(colour_a, colour_b, strict=True)) > 30


def test_reference_image_is_visible(tmp_path):
    reference = tmp_path / "ref.png"
    Image.new("RGB", (200, 200), (0, 255, 0)).save(reference)
    clip = render(tmp_path, "ref", reference_image=reference)
    frame = extract_frame(clip, tmp_path / "frame.png", 1.0)
    # The inset sits in the top-right corner, a third of the height tall.
    r, g, b = mean_colour(frame, (262, 25, 300, 70))
    assert g > 180 and r < 90 and b < 90, (r, g, b)


def test_unicode_and_special_characters_render(tmp_path):
    clip = render(tmp_path, "u", prompt="Ein Fuchs läuft 100% schnell: 'quote' \\ 東京の夜 🦊 % { }")
    assert probe(clip).duration == pytest.approx(2.0, abs=0.05)


def test_abandoning_kills_ffmpeg_and_leaves_nothing(tmp_path, settings):
    provider = get_provider("local")

    class Stop(Exception):
        pass

    def stop(_progress: float) -> None:
        raise Stop()

    request = RenderRequest(prompt="long", seconds=20, size="320x240", fps=30, model="local-v1")
    with pytest.raises(Stop):
        provider.submit(request, on_progress=stop)
    assert list(Path(settings.LOCAL_PROVIDER_DIR).glob("*")) == []


def test_unknown_task_ids_are_refused():
    with pytest.raises(ProviderError) as caught:
        get_provider("local").poll("../../etc/passwd")
    assert caught.value.permanent
