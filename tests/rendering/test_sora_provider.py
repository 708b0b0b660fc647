"""The Sora client: the exact requests it sends, and how it reads answers and errors."""

from __future__ import annotations

import email.parser
import email.policy
import json

import pytest
import requests
from PIL import Image

from rendering.providers.base import ProviderError, RenderRequest
from rendering.providers.registry import get_provider
from rendering.providers.sora import SoraProvider, parse_retry_after


class Recorder(requests.adapters.BaseAdapter):
    """A transport that records each prepared request and answers from a script, with no network."""

    def __init__(self, answers: list[tuple[int, dict | bytes, dict]]) -> None:
        super().__init__()
        self.answers = list(answers)
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs):
        self.sent.append(request)
        status, body, headers = self.answers.pop(0)
        response = requests.Response()
        response.status_code = status
        response.request = request
        response.url = request.url
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        response._content = raw
        response.headers.update({"Content-Type": "application/json", **headers})
        response.raw = __import__("io").BytesIO(raw)
        return response

    def close(self) -> None:
        pass


def provider_with(answers, settings) -> tuple[SoraProvider, Recorder]:
    settings.SORA_BASE_URL = "https://gateway.example/v1/"
    settings.SORA_API_KEY = "sk-test-123"
    session = requests.Session()
    recorder = Recorder(answers)
    session.mount("https://", recorder)
    return SoraProvider(session=session), recorder


VIDEO = {
    "id": "video_1",
    "object": "video",
    "status": "queued",
    "progress": 0,
    "model": "sora-2",
    "seconds": "8",
    "size": "1280x720",
    "created_at": 1,
    "brand_new_field": {"ignored": True},
}


def request(**overrides) -> RenderRequest:
    fields = {
        "prompt": "A lighthouse at dusk",
        "seconds": 8.0,
        "size": "1280x720",
        "fps": 30,
        "model": "sora-2",
        "idempotency_key": "segment-1-run-1-attempt-1",
    }
    fields.update(overrides)
    return RenderRequest(**fields)


def test_create_without_reference_is_json(settings):
    provider, recorder = provider_with([(200, VIDEO, {})], settings)
    task = provider.submit(request())
    sent = recorder.sent[0]
    assert (sent.method, sent.url) == ("POST", "https://gateway.example/v1/videos")
    assert sent.headers["Authorization"] == "Bearer sk-test-123"
    assert sent.headers["Idempotency-Key"] == "segment-1-run-1-attempt-1"
    assert sent.headers["Content-Type"] == "application/json"
    assert json.loads(sent.body) == {
        "prompt": "A lighthouse at dusk",
        "model": "sora-2",
        "seconds": "8",
        "size": "1280x720",
    }
    assert (task.id, task.status, task.progress) == ("video_1", "queued", 0)


def test_create_with_reference_is_multipart_with_the_image(settings, tmp_path):
    image_path = tmp_path / "ref.png"
    Image.new("RGB", (1280, 720), (1, 2, 3)).save(image_path)
    provider, recorder = provider_with([(200, VIDEO, {})], settings)
    provider.submit(request(reference_image=image_path, seconds=12.0))
    sent = recorder.sent[0]
    ctype = sent.headers["Content-Type"]
    assert ctype.startswith("multipart/form-data; boundary=")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {ctype}\r\n\r\n".encode() + sent.body
    )
    parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
    assert set(parts) == {"prompt", "model", "seconds", "size", "input_reference"}
    assert parts["seconds"].get_content() == "12"
    reference = parts["input_reference"]
    assert reference.get_content_type() == "image/png"
    assert reference.get_filename() == "ref.png"
    assert reference.get_payload(decode=True) == image_path.read_bytes()


def test_poll_reads_progress_and_poll_after(settings):
    body = dict(VIDEO, status="in_progress", progress=42)
    provider, recorder = provider_with([(200, body, {"openai-poll-after-ms": "750"})], settings)
    task = provider.poll("video_1")
    assert recorder.sent[0].method == "GET" and recorder.sent[0].url.endswith("/v1/videos/video_1")
    assert (task.status, task.progress, task.poll_after) == ("in_progress", 42, 0.75)


def test_failed_video_carries_the_providers_error(settings):
    body = dict(
        VIDEO, status="failed", error={"code": "moderation_blocked", "message": "Blocked by moderation."}
    )
    provider, _ = provider_with([(200, body, {})], settings)
    task = provider.poll("video_1")
    assert (task.status, task.error_code, task.error_message) == (
        "failed",
        "moderation_blocked",
        "Blocked by moderation.",
    )


def test_download_streams_to_the_file_and_names_the_variant(settings, tmp_path):
    provider, recorder = provider_with([(200, b"\x00\x00\x00\x18ftypmp42" + b"x" * 100, {})], settings)
    out = provider.download("video_1", tmp_path / "dl" / "clip.mp4")
    assert recorder.sent[0].url == "https://gateway.example/v1/videos/video_1/content?variant=video"
    assert out.read_bytes().startswith(b"\x00\x00\x00\x18ftyp")
    assert [p.name for p in (tmp_path / "dl").iterdir()] == ["clip.mp4"]


@pytest.mark.parametrize("status", [404, 410])
def test_download_after_expiry_is_a_permanent_expired_error(settings, tmp_path, status):
    provider, _ = provider_with(
        [(status, {"error": {"message": "gone", "code": "video_expired"}}, {})], settings
    )
    with pytest.raises(ProviderError) as caught:
        provider.download("video_1", tmp_path / "dl" / "clip.mp4")
    assert caught.value.permanent and caught.value.code == "expired" and "gone" in caught.value.message
    assert not (tmp_path / "dl").exists() or list((tmp_path / "dl").iterdir()) == []


def test_remix_and_delete(settings):
    provider, recorder = provider_with(
        [(200, dict(VIDEO, id="video_2"), {}), (200, {"deleted": True}, {})], settings
    )
    assert provider.remix("video_1", "make it rain").id == "video_2"
    provider.delete("video_2")
    assert [(r.method, r.url.rsplit("/v1", 1)[1]) for r in recorder.sent] == [
        ("POST", "/videos/video_1/remix"),
        ("DELETE", "/videos/video_2"),
    ]
    assert json.loads(recorder.sent[0].body) == {"prompt": "make it rain"}


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        (400, True),
        (401, True),
        (403, True),
        (404, True),
        (408, False),
        (409, False),
        (429, False),
        (500, False),
        (503, False),
    ],
)
def test_error_classes(settings, status, permanent):
    body = {"error": {"message": f"server says {status}", "code": "some_code", "type": "x"}}
    provider, _ = provider_with([(status, body, {"retry-after-ms": "1500"})], settings)
    with pytest.raises(ProviderError) as caught:
        provider.submit(request())
    error = caught.value
    assert error.permanent is permanent and error.status_code == status
    assert f"server says {status}" in error.message and error.code == "some_code"
    assert error.retry_after == 1.5


def test_connection_errors_are_transient(settings):
    settings.SORA_BASE_URL = "http://127.0.0.1:9/v1"  # the discard port: nothing listens
    settings.SORA_API_KEY = "k"
    with pytest.raises(ProviderError) as caught:
        SoraProvider().poll("video_1")
    assert not caught.value.permanent and caught.value.code == "connection_error"


def test_missing_key_is_permanent_and_named(settings):
    settings.SORA_API_KEY = ""
    with pytest.raises(ProviderError, match="SORA_API_KEY is not set") as caught:
        get_provider("sora").poll("video_1")
    assert caught.value.permanent


def test_retry_after_forms():
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "3"}) == 3
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0
    assert parse_retry_after({}) is None


def test_catalogue_from_settings(settings):
    settings.SORA_ALLOWED_SECONDS = [4.0, 8.0, 12.0, 16.0, 20.0]
    catalogue = get_provider("sora").catalogue()
    assert catalogue.provider == "openai-videos" and catalogue.aliases == ("sora",)
    sora2, pro = catalogue.model("sora-2"), catalogue.model("sora-2-pro")
    assert sora2.lengths_for("1280x720") == (4.0, 8.0, 12.0, 16.0, 20.0)
    assert str(sora2.cost(12, "1280x720")) == "1.2000"
    assert str(pro.cost(12, "1280x720")) == "3.6000"
    assert str(pro.cost(12, "1792x1024")) == "6.0000"
    assert pro.check_size("1792x1024") and sora2.reference_must_match_size
    with pytest.raises(Exception, match="not offered by sora-2"):
        sora2.check_size("1792x1024")


def test_estimate_shows_billed_seconds(user, db):
    from jobs import services

    job = services.video_job_create(
        owner=user, prompt="A b. C d. E f.", duration_seconds=30, provider="sora", size="1280x720"
    )
    # 30 s in about 10 s segments is planned in lengths the protocol renders (4/8/12): 12 + 12 + 8, the
    # last shown for 6 s: 32 billed seconds at $0.10 instead of three 12 s clips trimmed to 10.
    assert job.billed_seconds_estimate == 32 and str(job.cost_estimate_usd) == "3.2000"
    assert list(job.segments.values_list("render_seconds", flat=True)) == [12, 12, 8]
    assert [s.duration_seconds for s in job.segments.order_by("index")] == [12, 12, 6]
