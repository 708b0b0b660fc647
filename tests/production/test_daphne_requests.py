"""Daphne hands form bodies to Django unparsed (sora_controller.daphne_requests): Twisted no longer
parses uploads in the reactor thread, and Django still gets every byte of them."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from PIL import Image

from sora_controller.daphne_requests import skip_twisted_form_parsing
from tests.support.daphne import Daphne

ROOT = Path(__file__).resolve().parents[2]
BOUNDARY = "sora-test-boundary"


def multipart(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


class StubChannel:
    """What twisted.web.http.Request and daphne's WebRequest read from their channel."""

    transport = None

    def __init__(self) -> None:
        self.factory = SimpleNamespace(server=SimpleNamespace(protocol_connected=lambda request: None))

    def getPeer(self):
        return None

    def getHost(self):
        return None


def test_a_daphne_request_leaves_a_form_body_to_django(monkeypatch):
    from daphne.http_protocol import WebRequest

    skip_twisted_form_parsing()
    skip_twisted_form_parsing()  # twice changes nothing
    processed: list[bytes] = []
    monkeypatch.setattr(WebRequest, "process", lambda self: processed.append(self.content.read()))
    request = WebRequest(StubChannel())
    body = multipart([("job", None, b'{"prompt": "x"}'), ("reference_image", "a.png", b"\x89PNG...")])
    content_type = f"multipart/form-data; boundary={BOUNDARY}".encode()
    request.requestHeaders.setRawHeaders(b"Content-Type", [content_type])
    request.content = io.BytesIO(body)
    request.content.seek(len(body))  # as the channel leaves it: written to the end
    request.requestReceived(b"POST", b"/api/video-jobs/?x=1", b"HTTP/1.1")
    assert request.args == {b"x": [b"1"]}  # the query string only: the body was not parsed
    assert processed == [body]  # handed on whole, from its start


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("daphne-bodies")
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}}
    env.update(
        DATA_DIR=str(root / "data"),
        MEDIA_ROOT=str(root / "media"),
        DJANGO_SETTINGS_MODULE="sora_controller.settings",
        TASK_RUNNER="inprocess",
    )
    setup = (
        "from django.contrib.auth import get_user_model\n"
        "from rest_framework.authtoken.models import Token\n"
        "user = get_user_model().objects.create_user('carol', password='carol-pw-7d2e')\n"
        "print(Token.objects.create(user=user).key)\n"
    )
    for args in (["migrate", "--noinput", "-v", "0"], ["shell", "-c", setup]):
        command = [sys.executable, "manage.py", *args]
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
    token = done.stdout.split()[-1]
    daphne = Daphne(env, root / "daphne.log", probe="/login/", timeout=60).start()
    try:
        yield SimpleNamespace(url=daphne.url, token=token)
    finally:
        daphne.stop()


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 120, 200)).save(out, "PNG")
    return out.getvalue()


def test_a_multipart_create_with_an_image_reaches_django_whole(server):
    job = {"prompt": "A kite rises.", "duration_seconds": 10, "render": False, "continuity": "reference"}
    response = requests.post(
        f"{server.url}/api/video-jobs/",
        headers={"Authorization": f"Token {server.token}"},
        files=[
            ("job", (None, json.dumps(job), "application/json")),
            ("reference_image", ("kite.png", png(), "image/png")),
        ],
        timeout=30,
    )
    assert response.status_code == 201, response.text
    images = response.json()["reference_images"]
    assert len(images) == 1 and images[0]["width"] == 64 and images[0]["height"] == 48


def test_a_url_encoded_form_reaches_django_whole(server):
    session = requests.Session()
    page = session.get(f"{server.url}/login/", timeout=30)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = session.post(
        f"{server.url}/login/",
        data={"csrfmiddlewaretoken": csrf, "username": "carol", "password": "carol-pw-7d2e"},
        headers={"Referer": f"{server.url}/login/"},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302, response.text[:500]
    assert session.get(f"{server.url}/", timeout=30).status_code == 200
