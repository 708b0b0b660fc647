"""The sora provider through the whole pipeline against the fake API, on the embedded default's
in-process runner (the Celery worker versions are in tests/fleet)."""

from __future__ import annotations

import hashlib
import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from jobs import services
from jobs.models import JobStatus, VideoJob
from rendering.media import probe
from rendering.reference_fit import fit_reference
from tests.support.jobs import render_and_wait

pytestmark = pytest.mark.django_db(transaction=True)


def run_cli(*args: str) -> str:
    out = io.StringIO()
    call_command("render", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_cli_renders_through_the_protocol(fake_api, tmp_path):
    output = tmp_path / "sora.mp4"
    text = run_cli(
        "A glacier calves. Ice crashes into the sea.",
        "--provider",
        "sora",
        "--duration",
        "8",
        "--segment-seconds",
        "4",
        "--size",
        "1280x720",
        "--strategy",
        "sentences",
        "-o",
        str(output),
    )
    info = probe(output)
    assert info.duration == pytest.approx(8.0, abs=0.1) and info.size == "1280x720"
    assert "cost: $0.80 spent (estimate $0.80 for 8 billed seconds on sora/sora-2)" in text
    assert fake_api.stats.creates == 2
    assert {r["seconds"] for r in fake_api.stats.requests} == {"4"}


def test_cli_failure_names_the_providers_reason_and_writes_nothing(fake_api, tmp_path):
    output = tmp_path / "never.mp4"
    with pytest.raises(CommandError) as caught:
        run_cli(
            "A FORBIDDEN scene",
            "--provider",
            "sora",
            "--duration",
            "4",
            "--segment-seconds",
            "4",
            "--size",
            "1280x720",
            "-o",
            str(output),
        )
    assert "moderation_blocked" in str(caught.value)
    assert "blocked by our moderation system" in str(caught.value)
    assert not output.exists() and not list(tmp_path.glob(".*partial*"))
    assert VideoJob.objects.get().status == JobStatus.FAILED


def test_segment_shorter_than_a_clip_is_billed_up_and_trimmed(fake_api, user):
    job = services.video_job_create(
        owner=user, prompt="A single 10 second shot", duration_seconds=10, provider="sora", size="1280x720"
    )
    assert job.billed_seconds_estimate == 12 and job.cost_estimate_usd == Decimal("1.2")
    job = render_and_wait(job)
    assert job.status == JobStatus.COMPLETED, job.error
    assert fake_api.stats.requests[0]["seconds"] == "12"
    assert probe(Path(job.output_video.path)).duration == pytest.approx(10.0, abs=0.1)
    assert job.cost_spent_usd == Decimal("1.2")


def test_chain_sends_the_previous_clips_last_frame(fake_api, user):
    job = services.video_job_create(
        owner=user,
        prompt="Dawn. Noon. Dusk.",
        duration_seconds=12,
        segment_seconds=4,
        provider="sora",
        size="1280x720",
        continuity="chain",
        strategy="sentences",
    )
    job = render_and_wait(job)
    assert job.status == JobStatus.COMPLETED, job.error
    segments = list(job.segments.order_by("index"))
    sent = [r["reference_sha256"] for r in fake_api.stats.requests]
    expected = [None] + [
        hashlib.sha256(Path(s.last_frame.path).read_bytes()).hexdigest() for s in segments[:-1]
    ]
    assert sent == expected


def test_reference_mode_fits_the_image_to_the_size(fake_api, user):
    job = services.video_job_create(
        owner=user,
        prompt="A portrait comes alive. It smiles.",
        duration_seconds=8,
        segment_seconds=4,
        provider="sora",
        size="720x1280",
        continuity="reference",
    )
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (200, 10, 10)).save(buffer, format="JPEG")
    services.reference_image_add(job=job, upload=buffer)
    job = render_and_wait(job)
    assert job.status == JobStatus.COMPLETED, job.error
    shas = [r["reference_sha256"] for r in fake_api.stats.requests]
    assert len(shas) == 2 and shas[0] == shas[1] and shas[0] is not None


@pytest.mark.parametrize(("policy", "corner"), [("cover", (200, 10, 10)), ("pad", (0, 0, 0))])
def test_fit_policies(tmp_path, policy, corner):
    source = tmp_path / "wide.png"
    Image.new("RGB", (400, 100), (200, 10, 10)).save(source)
    out = fit_reference(source, tmp_path / "fitted", "720x1280", policy)
    with Image.open(out) as image:
        assert image.size == (720, 1280)
        assert image.getpixel((5, 5)) == corner


def test_exact_size_image_passes_byte_for_byte(tmp_path):
    source = tmp_path / "frame.png"
    Image.new("RGB", (1280, 720), (1, 2, 3)).save(source)
    out = fit_reference(source, tmp_path / "sent", "1280x720")
    assert out.read_bytes() == source.read_bytes()
