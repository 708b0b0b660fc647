"""The storyboard's backend: the "preview so far" (the finished beginning joined by stream copy, cached
by its takes, bounded), duplicating a job as a new draft, and the ETA selector. Real renders on the
embedded default."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from jobs import previews
from jobs.eta import segment_render_time
from jobs.models import JobStatus, SegmentStatus, Take, VideoJob
from rendering.media import probe
from tests.api.conftest import assert_error, client_for, image_bytes, render_through_api, upload
from tests.factories import VideoJobFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def rendered(user):
    return render_through_api(
        user,
        title="Three lamps",
        shots=["A lamp is lit.", "A second lamp.", "A third lamp."],
        segment_seconds=2,
        duration_seconds=6,
    )


def storage_name(url: str) -> str:
    return urlsplit(url).path.split("/media/", 1)[-1]


def test_the_preview_is_the_finished_beginning_by_stream_copy_and_cached_by_its_takes(rendered, user):
    api = client_for(user)
    # Given segment 2 unfinished (as while it renders): the preview stops before it.
    rendered.segments.filter(index=1).update(status=SegmentStatus.RENDERING)
    first = api.get(f"/api/video-jobs/{rendered.id}/preview/").json()
    assert (first["available"], first["segments"], first["segment_count"]) == (True, 1, 3)
    name = storage_name(first["video_url"])
    assert default_storage.exists(name)
    seconds = rendered.segments.get(index=0).duration_seconds
    assert probe(default_storage.path(name)).duration == pytest.approx(seconds, abs=0.1)
    # Asked again with nothing new: the same file, not a new join.
    assert api.get(f"/api/video-jobs/{rendered.id}/preview/").json()["video_url"] == first["video_url"]

    # When it finishes, the preview grows to the whole job, and the person may play it.
    rendered.segments.filter(index=1).update(status=SegmentStatus.COMPLETED)
    whole = api.get(f"/api/video-jobs/{rendered.id}/preview/").json()
    assert (whole["segments"], whole["takes"]) == (3, [1, 1, 1])
    assert whole["duration_seconds"] == pytest.approx(
        sum(s.duration_seconds for s in rendered.segments.all())
    )
    browser = Client()
    browser.force_login(user)
    assert browser.get(urlsplit(whole["video_url"]).path).status_code == 200


def test_previews_are_bounded_per_job_and_deleted_with_it(rendered, user):
    api = client_for(user)
    for unfinished in (0, 1, 2, None):
        rendered.segments.update(status=SegmentStatus.COMPLETED)
        if unfinished is not None:
            rendered.segments.filter(index=unfinished).update(status=SegmentStatus.FAILED)
        api.get(f"/api/video-jobs/{rendered.id}/preview/")
    kept = previews.preview_names(rendered)
    assert 1 <= len(kept) <= previews.PREVIEWS_KEPT
    assert api.delete(f"/api/video-jobs/{rendered.id}/").status_code == 204
    assert not any(default_storage.exists(name) for name in kept)


def test_no_preview_before_the_first_segment_finishes_and_none_for_others(user, other_user):
    job = VideoJobFactory(owner=user, shots=["One.", "Two."], short=True)
    answer = client_for(user).get(f"/api/video-jobs/{job.id}/preview/")
    assert answer.status_code == 200
    assert answer.json() == {
        "available": False,
        "segments": 0,
        "segment_count": 2,
        "duration_seconds": 0.0,
        "takes": [],
        "video_url": None,
    }
    assert_error(client_for(other_user).get(f"/api/video-jobs/{job.id}/preview/"), 404)


def test_duplicate_makes_a_draft_with_the_edited_cards_and_leaves_the_original(rendered, user, other_user):
    api = client_for(user)
    api.patch(f"/api/video-jobs/{rendered.id}/segments/1/", {"prompt": "A blue lamp."}, format="json")
    answer = api.post(f"/api/video-jobs/{rendered.id}/duplicate/")
    assert answer.status_code == 201, answer.content
    copy = answer.json()
    assert copy["id"] != str(rendered.id)
    assert (copy["status"], copy["title"], copy["segmentation_mode"]) == (
        "draft",
        "Three lamps (copy)",
        "manual",
    )
    assert [s["prompt"] for s in copy["segments"]] == ["A lamp is lit.", "A blue lamp.", "A third lamp."]
    assert all(s["status"] == "pending" and s["take"] == 0 for s in copy["segments"])
    assert (copy["provider"], copy["size"], copy["duration_seconds"]) == ("local", "320x240", 6)
    rendered.refresh_from_db()
    assert rendered.status == JobStatus.COMPLETED and rendered.version_number == 1
    # Someone else cannot copy a job they cannot see.
    assert_error(client_for(other_user).post(f"/api/video-jobs/{rendered.id}/duplicate/"), 404)


def test_duplicate_copies_the_reference_images(user):
    job = VideoJobFactory(owner=user, prompt="A kite over a beach.", duration_seconds=4, segment_seconds=2)
    api = client_for(user)
    added = api.post(
        f"/api/video-jobs/{job.id}/reference-images/", {"image": upload(image_bytes())}, format="multipart"
    )
    assert added.status_code == 201, added.content
    copy = api.post(f"/api/video-jobs/{job.id}/duplicate/").json()
    assert copy["segmentation_mode"] == "auto" and copy["strategy"] == job.strategy
    assert len(copy["reference_images"]) == 1
    assert copy["reference_images"][0]["url"] != added.json()["url"]


def test_the_render_time_is_the_median_of_recent_parallel_takes(rendered):
    job = rendered
    started = timezone.now() - timedelta(minutes=10)
    VideoJob.objects.filter(id=job.id).update(started_at=started)
    for seconds, take in zip(
        (30, 50, 400), Take.objects.filter(segment__job=job).order_by("id"), strict=True
    ):
        Take.objects.filter(id=take.id).update(created_at=started + timedelta(seconds=seconds))
    estimate = segment_render_time(provider="local", model=job.model)
    assert (estimate.seconds, estimate.samples) == (50.0, 3)
    # Another model has no history yet; a chain job's serial waits are not render times.
    assert segment_render_time(provider="local", model="other").seconds is None
    VideoJob.objects.filter(id=job.id).update(continuity="chain")
    assert segment_render_time(provider="local", model=job.model).samples == 0
