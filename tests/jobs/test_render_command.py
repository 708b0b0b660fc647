"""`manage.py render` end to end: a real video, progress, and clear refusals of bad input."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from jobs.models import JobStatus, ReferenceImage, VideoJob
from rendering.media import probe


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("render", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_render_writes_the_video_and_reports(tmp_path):
    reference = tmp_path / "ref.jpg"
    Image.new("RGB", (320, 240), (10, 200, 30)).save(reference, format="JPEG")
    output = tmp_path / "film.mp4"
    text = run(
        "A drone rises over a city. Night falls. The lights come on.",
        "--duration",
        "6",
        "--segment-seconds",
        "2",
        "--strategy",
        "sentences",
        "--size",
        "320x240",
        "--reference",
        str(reference),
        "-o",
        str(output),
    )
    assert output.exists()
    info = probe(output)
    assert info.duration == pytest.approx(6.0, abs=0.1) and info.size == "320x240"
    assert f"video: {output.resolve()}" in text
    assert "segments: 3" in text and "duration: 6.0" in text and "cost: $0.00" in text
    assert "segment   1" in text and "overall" in text and "100.0% completed" in text
    assert not list(tmp_path.glob(".*partial*"))
    job = VideoJob.objects.get()
    assert job.status == JobStatus.COMPLETED and ReferenceImage.objects.filter(job=job).count() == 1


@pytest.mark.django_db(transaction=True)
def test_manual_segments_reach_the_segments(tmp_path):
    run(
        "Two shots",
        "--duration",
        "2",
        "--segment-seconds",
        "1",
        "--size",
        "160x120",
        "--segment",
        "first shot",
        "--segment",
        "second shot",
    )
    job = VideoJob.objects.get()
    assert job.strategy == "manual"
    assert list(job.segments.values_list("prompt", flat=True)) == ["first shot", "second shot"]
    assert job.status == JobStatus.COMPLETED


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["   ", "--duration", "10"], "PROMPT: "),
        (["x", "--duration", "0"], "--duration: duration_seconds must be between"),
        (["x", "--duration", "4000"], "--duration"),
        (["x", "--duration", "10", "--strategy", "poetry"], "--strategy: unknown strategy 'poetry'"),
        (["x", "--duration", "30", "--segment", "a", "--segment", "b"], "--segment: manual mode needs 3"),
        (["x", "--duration", "10", "--provider", "veo9"], "--provider: unknown provider 'veo9'"),
        (["x", "--duration", "10", "--size", "12x"], "--size"),
        (["x", "--duration", "10", "-o", "out.mov"], "--output must end in .mp4"),
        (["x", "--duration", "10", "-o", "/nonexistent/dir/out.mp4"], "does not exist"),
        (
            ["x", "--duration", "10", "--reference", "/nonexistent.png"],
            "--reference /nonexistent.png is not a file",
        ),
        (["x", "--duration", "10", "--continuity", "reference"], "needs a reference image"),
    ],
)
def test_bad_input_exits_with_a_named_problem_and_leaves_nothing(tmp_path, args, message):
    with pytest.raises(CommandError) as caught:
        run(*args)
    assert message in str(caught.value)
    assert VideoJob.objects.count() == 0
    assert not list(Path(tmp_path).glob("*.mp4"))


@pytest.mark.django_db(transaction=True)
def test_bad_reference_file_is_refused_and_nothing_kept(tmp_path, settings):
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"this is not a png")
    with pytest.raises(CommandError, match="--reference: the file is not a readable PNG"):
        run("x", "--duration", "2", "--reference", str(fake))
    assert VideoJob.objects.count() == 0
    assert not any(p.is_file() for p in Path(settings.MEDIA_ROOT).rglob("*"))
