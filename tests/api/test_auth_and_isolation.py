"""Who may do what: another user's job is a 404 on every route (and stays untouched), anonymous requests
are refused everywhere, tokens from `drf_create_token` work and are scoped, sessions need CSRF."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from jobs import services
from jobs.models import ReferenceImage, VideoJob

from .conftest import assert_error, image_bytes, job_url, upload

pytestmark = pytest.mark.django_db

# (method, path under the job, body, format). {image} is the id of the job's reference image.
JOB_ROUTES: list[tuple[str, str, Any, str | None]] = [
    ("get", "", None, None),
    ("delete", "", None, None),
    ("get", "segments/", None, None),
    ("get", "segments/0/", None, None),
    ("patch", "segments/0/", {"prompt": "Hijacked"}, "json"),
    ("post", "segments/0/rerender/", None, None),
    ("get", "reference-images/", None, None),
    ("post", "reference-images/", "image", "multipart"),
    ("get", "reference-images/{image}/", None, None),
    ("delete", "reference-images/{image}/", None, None),
    ("post", "render/", None, None),
    ("post", "retry/", None, None),
    ("post", "cancel/", None, None),
    ("post", "rerender/", {"segments": [0]}, "json"),
    ("get", "estimate/", None, None),
]
GLOBAL_ROUTES: list[tuple[str, str, Any]] = [
    ("get", "/api/video-jobs/", None),
    ("post", "/api/video-jobs/", {"prompt": "x", "duration_seconds": 5}),
    ("post", "/api/estimate/", {"prompt": "x", "duration_seconds": 5}),
    ("get", "/api/strategies/", None),
    ("get", "/api/providers/", None),
    ("get", "/api/budget/", None),
]


def call(client: APIClient, method: str, path: str, body: Any, fmt: str | None) -> Any:
    if body == "image":
        body = {"image": upload(image_bytes())}
    kwargs: dict[str, Any] = {}
    if body is not None:
        kwargs = {"data": body, "format": fmt}
    return getattr(client, method)(path, **kwargs)


@pytest.fixture
def bobs_job(other_user, make_job) -> tuple[VideoJob, ReferenceImage]:
    job = make_job(owner=other_user)
    image = services.reference_image_add(job=job, upload=upload(image_bytes()))
    return job, image


@pytest.mark.parametrize(
    ("method", "suffix", "body", "fmt"), JOB_ROUTES, ids=[f"{m} {s}" for m, s, *_ in JOB_ROUTES]
)
def test_another_users_job_is_not_found_on_every_route(api, bobs_job, method, suffix, body, fmt):
    job, image = bobs_job
    segment_prompts = list(job.segments.values_list("prompt", flat=True))
    response = call(api, method, job_url(job, suffix.format(image=image.id)), body, fmt)
    assert_error(response, 404)
    # Nothing about Bob's job changed.
    job.refresh_from_db()
    assert job.status == "draft" and job.render_generation == 0
    assert list(job.segments.values_list("prompt", flat=True)) == segment_prompts
    assert list(ReferenceImage.objects.filter(job=job).values_list("id", flat=True)) == [image.id]


@pytest.mark.parametrize(
    ("method", "suffix", "body", "fmt"), JOB_ROUTES, ids=[f"{m} {s}" for m, s, *_ in JOB_ROUTES]
)
def test_the_owner_reaches_every_route(
    other_api, bobs_job, method, suffix, body, fmt, django_capture_on_commit_callbacks
):
    # The same requests as above from Bob himself: none is a 404, so the 404s above are about ownership.
    job, image = bobs_job
    with django_capture_on_commit_callbacks(execute=False):
        response = call(other_api, method, job_url(job, suffix.format(image=image.id)), body, fmt)
    assert response.status_code in {200, 201, 202, 204, 409}, (response.status_code, response.content[:300])


def test_the_list_never_shows_another_users_jobs(api, bobs_job):
    assert api.get("/api/video-jobs/").json()["count"] == 0
    assert api.get("/api/video-jobs/", {"status": "draft"}).json()["results"] == []


ANON_ROUTES = [(m, "job:" + s, b, f) for m, s, b, f in JOB_ROUTES] + [
    (m, p, b, "json") for m, p, b in GLOBAL_ROUTES
]


@pytest.mark.parametrize(
    ("method", "path", "body", "fmt"), ANON_ROUTES, ids=[f"{m} {p}" for m, p, *_ in ANON_ROUTES]
)
def test_anonymous_requests_are_refused_everywhere(anon, bobs_job, method, path, body, fmt):
    job, image = bobs_job
    if path.startswith("job:"):
        path = job_url(job, path[4:].format(image=image.id))
    response = call(anon, method, path, body, fmt)
    body = assert_error(response, response.status_code)
    assert response.status_code in {401, 403}
    assert body["code"] == "not_authenticated"
    assert VideoJob.objects.count() == 1


class TestToken:
    def test_drf_create_token_gives_a_working_scoped_key(self, user, bobs_job, make_job):
        out = io.StringIO()
        call_command("drf_create_token", "alice", stdout=out)
        key = out.getvalue().split()[2]
        mine = make_job()
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        listed = client.get("/api/video-jobs/").json()
        assert [row["id"] for row in listed["results"]] == [str(mine.id)]
        assert client.get(job_url(mine)).status_code == 200
        assert_error(client.get(job_url(bobs_job[0])), 404)
        # Tokens need no CSRF token: they are not sent by browsers on their own.
        created = client.post(
            "/api/video-jobs/", {"prompt": "A", "duration_seconds": 5, "render": False}, format="json"
        )
        assert created.status_code == 201 and created.json()["owner"] == "alice"

    def test_a_wrong_token_is_refused(self):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Token not-a-real-key")
        response = client.get("/api/video-jobs/")
        body = assert_error(response, response.status_code, fragment="invalid token")
        assert response.status_code in {401, 403} and body["code"] == "authentication_failed"


class TestSession:
    def test_session_writes_need_the_csrf_token(self, user):
        client = APIClient(enforce_csrf_checks=True)
        client.force_login(user)
        payload = {"prompt": "A", "duration_seconds": 5, "render": False}
        assert client.get("/api/video-jobs/").status_code == 200
        refused = client.post("/api/video-jobs/", payload, format="json")
        assert_error(refused, 403, fragment="csrf")
        assert VideoJob.objects.count() == 0
        secret = "a" * 32
        client.cookies["csrftoken"] = secret
        accepted = client.post("/api/video-jobs/", payload, format="json", HTTP_X_CSRFTOKEN=secret)
        assert accepted.status_code == 201
