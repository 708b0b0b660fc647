"""GET/POST /api/video-jobs/, GET/DELETE /api/video-jobs/{id}/."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.files.storage import default_storage

from jobs import services
from jobs.models import JobStatus, ReferenceImage, Segment, SegmentStatus, VideoJob

from .conftest import assert_error, client_for, image_bytes, job_url, upload

pytestmark = pytest.mark.django_db

JOB_FIELDS = {
    "id",
    "status",
    "progress",
    "error",
    "cost_estimate_usd",
    "cost_spent_usd",
    "output_url",
    "poster_url",
    "segments",
    "reference_images",
    "prompt",
    "duration_seconds",
    "segment_seconds",
    "segmentation_mode",
    "strategy",
    "continuity",
    "provider",
    "model",
    "size",
    "use_cache",
    "notices",
    "cost_saved_usd",
}
SEGMENT_FIELDS = {
    "index",
    "prompt",
    "is_manual",
    "start_seconds",
    "end_seconds",
    "status",
    "progress",
    "attempts",
    "error",
    "clip_url",
    "thumbnail_url",
    "cached",
}


class TestCreate:
    def test_creates_and_starts_rendering_by_default(self, api, user, django_capture_on_commit_callbacks):
        # Given a prompt and a duration; when the job is posted
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = api.post(
                "/api/video-jobs/",
                {"prompt": "A fox runs. It jumps. It sleeps.", "duration_seconds": 25},
                format="json",
            )
        # Then it is stored, planned into 10 s segments and queued for rendering after commit
        assert response.status_code == 201, response.json()
        body = response.json()
        assert set(body) >= JOB_FIELDS
        assert body["status"] == JobStatus.QUEUED and body["segment_seconds"] == 10
        assert [(s["start_seconds"], s["end_seconds"]) for s in body["segments"]] == [
            (0, 10),
            (10, 20),
            (20, 25),
        ]
        assert all(set(s) >= SEGMENT_FIELDS for s in body["segments"])
        assert {s["status"] for s in body["segments"]} == {SegmentStatus.QUEUED}
        assert response["Location"].endswith(f"/api/video-jobs/{body['id']}/")
        assert callbacks, "the render is handed to the workers after commit"
        job = VideoJob.objects.get(id=body["id"])
        assert job.owner == user and job.render_generation == 1

    def test_render_false_leaves_a_draft(self, api):
        response = api.post(
            "/api/video-jobs/",
            {"prompt": "A boat sails.", "duration_seconds": 8, "render": False, "title": "Boat"},
            format="json",
        )
        assert response.status_code == 201
        body = response.json()
        assert body["status"] == JobStatus.DRAFT and body["title"] == "Boat"
        assert {s["status"] for s in body["segments"]} == {SegmentStatus.PENDING}

    def test_manual_segments(self, api):
        response = api.post(
            "/api/video-jobs/",
            {
                "prompt": "Three shots of a city.",
                "duration_seconds": 30,
                "segmentation_mode": "manual",
                "segments": [{"prompt": "Dawn"}, {"prompt": "Noon"}, {"prompt": "  Dusk  "}],
                "render": False,
            },
            format="json",
        )
        assert response.status_code == 201, response.json()
        body = response.json()
        assert body["segmentation_mode"] == "manual" and body["strategy"] == "manual"
        assert [(s["prompt"], s["is_manual"]) for s in body["segments"]] == [
            ("Dawn", True),
            ("Noon", True),
            ("Dusk", True),
        ]

    def test_all_fields_reach_the_service(self, api):
        response = api.post(
            "/api/video-jobs/",
            {
                "prompt": "Scene 1: a harbour. Scene 2: a storm.",
                "duration_seconds": 20,
                "segment_seconds": 8,
                "strategy": "sentences",
                "continuity": "chain",
                "reference_fit": "pad",
                "provider": "sora",
                "model": "sora-2-pro",
                "size": "1792x1024",
                "fps": 24,
                "render": False,
            },
            format="json",
        )
        assert response.status_code == 201, response.json()
        job = VideoJob.objects.get(id=response.json()["id"])
        assert (job.strategy, job.continuity, job.reference_fit) == ("sentences", "chain", "pad")
        assert (job.provider, job.model, job.size, job.fps, job.segment_seconds) == (
            "sora",
            "sora-2-pro",
            "1792x1024",
            24,
            8,
        )
        # 8 + 8 + 4 s planned; Sora renders 8 + 8 + 4 at $0.50/s for this size.
        assert job.cost_estimate_usd == Decimal("10.0000")

    def test_a_refused_create_stores_nothing(self, api):
        response = api.post(
            "/api/video-jobs/",
            {"prompt": "A fox.", "duration_seconds": 10, "continuity": "reference"},
            format="json",
        )
        assert_error(response, 400, "continuity", "needs a reference image")
        assert VideoJob.objects.count() == 0 and Segment.objects.count() == 0


class TestList:
    def test_only_my_jobs_newest_first(self, api, make_job, other_user):
        first = make_job()
        second = make_job()
        make_job(owner=other_user)
        response = api.get("/api/video-jobs/")
        assert response.status_code == 200
        body = response.json()
        assert body["count"] == 2
        assert [row["id"] for row in body["results"]] == [str(second.id), str(first.id)]
        row = body["results"][0]
        assert row["segment_count"] == 2 and row["segments_done"] == 0 and "segments" not in row

    def test_filter_by_status(self, api, make_job):
        draft = make_job()
        cancelled = services.video_job_cancel(job=make_job())
        response = api.get("/api/video-jobs/", {"status": "cancelled"})
        assert [row["id"] for row in response.json()["results"]] == [str(cancelled.id)]
        response = api.get("/api/video-jobs/", {"status": "draft"})
        assert [row["id"] for row in response.json()["results"]] == [str(draft.id)]

    def test_paginated(self, api, make_job, settings):
        for _ in range(5):
            make_job(duration_seconds=5)
        page = api.get("/api/video-jobs/", {"page_size": 2}).json()
        assert page["count"] == 5 and len(page["results"]) == 2 and page["next"]
        last = api.get("/api/video-jobs/", {"page_size": 2, "page": 3}).json()
        assert len(last["results"]) == 1 and last["next"] is None
        assert_error(api.get("/api/video-jobs/", {"page": 9}), 404)

    def test_staff_see_every_job(self, make_job, other_user, staff_user):
        make_job()
        make_job(owner=other_user)
        body = client_for(staff_user).get("/api/video-jobs/").json()
        assert {row["owner"] for row in body["results"]} == {"alice", "bob"}


class TestDetail:
    def test_shows_the_job_segments_and_images(self, api, make_job):
        job = make_job()
        image = services.reference_image_add(job=job, upload=upload(image_bytes()), segment_index=1)
        body = api.get(job_url(job)).json()
        assert set(body) >= JOB_FIELDS
        assert body["id"] == str(job.id) and body["segment_count"] == 2
        assert [s["index"] for s in body["segments"]] == [0, 1]
        assert body["reference_images"][0]["id"] == image.id
        assert body["reference_images"][0]["segment_index"] == 1
        assert body["reference_images"][0]["url"].startswith("http://testserver/media/jobs/")
        assert body["output_url"] is None and body["cost_spent_usd"] == "0.0000"

    def test_staff_may_see_another_users_job(self, make_job, other_user, staff_user):
        job = make_job(owner=other_user)
        response = client_for(staff_user).get(job_url(job))
        assert response.status_code == 200 and response.json()["owner"] == "bob"


class TestDelete:
    def test_deletes_the_job_and_its_files(self, api, make_job, django_capture_on_commit_callbacks):
        job = make_job()
        image = services.reference_image_add(job=job, upload=upload(image_bytes()))
        name = image.image.name
        assert default_storage.exists(name)
        with django_capture_on_commit_callbacks(execute=True):
            response = api.delete(job_url(job))
        assert response.status_code == 204
        assert not VideoJob.objects.filter(id=job.id).exists()
        assert not ReferenceImage.objects.exists() and not Segment.objects.exists()
        assert not default_storage.exists(name)
        assert_error(api.get(job_url(job)), 404)

    def test_deleting_a_running_job_cancels_it_first(self, api, make_job, django_capture_on_commit_callbacks):
        job = make_job()
        with django_capture_on_commit_callbacks(execute=False):
            services.video_job_render(job=job)
            response = api.delete(job_url(job))
        assert response.status_code == 204
        assert not VideoJob.objects.filter(id=job.id).exists()
