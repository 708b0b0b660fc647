"""No 500 from input: JSON nested past the recursion limit (on the API and on a validly signed webhook), a
NUL in a media path, a WebSocket to a path we do not serve."""

from __future__ import annotations

import json
import time

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from rendering import webhooks

from .conftest import assert_error

DEEP = "[" * 5000 + "]" * 5000
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize("path", ["/api/video-jobs/", "/api/estimate/"])
def test_deeply_nested_json_is_a_400(api, path):
    response = api.post(path, DEEP, content_type="application/json")
    assert_error(response, 400, fragment="nested too deeply")


def test_deeply_nested_json_in_a_multipart_create_is_a_400(api):
    response = api.post("/api/video-jobs/", {"job": DEEP}, format="multipart")
    assert_error(response, 400, "job", "not valid JSON")


@pytest.mark.django_db
def test_a_validly_signed_deep_webhook_is_a_400(client, settings):
    settings.SORA_WEBHOOK_SECRET = SECRET
    body = DEEP.encode()
    stamp = int(time.time())
    headers = {
        "HTTP_WEBHOOK_ID": "msg_deep",
        "HTTP_WEBHOOK_TIMESTAMP": str(stamp),
        "HTTP_WEBHOOK_SIGNATURE": webhooks.sign(SECRET, "msg_deep", stamp, body),
    }
    response = client.post("/webhooks/sora", body, content_type="application/json", **headers)
    assert response.status_code == 400 and "nested too deeply" in json.loads(response.content)["detail"]


def test_a_nul_in_a_media_path_is_a_404(api, make_job):
    job = make_job()
    response = api.get(f"/media/jobs/{job.id}/a%00b.mp4")
    assert response.status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_socket_to_an_unknown_path_is_closed_with_4404():
    from sora_controller.asgi import application  # imported late: it loads the whole ASGI stack

    # A browser on the page's own origin (host and port agree with the Host header it connected to).
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]

    async def connect() -> tuple[bool, object]:
        communicator = WebsocketCommunicator(application, "/ws/other/", headers=headers)
        connected, _ = await communicator.connect(timeout=5)
        closed = await communicator.receive_output(timeout=5)
        await communicator.disconnect()
        return connected, closed

    connected, closed = async_to_sync(connect)()
    assert connected and closed == {"type": "websocket.close", "code": 4404, "reason": "no such socket"}
