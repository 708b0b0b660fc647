"""Limits that protect a shared deployment: reference images per job (count and bytes), login throttling
(django-axes), and WebSocket origins checked with their port."""

from __future__ import annotations

import io

import pytest
from django.test import Client
from PIL import Image

from jobs import services
from jobs.errors import InvalidInput
from realtime.origin import origin_allowed
from tests.factories import VideoJobFactory


def png(seed: int) -> io.BytesIO:
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 40 + seed).convert("RGB").save(buffer, format="PNG")
    buffer.seek(0)
    return buffer


@pytest.mark.django_db
def test_reference_images_per_job_are_capped_by_count_and_bytes(user, settings):
    job = VideoJobFactory(owner=user)
    settings.UPLOAD_MAX_IMAGES_PER_JOB = 2
    for seed in range(2):
        services.reference_image_add(job=job, upload=png(seed))
    with pytest.raises(InvalidInput, match="already has 2 reference images; the limit is 2"):
        services.reference_image_add(job=job, upload=png(3))
    settings.UPLOAD_MAX_IMAGES_PER_JOB = 10
    settings.UPLOAD_MAX_BYTES_PER_JOB = sum(job.reference_images.values_list("size_bytes", flat=True)) + 10
    with pytest.raises(InvalidInput, match="UPLOAD_MAX_BYTES_PER_JOB"):
        services.reference_image_add(job=job, upload=png(4))
    assert job.reference_images.count() == 2


@pytest.mark.django_db
def test_repeated_failed_logins_lock_the_account_from_that_address(user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = Client()
    for _ in range(2):
        response = client.post("/login/", {"username": "alice", "password": "wrong"})
        assert response.status_code == 200  # the form again, with its error
    assert client.post("/login/", {"username": "alice", "password": "wrong"}).status_code == 429  # the 3rd
    locked = client.post("/login/", {"username": "alice", "password": "pw-alice-123"})
    assert locked.status_code == 429  # even the right password, until the cool-off passes
    other = Client(REMOTE_ADDR="10.9.9.9")
    assert other.post("/login/", {"username": "alice", "password": "pw-alice-123"}).status_code == 302


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("http://localhost", "localhost", True),
        ("https://localhost", "localhost:443", True),
        ("http://127.0.0.1:9999", "127.0.0.1:8000", False),  # same host, another port: another site
        ("http://evil.example", "127.0.0.1:8000", False),
        ("http://evil.example", "evil.example", False),  # not one of ALLOWED_HOSTS
        ("", "127.0.0.1", False),
        ("null", "127.0.0.1", False),
    ],
)
def test_socket_origins_are_checked_with_their_port(origin, host, allowed):
    assert origin_allowed(origin, host) is allowed


def test_a_configured_front_end_origin_is_allowed(settings):
    settings.FRONTEND_ORIGIN = ["https://app.example.com"]
    assert origin_allowed("https://app.example.com", "api.example.com")
    assert not origin_allowed("https://app.example.com:8443", "api.example.com")
