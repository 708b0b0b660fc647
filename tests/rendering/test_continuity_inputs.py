"""Continuity uses each model's inputs: `bridge` sends each segment's keyframe as the first frame and the
next segment's keyframe as the last frame (Kling's image_url / tail_image_url on fal), and `reference`
puts the job's images on Veo's reference slots, in clips of the 8 s that reference images need."""

from __future__ import annotations

import base64
import hashlib
import io

import pytest
from PIL import Image

from jobs import services
from jobs.errors import InvalidInput
from jobs.models import JobStatus
from rendering.transport import inprocess_runner

pytestmark = pytest.mark.django_db(transaction=True)

KLING_TURBO = "fal-ai/kling-video/v2.5-turbo/pro"
VEO_FAST = "veo-3.1-fast-generate-001"


@pytest.fixture(autouse=True)
def _fast_encodes(settings):
    settings.X264_PRESET = "ultrafast"


def png(colour: tuple[int, int, int], size=(640, 360)) -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    buffer.seek(0)
    return buffer


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def finish(job):
    assert inprocess_runner().wait_idle(timeout=120)
    job.refresh_from_db()
    return job


def test_bridge_renders_each_segment_from_its_keyframe_to_the_next(user, fal):
    job = services.video_job_create(
        owner=user,
        prompt="Dawn over the bay. A storm rolls in.",
        duration_seconds=20,
        provider="fal",
        model=KLING_TURBO,
        continuity="bridge",
        use_cache=False,
    )
    assert list(job.segments.values_list("render_seconds", flat=True)) == [10, 10]
    with pytest.raises(InvalidInput, match="upload a reference image for segment 2"):
        services.video_job_render(job=job)  # the seam's keyframe is missing
    first = services.reference_image_add(job=job, upload=png((200, 120, 40)), segment_index=0)
    second = services.reference_image_add(job=job, upload=png((20, 40, 160)), segment_index=1)
    done = finish(services.video_job_render(job=job))
    assert done.status == JobStatus.COMPLETED, done.error
    sent = {r["input"]["prompt"]: r["input"] for r in fal.stats.requests}
    assert len(sent) == 2
    by_segment = [sent[s.prompt] for s in done.segments.order_by("index")]

    def image(uri: str) -> str:
        return sha(base64.b64decode(uri.partition(",")[2]))

    stored = [sha(first.image.read()), sha(second.image.read())]
    assert image(by_segment[0]["image_url"]) == stored[0]
    assert image(by_segment[0]["tail_image_url"]) == stored[1]  # ends where segment 2 starts
    assert image(by_segment[1]["image_url"]) == stored[1] and "tail_image_url" not in by_segment[1]


def test_reference_puts_the_jobs_images_on_veos_reference_slots(user, vertex):
    job = services.video_job_create(
        owner=user,
        prompt="A red kite over a beach. It dives into the sand.",
        duration_seconds=16,
        provider="veo",
        model=VEO_FAST,
        size="1280x720",
        continuity="reference",
        use_cache=False,
    )
    # Veo renders reference images only in 8 s clips: the plan says so before anything is paid.
    assert list(job.segments.values_list("render_seconds", flat=True)) == [8, 8]
    images = [services.reference_image_add(job=job, upload=png(c)) for c in ((250, 0, 0), (0, 250, 0))]
    done = finish(services.video_job_render(job=job))
    assert done.status == JobStatus.COMPLETED, done.error
    bodies = vertex.stats.create_bodies
    assert len(bodies) == 2
    expected = sorted(sha(i.image.read()) for i in images)
    for body in bodies:
        instance = body["instances"][0]
        assert "image" not in instance  # Veo takes reference images or a first frame, not both
        references = instance["referenceImages"]
        assert [r["referenceType"] for r in references] == ["asset", "asset"]
        assert sorted(sha(base64.b64decode(r["image"]["bytesBase64Encoded"])) for r in references) == expected
        assert body["parameters"]["durationSeconds"] == 8
