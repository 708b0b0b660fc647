"""The Idempotency-Key header on job create and the render actions: a retry gets the first answer."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test.client import encode_multipart
from django.utils import timezone
from rest_framework.test import APIClient

from idempotency import services as idempotency_services
from idempotency.decorators import REPLAYED_HEADER
from idempotency.models import IdempotencyKey, KeyState
from jobs import services
from jobs.models import JobStatus, VideoJob
from tests.api.conftest import assert_error, client_for, image_bytes, job_url

pytestmark = pytest.mark.django_db

CREATE = {"prompt": "A fox runs. It jumps.", "duration_seconds": 4, "segment_seconds": 2, "render": False}
KEY = "3f1c9a52-6b1e-4c1d-9a0e-1f2e3d4c5b6a"


def create(client: APIClient, body: dict | None = None, key: str | None = KEY) -> object:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post("/api/video-jobs/", body or CREATE, format="json", headers=headers)


class TestCreate:
    def test_a_retry_gets_the_first_answer_and_no_second_job(self, api, user):
        first = create(api)
        again = create(api)
        assert first.status_code == 201, first.json()
        assert again.status_code == 201
        assert again.json() == first.json()
        assert again["Location"] == first["Location"]
        assert again[REPLAYED_HEADER] == "true" and not first.has_header(REPLAYED_HEADER)
        assert VideoJob.objects.filter(owner=user).count() == 1

    def test_without_the_header_each_post_creates(self, api, user):
        create(api, key=None)
        create(api, key=None)
        assert VideoJob.objects.filter(owner=user).count() == 2

    def test_the_same_key_with_another_body_is_refused(self, api, user):
        create(api)
        response = create(api, {**CREATE, "prompt": "A cat sleeps."})
        body = assert_error(response, 422, fragment="Idempotency-Key")
        assert body["code"] == "idempotency_key_reused"
        assert VideoJob.objects.filter(owner=user).count() == 1

    def test_the_same_key_on_another_path_is_refused(self, api, make_job):
        create(api)
        job = make_job()
        response = api.post(job_url(job, "render/"), headers={"Idempotency-Key": KEY})
        assert_error(response, 422, fragment="Idempotency-Key")
        job.refresh_from_db()
        assert job.status == JobStatus.DRAFT

    def test_a_request_still_running_with_the_key_gets_409(self, api, user):
        fingerprint_of_first = _claim_as_if_running(api, user)
        response = create(api)
        body = assert_error(response, 409, fragment="still being processed")
        assert body["code"] == "idempotency_key_in_progress"
        assert response["Retry-After"] == "1"
        assert not VideoJob.objects.filter(owner=user).exists()
        assert IdempotencyKey.objects.get(owner=user, key=KEY).fingerprint == fingerprint_of_first

    def test_a_claim_left_by_a_dead_process_is_taken_over(self, api, user, settings):
        _claim_as_if_running(api, user)
        IdempotencyKey.objects.filter(key=KEY).update(
            locked_at=timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_LOCK_SECONDS + 1)
        )
        response = create(api)
        assert response.status_code == 201 and not response.has_header(REPLAYED_HEADER)
        assert VideoJob.objects.filter(owner=user).count() == 1
        assert IdempotencyKey.objects.get(key=KEY).state == KeyState.COMPLETED

    def test_keys_belong_to_their_user(self, api, other_api, user, other_user):
        mine = create(api)
        theirs = create(other_api)
        assert theirs.status_code == 201 and not theirs.has_header(REPLAYED_HEADER)
        assert theirs.json()["id"] != mine.json()["id"]
        assert VideoJob.objects.filter(owner=other_user).count() == 1

    def test_an_expired_key_is_forgotten(self, api, user):
        create(api)
        IdempotencyKey.objects.filter(key=KEY).update(expires_at=timezone.now() - timedelta(seconds=1))
        again = create(api)
        assert again.status_code == 201 and not again.has_header(REPLAYED_HEADER)
        assert VideoJob.objects.filter(owner=user).count() == 2

    def test_keys_expire_after_the_setting_and_are_purged(self, api, settings):
        settings.IDEMPOTENCY_KEY_TTL_SECONDS = 60
        create(api)
        record = IdempotencyKey.objects.get(key=KEY)
        assert timedelta(seconds=59) < record.expires_at - record.created_at <= timedelta(seconds=61)
        assert idempotency_services.idempotency_key_purge() == 0
        assert idempotency_services.idempotency_key_purge(now=record.expires_at) == 1
        create(api, key="another-key")
        IdempotencyKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        call_command("purge_idempotency_keys")
        assert not IdempotencyKey.objects.exists()

    @pytest.mark.parametrize(
        ("key", "fragment"),
        [
            ("", "1 to 255"),
            ("k" * 256, "1 to 255"),
            ("has space", "printable ascii"),
            ("clé-unique", "printable ascii"),
        ],
    )
    def test_malformed_keys_are_a_400_naming_the_header(self, api, user, key, fragment):
        response = create(api, key=key)
        assert_error(response, 400, field="Idempotency-Key", fragment=fragment)
        assert not VideoJob.objects.filter(owner=user).exists()

    def test_a_refusal_is_an_answer_too(self, api, user, monkeypatch):
        bad = {**CREATE, "duration_seconds": -1}
        first = create(api, bad)
        assert first.status_code == 400
        calls = []
        monkeypatch.setattr(services, "video_job_submit", lambda **kw: calls.append(kw))
        again = create(api, bad)
        assert (again.status_code, again.json()) == (400, first.json())
        assert again[REPLAYED_HEADER] == "true"

    def test_a_server_error_releases_the_key_so_the_retry_runs(self, user, monkeypatch):
        client = client_for(user)
        client.raise_request_exception = False
        real_submit = services.video_job_submit

        def broken(**kwargs):
            raise RuntimeError("database went away")

        monkeypatch.setattr(services, "video_job_submit", broken)
        assert create(client).status_code == 500
        assert not IdempotencyKey.objects.exists()
        monkeypatch.setattr(services, "video_job_submit", real_submit)
        retry = create(client)
        assert retry.status_code == 201 and not retry.has_header(REPLAYED_HEADER)
        assert VideoJob.objects.filter(owner=user).count() == 1

    def test_a_multipart_retry_with_a_new_boundary_is_the_same_request(self, api, user):
        def post(boundary: str) -> object:
            from django.core.files.uploadedfile import SimpleUploadedFile

            data = {
                "job": json.dumps({**CREATE, "continuity": "reference"}),
                "reference_image": SimpleUploadedFile("ref.png", image_bytes(), content_type="image/png"),
            }
            return api.generic(
                "POST",
                "/api/video-jobs/",
                encode_multipart(boundary, data),
                content_type=f"multipart/form-data; boundary={boundary}",
                headers={"Idempotency-Key": KEY},
            )

        first = post("boundary-one")
        again = post("boundary-two")
        assert first.status_code == 201, first.json()
        assert again.status_code == 201 and again[REPLAYED_HEADER] == "true"
        assert VideoJob.objects.filter(owner=user).count() == 1
        assert VideoJob.objects.get(owner=user).reference_images.count() == 1

    def test_an_oversized_upload_is_refused_before_it_is_read(self, api, user, settings, monkeypatch):
        settings.UPLOAD_MAX_BYTES, settings.MAX_JOB_PROMPT_CHARS = 1000, 100

        def reads_the_body(request):
            raise AssertionError("the body was read for the fingerprint before the size check")

        monkeypatch.setattr("idempotency.decorators.request_fingerprint", reads_the_body)
        boundary = "b"
        body = encode_multipart(boundary, {"job": json.dumps(CREATE), "reference_image": "x" * 200_000})
        response = api.generic(
            "POST",
            "/api/video-jobs/",
            body,
            content_type=f"multipart/form-data; boundary={boundary}",
            headers={"Idempotency-Key": KEY},
        )
        assert_error(response, 413, fragment="image: the upload is larger than")
        assert not IdempotencyKey.objects.exists()


class TestRenderActions:
    def test_a_retried_render_renders_once(self, api, make_job):
        job = make_job()
        first = api.post(job_url(job, "render/"), headers={"Idempotency-Key": KEY})
        again = api.post(job_url(job, "render/"), headers={"Idempotency-Key": KEY})
        assert first.status_code == 202, first.json()
        assert again.status_code == 202 and again[REPLAYED_HEADER] == "true"
        assert again.json() == first.json()
        job.refresh_from_db()
        assert job.render_generation == 1

    def test_without_a_key_a_second_render_is_refused_as_before(self, api, make_job):
        job = make_job()
        api.post(job_url(job, "render/"))
        assert_error(api.post(job_url(job, "render/")), 409)

    def test_retry_and_rerender_replay(self, api, make_job):
        job = make_job()
        for suffix, body in (
            ("retry/", None),
            ("rerender/", {"segments": [0]}),
            ("segments/0/rerender/", None),
        ):
            key = f"key-{suffix}"
            first = api.post(job_url(job, suffix), body, format="json", headers={"Idempotency-Key": key})
            again = api.post(job_url(job, suffix), body, format="json", headers={"Idempotency-Key": key})
            # A draft can be neither retried nor re-rendered: the refusal is the answer, replayed.
            assert first.status_code == 409, (suffix, first.json())
            assert (again.status_code, again.json()) == (first.status_code, first.json())
            assert again[REPLAYED_HEADER] == "true"

    def test_another_users_job_is_a_404_and_replays_as_one(self, other_api, make_job):
        job = make_job()
        first = other_api.post(job_url(job, "render/"), headers={"Idempotency-Key": KEY})
        again = other_api.post(job_url(job, "render/"), headers={"Idempotency-Key": KEY})
        assert_error(first, 404)
        assert again.status_code == 404
        job.refresh_from_db()
        assert job.status == JobStatus.DRAFT


def test_the_schema_documents_the_header(api):
    schema = api.get("/api/schema/?format=json").json()
    operations = {
        ("/api/video-jobs/", "post"),
        ("/api/video-jobs/{job_id}/render/", "post"),
        ("/api/video-jobs/{job_id}/retry/", "post"),
        ("/api/video-jobs/{job_id}/rerender/", "post"),
        ("/api/video-jobs/{job_id}/segments/{index}/rerender/", "post"),
    }
    for path, method in operations:
        parameters = schema["paths"][path][method]["parameters"]
        header = next(p for p in parameters if p["name"] == "Idempotency-Key")
        assert header["in"] == "header" and "422" in header["description"]
        assert "422" in schema["paths"][path][method]["responses"]


def _claim_as_if_running(api, user) -> str:
    """The key of CREATE held by a request that has not answered yet: the row its claim inserts, as it
    is before the answer is stored (made by a real request, so its fingerprint is the real one)."""
    create(api)
    VideoJob.objects.filter(owner=user).delete()
    IdempotencyKey.objects.filter(owner=user, key=KEY).update(
        state=KeyState.IN_PROGRESS, locked_at=timezone.now(), response_status=None, response_body=""
    )
    return IdempotencyKey.objects.get(owner=user, key=KEY).fingerprint
