"""Segments (list, one, override, re-render) and the render lifecycle actions (render, retry, cancel,
re-render) plus both estimates."""

from __future__ import annotations

from decimal import Decimal

import pytest

from jobs import services
from jobs.models import JobStatus, Segment, SegmentStatus, VideoJob

from .conftest import assert_error, job_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_render(django_capture_on_commit_callbacks):
    """Renders are queued but never handed to the workers: these tests are about state, not video."""
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        yield callbacks


def make_failed(job: VideoJob) -> VideoJob:
    # Test setup: the state a worker leaves behind when segment 2 fails.
    services.video_job_render(job=job)
    Segment.objects.filter(job=job, index=0).update(status=SegmentStatus.COMPLETED, progress=100)
    Segment.objects.filter(job=job, index=1).update(status=SegmentStatus.FAILED, error="moderation_blocked")
    VideoJob.objects.filter(id=job.id).update(status=JobStatus.FAILED, error="segment 2 failed")
    job.refresh_from_db()
    return job


class TestSegments:
    def test_list_and_one(self, api, make_job):
        job = make_job()
        listed = api.get(job_url(job, "segments/")).json()
        assert [s["index"] for s in listed] == [0, 1]
        one = api.get(job_url(job, "segments/1/")).json()
        assert one == listed[1]
        assert_error(api.get(job_url(job, "segments/2/")), 404, fragment="segment 2 does not exist")

    def test_override_a_prompt(self, api, make_job):
        job = make_job()
        response = api.patch(job_url(job, "segments/1/"), {"prompt": "  A new ending.  "}, format="json")
        assert response.status_code == 200, response.json()
        assert response.json()["prompt"] == "A new ending." and response.json()["is_manual"] is True
        segment = job.segments.get(index=1)
        assert segment.prompt == "A new ending." and segment.is_manual
        # The other segment is untouched.
        assert job.segments.get(index=0).is_manual is False
        # PATCH semantics: an empty object changes nothing.
        unchanged = api.patch(job_url(job, "segments/0/"), {}, format="json")
        assert unchanged.status_code == 200 and unchanged.json()["is_manual"] is False

    def test_override_refused_while_that_segment_renders(self, api, make_job, no_render):
        job = make_job()
        services.video_job_render(job=job)
        Segment.objects.filter(job=job, index=0).update(status=SegmentStatus.RENDERING)
        before = job.segments.get(index=0).prompt
        response = api.patch(job_url(job, "segments/0/"), {"prompt": "Too late"}, format="json")
        assert_error(response, 409, fragment="segment 0 is rendering")
        assert response.json()["code"] == "illegal_transition"
        assert job.segments.get(index=0).prompt == before

    def test_rerender_one_segment_of_a_finished_job(self, api, make_job, no_render):
        job = make_failed(make_job())
        response = api.post(job_url(job, "segments/0/rerender/"))
        assert response.status_code == 202, response.json()
        statuses = {s["index"]: s["status"] for s in response.json()["segments"]}
        # Only the chosen segment is queued again; the failed one waits for its own retry.
        assert statuses == {0: SegmentStatus.QUEUED, 1: SegmentStatus.FAILED}
        assert response.json()["status"] == JobStatus.QUEUED

    def test_rerender_needs_a_finished_job(self, api, make_job):
        job = make_job()
        assert_error(api.post(job_url(job, "segments/0/rerender/")), 409, fragment="wait until it finishes")
        assert_error(api.post(job_url(job, "segments/7/rerender/")), 404)

    def test_rerender_several(self, api, make_job, no_render):
        job = services.video_job_cancel(job=make_job(duration_seconds=30))
        response = api.post(job_url(job, "rerender/"), {"segments": [0, 2]}, format="json")
        assert response.status_code == 202, response.json()
        statuses = [s["status"] for s in response.json()["segments"]]
        assert statuses == [SegmentStatus.QUEUED, SegmentStatus.CANCELLED, SegmentStatus.QUEUED]


class TestActions:
    def test_render_then_render_again_is_a_conflict(self, api, make_job, no_render):
        job = make_job()
        response = api.post(job_url(job, "render/"))
        assert response.status_code == 202
        assert response.json()["status"] == JobStatus.QUEUED
        again = api.post(job_url(job, "render/"))
        assert_error(again, 409, fragment="only a draft or cancelled job can be rendered")
        assert VideoJob.objects.get(id=job.id).render_generation == 1

    def test_cancel(self, api, make_job, no_render):
        job = make_job()
        services.video_job_render(job=job)
        response = api.post(job_url(job, "cancel/"))
        assert response.status_code == 202
        body = response.json()
        assert body["status"] == JobStatus.CANCELLED
        assert {s["status"] for s in body["segments"]} == {SegmentStatus.CANCELLED}
        assert_error(api.post(job_url(job, "cancel/")), 409, fragment="cannot become cancelled")

    def test_cancelled_job_can_be_rendered_again(self, api, make_job, no_render):
        job = services.video_job_cancel(job=make_job())
        response = api.post(job_url(job, "render/"))
        assert response.status_code == 202 and response.json()["status"] == JobStatus.QUEUED

    def test_retry_renders_only_the_failed_segments(self, api, make_job, no_render):
        job = make_failed(make_job())
        response = api.post(job_url(job, "retry/"))
        assert response.status_code == 202, response.json()
        statuses = {s["index"]: s["status"] for s in response.json()["segments"]}
        assert statuses == {0: SegmentStatus.COMPLETED, 1: SegmentStatus.QUEUED}
        assert response.json()["error"] == ""

    def test_retry_needs_a_failed_job(self, api, make_job):
        job = make_job()
        assert_error(api.post(job_url(job, "retry/")), 409, fragment="only a failed job can be retried")

    def test_render_with_reference_continuity_needs_an_image(self, api, make_job):
        job = make_job(continuity="reference")
        assert_error(api.post(job_url(job, "render/")), 400, "continuity", "needs a reference image")
        assert VideoJob.objects.get(id=job.id).status == JobStatus.DRAFT


class TestEstimates:
    def test_job_estimate_shows_billed_and_trimmed_seconds(self, api, make_job):
        # 25 s in about 10 s segments on Sora (4/8/12 s clips) is planned in lengths it renders: 12 + 8 + 8
        # billed (28 s, the smallest sum of its lengths above 25), only the last clip trimmed, by 3 s.
        job = make_job(duration_seconds=25, provider="sora", model="sora-2", size="1280x720")
        response = api.get(job_url(job, "estimate/"))
        assert response.status_code == 200
        body = response.json()
        assert body["planned_seconds"] == 25 and body["billed_seconds"] == 28 and body["trimmed_seconds"] == 3
        assert body["price_per_second"] == "0.1000" and body["cost_usd"] == "2.8000"
        assert [(s["render_seconds"], s["trimmed_seconds"]) for s in body["segments"]] == [
            (12, 0),
            (8, 0),
            (8, 3),
        ]
        assert Decimal(body["cost_usd"]) == job.cost_estimate_usd
        # Nothing was rendered or changed.
        assert VideoJob.objects.get(id=job.id).status == JobStatus.DRAFT

    def test_live_estimate_stores_nothing(self, api):
        payload = {
            "prompt": "A fox runs. It jumps.",
            "duration_seconds": 20,
            "provider": "sora",
            "model": "sora-2-pro",
            "render": True,
            "title": "ignored",
        }
        response = api.post("/api/estimate/", payload, format="json")
        assert response.status_code == 200, response.json()
        body = response.json()
        # 20 s is 12 + 8 s clips exactly: nothing billed is thrown away.
        assert body["model"] == "sora-2-pro" and body["billed_seconds"] == 20 and body["cost_usd"] == "6.0000"
        assert len(body["segments"]) == 2
        assert VideoJob.objects.count() == 0

    def test_live_estimate_matches_what_create_stores(self, api):
        payload = {
            "prompt": "Dawn. Noon. Dusk.",
            "duration_seconds": 30,
            "segmentation_mode": "manual",
            "segments": [{"prompt": "Dawn"}, {"prompt": "Noon"}, {"prompt": "Dusk"}],
            "provider": "sora",
            "render": False,
        }
        estimate = api.post("/api/estimate/", payload, format="json").json()
        created = api.post("/api/video-jobs/", payload, format="json").json()
        assert estimate["cost_usd"] == created["cost_estimate_usd"]
        assert estimate["billed_seconds"] == created["billed_seconds_estimate"]
        assert [s["prompt"] for s in estimate["segments"]] == [s["prompt"] for s in created["segments"]]

    def test_live_estimate_validates_like_create(self, api):
        response = api.post(
            "/api/estimate/",
            {"prompt": "x", "duration_seconds": 30, "provider": "sora", "size": "640x480"},
            format="json",
        )
        assert_error(response, 400, "size", "is not offered by sora-2")
