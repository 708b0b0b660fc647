"""Fixtures for the API tests: authenticated clients for two users and staff, jobs made by the services,
and images made by Pillow."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache
from PIL import Image
from rest_framework.test import APIClient

from jobs.models import JobStatus, VideoJob
from tests.factories import UserFactory, VideoJobFactory

EXCEPTION_HANDLER = "jobs.api.exceptions.api_exception_handler"


@pytest.fixture(autouse=True)
def _api_settings(settings):
    # The project appends the handler in settings.py; set here too so these tests never depend on
    # the order in which that line and other engineers' edits land.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "EXCEPTION_HANDLER": EXCEPTION_HANDLER}
    # PBKDF2 costs ~0.3 s per user on these machines; these tests are not about password strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Throttle counters live in the (LocMem) cache: start every test from zero.
    cache.clear()
    yield
    cache.clear()


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


@pytest.fixture
def api(user) -> APIClient:
    return client_for(user)


@pytest.fixture
def other_api(other_user) -> APIClient:
    return client_for(other_user)


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def staff_user(db):
    return UserFactory(username="carol", is_staff=True)  # password "pw-carol-123"


MakeJob = Callable[..., VideoJob]


@pytest.fixture
def make_job(user) -> MakeJob:
    """make_job(owner=user, **JobSpec fields) -> a VideoJobFactory draft, owned by `user` unless told."""
    return functools.partial(VideoJobFactory, owner=user)


def image_bytes(size: tuple[int, int] = (64, 48), fmt: str = "PNG", colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def upload(data: bytes, name: str = "ref.png", content_type: str = "image/png") -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type=content_type)


def job_url(job: VideoJob | str, suffix: str = "") -> str:
    job_id = job.id if isinstance(job, VideoJob) else job
    return f"/api/video-jobs/{job_id}/{suffix}"


def assert_error(response: Any, status: int, field: str | None = None, fragment: str = "") -> dict:
    """The response is an error of our shape; `field` (if given) carries a message containing `fragment`."""
    assert response.status_code == status, (response.status_code, getattr(response, "content", b"")[:500])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"]
    assert isinstance(body.get("code"), str) and body["code"]
    if status == 400:
        assert isinstance(body.get("errors"), dict) and body["errors"], body
    else:
        assert "errors" not in body, body
    if field is not None:
        messages = body["errors"][field] if status == 400 else [body["detail"]]
        joined = " ".join(messages).lower()
        assert fragment.lower() in joined, (field, messages)
    elif fragment:
        assert fragment.lower() in body["detail"].lower(), body
    return body


def settle(job: VideoJob) -> VideoJob:
    """`job` once the embedded default's in-process worker has nothing left to do."""
    from rendering.transport import inprocess_runner

    assert inprocess_runner().wait_idle(timeout=120), "the in-process worker did not go idle"
    job.refresh_from_db()
    return job


def render_through_api(user: Any, **fields: Any) -> VideoJob:
    """A job planned by VideoJobFactory and rendered for real through POST .../render/."""
    job = VideoJobFactory(owner=user, **fields)
    assert client_for(user).post(f"/api/video-jobs/{job.id}/render/").status_code == 202
    job = settle(job)
    assert job.status == JobStatus.COMPLETED, job.error
    return job
