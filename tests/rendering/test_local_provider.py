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


# --- a first video that looks alive (issue 14, point 7) ---------------------------------------------


def frames_at(clip: Path, times: list[float]) -> list[Image.Image]:
    """The frames shown at `times` (seconds), decoded with PyAV."""
    import av

    wanted, found = sorted(times), {}
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            for time in wanted:
                if time not in found and frame.time is not None and frame.time >= time - 1e-6:
                    found[time] = frame.to_image().convert("RGB")
    return [found[time] for time in times]


def white_columns(image: Image.Image, rows: range) -> list[int]:
    """Columns of the (near-)white pixels in `rows`: the gradient is never that bright, so in the
    lower part of a frame with a short caption they are the moving box's or the progress bar's."""
    pixels = image.load()
    return [x for y in rows for x in range(image.width) if all(channel > 235 for channel in pixels[x, y])]


def test_the_box_and_the_bar_move(tmp_path):
    clip = render(tmp_path, "moving", prompt="A fox.", seconds=3.0, size="320x240")
    early, late = frames_at(clip, [0.5, 1.5])
    box_rows = range(120, 230)  # below the caption, above the bar
    box_early, box_late = white_columns(early, box_rows), white_columns(late, box_rows)
    assert box_early and box_late, "the box is not in the frame"
    centre_early = sum(box_early) / len(box_early)
    centre_late = sum(box_late) / len(box_late)
    assert abs(centre_late - centre_early) > 240 // 9 / 2  # it travelled more than half its size
    bar_rows = range(237, 240)
    # The bar fills as the clip plays: a sixth of the width after 0.5 s of 3, half after 1.5 s.
    assert len(white_columns(early, bar_rows)) / 3 == pytest.approx(320 / 6, abs=8)
    assert len(white_columns(late, bar_rows)) / 3 == pytest.approx(320 / 2, abs=8)


def test_the_whole_prompt_is_drawn_wrapped(tmp_path, settings, monkeypatch):
    from rendering.providers import local

    prompt = (
        "The lighthouse keeper climbs the spiral stairs at dusk, winds the old clockwork and lights "
        "the great lamp while a storm gathers over the black sea."
    )
    written: list[str] = []
    original = local.build_graph

    def spy(request, caption, caption_file, title_file, out):
        written.append(Path(caption_file).read_text("utf-8"))
        return original(request, caption, caption_file, title_file, out)

    monkeypatch.setattr(local, "build_graph", spy)
    render(tmp_path, "wrapped", prompt=prompt, size="320x240")
    (text,) = written
    assert len(text.splitlines()) > 1
    assert " ".join(text.split()) == prompt  # all of it, every word whole, in order


def test_a_long_caption_shrinks_the_text_rather_than_cutting_it(tmp_path):
    from rendering.providers.local import Layout

    short = Layout(1280, 720).caption("A fox runs.")
    long = Layout(1280, 720).caption("A fox runs through the snowy forest toward the frozen river. " * 20)
    assert long.complete and short.complete
    assert long.font_size < short.font_size


def test_the_same_prompt_makes_the_same_picture(tmp_path):
    # ffmpeg's gradients source is random unless seeded; the look must follow the prompt alone.
    first = render(tmp_path, "first", prompt="Ocean waves at noon", segment_index=0)
    second = render(tmp_path, "second", prompt="Ocean waves at noon", segment_index=0)
    a = mean_colour(extract_frame(first, tmp_path / "first.png", 1.0), (0, 0, 320, 240))
    b = mean_colour(extract_frame(second, tmp_path / "second.png", 1.0), (0, 0, 320, 240))
    assert a == pytest.approx(b, abs=0.5)
