"""Malformed bodies on the provider webhooks (/webhooks/sora, /webhooks/fal): a JSON 4xx saying why, and
nothing recorded. Signed bodies matter most: the signature proves who sent them, not that their text
fits the database (a NUL fails PostgreSQL's text type, a lone surrogate fails UTF-8)."""

from __future__ import annotations

import time

import pytest

from jobs.models import WebhookEvent
from rendering import webhook_views, webhooks

pytestmark = pytest.mark.django_db

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def sora_secret(settings):
    settings.SORA_WEBHOOK_SECRET = SECRET


def post_signed(client, body: bytes, msg_id: str = "msg_1"):
    stamp = int(time.time())
    return client.post(
        "/webhooks/sora",
        body,
        content_type="application/json",
        HTTP_WEBHOOK_ID=msg_id,
        HTTP_WEBHOOK_TIMESTAMP=str(stamp),
        HTTP_WEBHOOK_SIGNATURE=webhooks.sign(SECRET, msg_id, stamp, body),
    )


def assert_refused(response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert fragment in response.json()["detail"]
    assert WebhookEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"[]", "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b'{"type": 5}', "needs a string id and type"),
        (
            b'{"id": "e1", "type": "video.completed", "data": {"id": "v\\u0000"}}',
            "the video id contains a NUL",
        ),
        (b'{"id": "e1", "type": "video.completed", "data": {"id": "\\ud800"}}', "lone surrogate"),
        (b'{"id": "e1", "type": "video.\\u0000completed", "data": {"id": "v1"}}', "the event type contains"),
        (b'{"id": "e1", "type": "video.completed\\udfff", "data": {"id": "v1"}}', "the event type contains"),
    ],
    ids=["list", "null", "type-not-text", "nul-video-id", "surrogate-video-id", "nul-type", "surrogate-type"],
)
def test_a_signed_malformed_sora_event_is_a_400(client, sora_secret, body, fragment):
    assert_refused(post_signed(client, body), 400, fragment)


def test_a_signed_event_with_a_nul_in_its_delivery_id_is_a_400(client, sora_secret):
    body = b'{"id": "e1", "type": "video.completed", "data": {"id": "v1"}}'
    assert_refused(post_signed(client, body, msg_id="msg\x00x"), 400, "the event id contains a NUL")


def test_a_body_that_is_not_utf8_is_a_400(client, sora_secret):
    headers = {"HTTP_WEBHOOK_ID": "m", "HTTP_WEBHOOK_TIMESTAMP": str(int(time.time()))}
    response = client.post(
        "/webhooks/sora",
        b"\xff\xfe{",
        content_type="application/json",
        HTTP_WEBHOOK_SIGNATURE="v1,x",
        **headers,
    )
    assert_refused(response, 400, "not UTF-8")


@pytest.mark.parametrize("path", ["/webhooks/sora", "/webhooks/fal"])
def test_a_body_over_the_upload_limit_is_a_json_413(client, sora_secret, settings, path):
    # Django would answer its bare HTML "Bad Request (400)" page.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = client.post(path, b"x" * 1000, content_type="application/json")
    assert_refused(response, 413, "larger than the 100 bytes")


@pytest.fixture
def fal_verified(monkeypatch):
    # The ED25519 check against fal's key set is tested in tests/spend/test_fal_webhooks.py; here the
    # delivery counts as verified so the body's own handling is what is tested.
    monkeypatch.setattr(webhook_views, "verify_fal_webhook", lambda headers, body: "req-from-header")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'"OK"', "must be a JSON object"),
        (b'{"status": "OK", "request_id": 7}', "request_id must be a non-empty string"),
        (b'{"status": 1}', "needs a string status"),
        (b'{"status": "OK", "request_id": "r\\u0000"}', "the request id contains a NUL"),
        (b'{"status": "OK", "request_id": "\\ud800"}', "lone surrogate"),
        (b'{"status": "\\udfffOK"}', "the status contains"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b"not json", "not JSON"),
    ],
    ids=[
        "string",
        "id-not-text",
        "status-not-text",
        "nul-id",
        "surrogate-id",
        "surrogate-status",
        "deep",
        "text",
    ],
)
def test_a_verified_malformed_fal_delivery_is_a_400(client, fal_verified, body, fragment):
    response = client.post("/webhooks/fal", body, content_type="application/json")
    assert_refused(response, 400, fragment)


def test_a_verified_well_formed_fal_delivery_is_recorded(client, fal_verified):
    # The cases above are refused for their bodies, not because the stand-in refuses everything.
    response = client.post(
        "/webhooks/fal", b'{"status": "OK", "request_id": "r1"}', content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["outcome"] == "unknown_video"
    assert WebhookEvent.objects.filter(event_id="fal:r1").count() == 1


@pytest.mark.postgres
@pytest.mark.parametrize("video_id", ["v\\u0000", "\\ud800"], ids=["nul", "surrogate"])
def test_on_postgresql_a_signed_nul_or_surrogate_is_a_400_not_a_500(client, sora_secret, video_id):
    # Where the NUL was found: PostgreSQL's text type refuses it in the segment lookup (a DataError).
    body = b'{"id": "e1", "type": "video.completed", "data": {"id": "%s"}}' % video_id.encode()
    assert_refused(post_signed(client, body), 400, "the video id contains")
