"""The providers issue's "done when", end to end: `manage.py render` (call_command, the embedded default's
in-process runner) against the fal and Vertex stand-ins makes a 30 s video from clips the model renders
(Kling 10+10+10, Veo 8+8+8+6), one create per segment, chained frames that are the previous clip's stored
last frame, and a content refusal that exits with the provider's reason and leaves no file.
"""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from jobs.models import JobStatus, SegmentStatus, VideoJob
from rendering.media import probe

pytestmark = pytest.mark.django_db(transaction=True)

KLING = "fal-ai/kling-video/v2.1/master"
VEO_FAST = "veo-3.1-fast-generate-001"
PROMPT = (
    "A paper boat drifts down a rain-soaked street. It slips into a storm drain and tumbles through "
    "the dark. It bursts out into a sunlit canal."
)
REFUSED = "A FORBIDDEN ritual in a candlelit hall. Smoke fills the room. The doors burst open."
TIMEOUT = "120"  # --timeout: the command gives up (and cancels) rather than hang the suite


@pytest.fixture(autouse=True)
def _fast_encodes(settings):
    # The stand-ins deliver 24 fps and the job asks for the default 30, so every clip is conformed (a
    # re-encode); the fastest x264 preset keeps that path without 1080p encodes dominating the suite.
    settings.X264_PRESET = "ultrafast"


def render(*args: str) -> str:
    out = io.StringIO()
    call_command("render", *args, "--timeout", TIMEOUT, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def inline_image(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    assert header.startswith("data:image/") and header.endswith(";base64"), header[:40]
    return base64.b64decode(payload)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_30s_video(output: Path, size: str) -> None:
    info = probe(output)
    assert info.duration == pytest.approx(30.0, abs=0.1)
    assert info.size == size


def test_kling_chain_renders_30s_in_three_10s_clips_each_from_the_last_frame(fal, tmp_path):
    output = tmp_path / "kling.mp4"
    # The command as written: Kling 2.1 Master renders 1080p only, so a job that names no size
    # gets the model's 1920x1080 rather than the deployment default (1280x720).
    text = render(
        PROMPT,
        "--duration", "30",
        "--provider", "fal",
        "--model", KLING,
        "--continuity", "chain",
        "-o", str(output),
    )  # fmt: skip

    assert_30s_video(output, "1920x1080")
    assert f"video: {output.resolve()}" in text
    job = VideoJob.objects.get()
    assert job.status == JobStatus.COMPLETED and job.continuity == "chain"
    segments = list(job.segments.order_by("index"))
    assert [s.render_seconds for s in segments] == [10.0, 10.0, 10.0]
    assert [round(s.end_seconds - s.start_seconds, 3) for s in segments] == [10.0, 10.0, 10.0]
    assert all(s.status == SegmentStatus.COMPLETED for s in segments)

    # One create per segment, each for a 10 s clip: text-to-video first, then image-to-video.
    assert fal.stats.submits == 3
    sent = fal.stats.requests
    assert [r["endpoint"] for r in sent] == [
        f"{KLING}/text-to-video",
        f"{KLING}/image-to-video",
        f"{KLING}/image-to-video",
    ]
    assert [r["input"]["duration"] for r in sent] == ["10", "10", "10"]
    assert "image_url" not in sent[0]["input"]
    # Chain: each later segment starts from the previous segment's stored (true) last frame, byte for byte.
    for request, previous in zip(sent[1:], segments[:-1], strict=True):
        stored = Path(previous.last_frame.path).read_bytes()
        assert sha256(inline_image(request["input"]["image_url"])) == sha256(stored)


def test_veo_renders_30s_in_clips_of_8_8_8_6(vertex, tmp_path):
    output = tmp_path / "veo.mp4"
    text = render(
        PROMPT,
        "--duration", "30",
        "--provider", "veo",
        "--model", VEO_FAST,
        "-o", str(output),
    )  # fmt: skip

    assert_30s_video(output, "1280x720")
    assert f"video: {output.resolve()}" in text
    job = VideoJob.objects.get()
    assert job.status == JobStatus.COMPLETED
    segments = list(job.segments.order_by("index"))
    assert [s.render_seconds for s in segments] == [8.0, 8.0, 8.0, 6.0]
    assert [round(s.end_seconds - s.start_seconds, 3) for s in segments] == [8.0, 8.0, 8.0, 6.0]

    # One create per segment, each for a length Veo renders (parallel: in any order).
    assert vertex.stats.creates == 4
    assert dict(vertex.stats.creates_by_model) == {VEO_FAST: 4}
    durations = [body["parameters"]["durationSeconds"] for body in vertex.stats.create_bodies]
    assert sorted(durations) == [6, 8, 8, 8]


@pytest.mark.parametrize(
    ("provider", "args", "code", "reason"),
    [
        (
            "fal",
            ["--model", KLING, "--continuity", "chain"],
            "content_policy_violation",
            "flagged by a content checker",
        ),
        (
            "veo",
            ["--model", VEO_FAST],
            "content_policy_violation",
            "violated Vertex AI's usage guidelines",
        ),
    ],
    ids=["fal", "veo"],
)
def test_a_content_refusal_exits_with_the_providers_reason_and_no_file(
    request, tmp_path, provider, args, code, reason
):
    server = request.getfixturevalue({"fal": "fal", "veo": "vertex"}[provider])
    output = tmp_path / "never.mp4"

    with pytest.raises(CommandError) as caught:
        render(REFUSED, "--duration", "30", "--provider", provider, *args, "-o", str(output))

    message = str(caught.value)
    assert message.startswith("render failed:"), message
    assert code in message and reason in message, message
    assert not output.exists() and not list(tmp_path.glob(".*partial*"))
    assert VideoJob.objects.get().status == JobStatus.FAILED
    # It was the provider that refused, not the planner; a refused link ends a chain (nothing more is paid).
    creates = server.stats.submits if provider == "fal" else server.stats.creates
    if "chain" in args:
        assert creates == 1
    else:
        assert creates >= 1
