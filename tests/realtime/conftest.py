"""Helpers for the socket tests: a WebsocketCommunicator on the full ASGI application (origin check,
session auth, routing), logged in with a real session cookie."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from PIL import Image

from jobs.models import VideoJob
from tests.factories import UserFactory, VideoJobFactory

ORIGIN = (b"origin", b"http://127.0.0.1")
HOST = (b"host", b"127.0.0.1")


def session_cookie(user: Any) -> bytes:
    """A real session for `user`, as the browser would send it after logging in."""
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


def socket_for(
    job_id: uuid.UUID | str, *, user: Any = None, origin: bytes = ORIGIN[1]
) -> WebsocketCommunicator:
    from sora_controller.asgi import application

    headers = [(b"origin", origin), HOST]
    if user is not None:
        headers.append((b"cookie", session_cookie(user)))
    return WebsocketCommunicator(application, f"/ws/video-jobs/{job_id}/", headers=headers)


async def close_code(communicator: WebsocketCommunicator) -> int:
    """Connect and return the code the server closes with (it accepts first, so the code reaches us)."""
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    message = await communicator.receive_output(timeout=5)
    assert message["type"] == "websocket.close", message
    await communicator.disconnect()
    return message["code"]


def make_job(owner: Any, **overrides: Any) -> VideoJob:
    """A draft job of two 2 s segments (quick to render for real); JobSpec fields override."""
    return VideoJobFactory(owner=owner, short=True, **overrides)


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 120, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
def no_dispatch(monkeypatch):
    """Start renders without handing them to any worker, so the test drives the services itself.
    (With transaction=True an on_commit callback runs at once and cannot be captured.)"""
    monkeypatch.setattr("jobs.work_queue._start_run", lambda job_id, generation: None)


@pytest.fixture
def staff_user(db):
    return UserFactory(username="carol", is_staff=True)  # password "pw-carol-123"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # force_login does not hash, but creating users does; these tests are not about password strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
