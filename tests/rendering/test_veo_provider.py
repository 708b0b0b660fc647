"""The veo provider against the Vertex AI stand-in: the contract (submit, poll, download), the requests it
sends, and how it reads Google's answers and errors."""

from __future__ import annotations

import base64
import io
import re
import socket
import time
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from PIL import Image

from rendering.fake_api.vertex import FakeVertexServer, VertexConfig
from rendering.media import probe
from rendering.providers.base import PERMANENT_FAILURE_CODES, ProviderError, RenderRequest, TaskState
from rendering.providers.registry import get_provider
from rendering.providers.veo import (
    DEFAULT_RATE_LIMIT_WAIT,
    DEFAULT_TRANSIENT_WAIT,
    MODELS,
    VeoProvider,
)

FAST = "veo-3.1-fast-generate-001"
LITE = "veo-3.1-lite-generate-001"
OPERATION = re.compile(
    r"^projects/veo-test-project/locations/us-central1/publishers/google/models/[^/]+/operations/[0-9a-f-]{36}$"
)


@pytest.fixture
def vertex(settings, monkeypatch):
    with FakeVertexServer(VertexConfig(latency=0.3)) as server:
        for name, value in server.client_env().items():
            monkeypatch.setenv(name, value)
        settings.VERTEX_PROJECT = server.project
        settings.VERTEX_LOCATION = server.location
        settings.VERTEX_BASE_URL = server.url
        settings.GOOGLE_APPLICATION_CREDENTIALS = str(server.key_file)
        settings.VERTEX_OUTPUT_GCS_URI = ""
        settings.VERTEX_GCS_BASE_URL = server.url
        settings.VERTEX_CONNECT_TIMEOUT = 5.0
        settings.VERTEX_READ_TIMEOUT = 30.0
        yield server


def request(**overrides) -> RenderRequest:
    fields = {
        "prompt": "A lighthouse at dusk, waves below",
        "seconds": 4.0,
        "size": "1280x720",
        "fps": 24,
        "model": FAST,
    }
    fields.update(overrides)
    return RenderRequest(**fields)


def image_file(path: Path, colour=(10, 120, 200), size=(128, 72), fmt="PNG") -> Path:
    Image.new("RGB", size, colour).save(path, format=fmt)
    return path


def wait_until_done(provider: VeoProvider, task_id: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        task = provider.poll(task_id)
        if task.done:
            return task
        assert time.monotonic() < deadline, "the operation never finished"
        time.sleep(0.05)


def sent(vertex: FakeVertexServer, index: int = -1) -> dict:
    return vertex.stats.create_bodies[index]


# --- catalogue -------------------------------------------------------------------------------------


def test_registered_with_a_catalogue_built_from_models():
    provider = get_provider("veo")
    assert isinstance(provider, VeoProvider)
    catalogue = provider.catalogue()
    assert catalogue.models == MODELS
    assert {spec.id for spec in catalogue.models} == {"veo-3.1-generate-001", FAST, LITE}
    assert catalogue.default_model == FAST
    assert catalogue.requires == ("VERTEX_PROJECT", "GOOGLE_APPLICATION_CREDENTIALS")
    fast = catalogue.model(FAST)
    assert fast.lengths_for("1280x720") == (4.0, 6.0, 8.0) and fast.lengths_for("1920x1080") == (8.0,)
    assert set(fast.all_sizes()) == {"1280x720", "720x1280", "1920x1080", "1080x1920"}
    assert catalogue.model(LITE).price("1920x1080") == Decimal("0.05")
    assert catalogue.model(LITE).price("1920x1080", audio=True) == Decimal("0.08")
    assert catalogue.model("veo-3.1-generate-001").cost(8, "1280x720") == Decimal("1.6000")
    by_id = {spec.id: spec for spec in MODELS}
    assert by_id[LITE].reference_images == 0 and by_id[FAST].reference_images == 3
    for spec in MODELS:
        assert spec.provider == "veo" and spec.source and spec.as_of
        assert spec.seconds_by_resolution == {"1080p": (8.0,)}
        assert spec.first_frame and spec.last_frame and spec.extension and spec.audio
        assert spec.resolution_of("1080x1920") == "1080p"
        assert spec.price_per_second["720p+audio"] > spec.price_per_second["720p"]


def test_capabilities_need_no_configuration(settings):
    settings.VERTEX_PROJECT = ""
    settings.GOOGLE_APPLICATION_CREDENTIALS = ""
    catalogue = VeoProvider().catalogue()
    assert catalogue.default_model == FAST
    assert catalogue.missing_settings() == ["VERTEX_PROJECT", "GOOGLE_APPLICATION_CREDENTIALS"]


# --- create, poll, download ------------------------------------------------------------------------


def test_create_poll_download_inline(vertex, tmp_path):
    provider = VeoProvider()

    task = provider.submit(request(seed=42))

    # The task id is the operation name, and the request is what Veo's reference describes.
    assert OPERATION.match(task.id) and f"/models/{FAST}/" in task.id
    assert task.status == TaskState.QUEUED
    assert sent(vertex) == {
        "instances": [{"prompt": "A lighthouse at dusk, waves below"}],
        "parameters": {
            "durationSeconds": 4,
            "aspectRatio": "16:9",
            "resolution": "720p",
            "generateAudio": False,
            "sampleCount": 1,
            "seed": 42,
        },
    }
    assert provider.poll(task.id).status == TaskState.IN_PROGRESS
    assert wait_until_done(provider, task.id).status == TaskState.COMPLETED

    dest = tmp_path / "out" / "clip.mp4"
    assert provider.download(task.id, dest) == dest
    info = probe(dest)
    assert (info.size, info.fps, info.video_codec) == ("1280x720", 24, "h264")
    assert info.duration == pytest.approx(4.0, abs=0.1)
    assert info.audio_codec is None  # generateAudio was false
    assert sorted(p.name for p in dest.parent.iterdir()) == ["clip.mp4"]  # no partial file left behind
    assert vertex.stats.api_versions == {"v1": vertex.stats.creates + vertex.stats.fetches}


def test_portrait_with_audio(vertex, tmp_path):
    provider = VeoProvider()
    task = provider.submit(request(size="720x1280", seconds=6, audio=True))
    assert sent(vertex)["parameters"]["aspectRatio"] == "9:16"
    assert sent(vertex)["parameters"]["generateAudio"] is True
    wait_until_done(provider, task.id)
    info = probe(provider.download(task.id, tmp_path / "p.mp4"))
    assert info.size == "720x1280" and info.duration == pytest.approx(6.0, abs=0.1)
    assert info.audio_codec == "aac"


def test_download_from_cloud_storage(vertex, settings, tmp_path):
    settings.VERTEX_OUTPUT_GCS_URI = "gs://veo-renders/segments"
    provider = VeoProvider()

    task = provider.submit(request(size="1920x1080", seconds=8, model=LITE))
    assert sent(vertex)["parameters"]["storageUri"] == "gs://veo-renders/segments"
    assert sent(vertex)["parameters"]["resolution"] == "1080p"
    wait_until_done(provider, task.id)

    info = probe(provider.download(task.id, tmp_path / "gcs.mp4"))
    assert info.size == "1920x1080" and info.duration == pytest.approx(8.0, abs=0.1)
    assert vertex.stats.downloads == 1


def test_a_gcs_object_that_is_gone_is_permanent_and_says_expired(vertex, settings, tmp_path):
    settings.VERTEX_OUTPUT_GCS_URI = "gs://veo-renders/segments"
    provider = VeoProvider()
    task = provider.submit(request())
    wait_until_done(provider, task.id)
    vertex.delete_objects()  # the bucket's lifecycle rule deleted it
    with pytest.raises(ProviderError) as caught:
        provider.download(task.id, tmp_path / "gone.mp4")
    assert caught.value.permanent and caught.value.code == "expired"
    assert "No such object" in caught.value.message
    assert not (tmp_path / "gone.mp4").exists()


def test_download_before_done_is_transient(vertex, tmp_path):
    provider = VeoProvider()
    task = provider.submit(request())
    with pytest.raises(ProviderError) as caught:
        provider.download(task.id, tmp_path / "early.mp4")
    assert not caught.value.permanent and caught.value.code == "not_ready"
    assert not list(tmp_path.glob("*early*"))


# --- frames and references -------------------------------------------------------------------------


def test_first_and_last_frame_go_inline_as_base64(vertex, tmp_path):
    first = image_file(tmp_path / "first.png", colour=(255, 0, 0))
    last = image_file(tmp_path / "last.jpg", colour=(0, 0, 255), fmt="JPEG")
    provider = VeoProvider()

    task = provider.submit(request(reference_image=first, last_frame=last))

    instance = sent(vertex)["instances"][0]
    assert base64.b64decode(instance["image"]["bytesBase64Encoded"]) == first.read_bytes()
    assert instance["image"]["mimeType"] == "image/png"
    assert base64.b64decode(instance["lastFrame"]["bytesBase64Encoded"]) == last.read_bytes()
    assert instance["lastFrame"]["mimeType"] == "image/jpeg"
    assert wait_until_done(provider, task.id).status == TaskState.COMPLETED


def test_reference_images_go_as_assets(vertex, tmp_path):
    paths = tuple(image_file(tmp_path / f"ref{i}.png", colour=(i * 80, 50, 50)) for i in range(3))
    provider = VeoProvider()

    provider.submit(request(seconds=8, reference_images=paths))

    references = sent(vertex)["instances"][0]["referenceImages"]
    assert [r["referenceType"] for r in references] == ["asset"] * 3
    assert [base64.b64decode(r["image"]["bytesBase64Encoded"]) for r in references] == [
        p.read_bytes() for p in paths
    ]


def test_an_image_veo_does_not_take_is_sent_as_png(vertex, tmp_path):
    webp = image_file(tmp_path / "frame.webp", fmt="WEBP")
    VeoProvider().submit(request(reference_image=webp))
    image = sent(vertex)["instances"][0]["image"]
    assert image["mimeType"] == "image/png"
    with Image.open(io.BytesIO(base64.b64decode(image["bytesBase64Encoded"]))) as decoded:
        assert decoded.format == "PNG" and decoded.size == (128, 72)


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_delay", "header", "expected"),
    [(7, None, 7.0), (None, 12, 12.0), (None, None, DEFAULT_RATE_LIMIT_WAIT)],
    ids=["retry-info", "retry-after-header", "google-says-nothing"],
)
def test_429_is_transient_with_googles_wait(vertex, retry_delay, header, expected):
    vertex.config.rate_limit_next_creates = 1
    vertex.config.retry_delay = retry_delay
    vertex.config.retry_after_header = header
    provider = VeoProvider()

    with pytest.raises(ProviderError) as caught:
        provider.submit(request())

    error = caught.value
    assert not error.permanent
    assert (error.status_code, error.code, error.retry_after) == (429, "resource_exhausted", expected)
    assert "Quota exceeded" in error.message
    assert OPERATION.match(provider.submit(request()).id)  # the quota came back


@pytest.mark.parametrize("status", [500, 503, 504])
def test_5xx_is_transient_with_a_retry_after(vertex, status):
    provider = VeoProvider()
    task = provider.submit(request())
    vertex.config.fail_next_calls = 1
    vertex.config.fail_status = status

    with pytest.raises(ProviderError) as caught:
        provider.poll(task.id)

    assert not caught.value.permanent
    assert caught.value.status_code == status
    assert caught.value.retry_after == DEFAULT_TRANSIENT_WAIT
    assert wait_until_done(provider, task.id).status == TaskState.COMPLETED


def test_connection_refused_is_transient(vertex, settings):
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        closed_port = probe_socket.getsockname()[1]
    settings.VERTEX_BASE_URL = f"https://127.0.0.1:{closed_port}"
    with pytest.raises(ProviderError) as caught:
        VeoProvider().submit(request())
    assert not caught.value.permanent
    assert caught.value.code == "connection_error" and caught.value.retry_after == DEFAULT_TRANSIENT_WAIT


def test_a_silent_server_is_cut_off_by_the_read_timeout(vertex, settings):
    # A listener that never accepts: the connection opens (the kernel's backlog) and no answer comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        settings.VERTEX_BASE_URL = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings.VERTEX_READ_TIMEOUT = 0.3
        started = time.monotonic()
        with pytest.raises(ProviderError) as caught:
            VeoProvider().submit(request())
    assert time.monotonic() - started < 5
    assert not caught.value.permanent and caught.value.code == "timeout"


def test_safety_filter_is_a_permanent_failure_with_googles_reason(vertex, tmp_path):
    provider = VeoProvider()
    task = provider.submit(request(prompt="a FORBIDDEN scene"))

    done = wait_until_done(provider, task.id)

    assert done.status == TaskState.FAILED
    assert done.error_code == "content_policy_violation" and done.error_code in PERMANENT_FAILURE_CODES
    assert "usage guidelines" in done.error_message and "Support codes" in done.error_message
    with pytest.raises(ProviderError) as caught:
        provider.download(task.id, tmp_path / "blocked.mp4")
    assert caught.value.permanent and caught.value.code == "content_policy_violation"


@pytest.mark.parametrize(
    ("overrides", "google_says"),
    [
        ({"size": "1920x1080", "seconds": 4}, "1080p videos must be 8 seconds long"),
        ({"model": LITE, "seconds": 8, "reference_images": ("REF",)}, "referenceImages is not supported"),
        ({"seconds": 8, "reference_images": ("REF",) * 4}, "At most 3 asset reference images"),
        ({"seconds": 6, "reference_images": ("REF",)}, "only supports 8 second videos"),
        ({"seconds": 10}, "Supported values: 4, 6, 8"),
        ({"seed": 2**33}, "seed must be an integer"),
    ],
    ids=["1080p-at-4s", "lite-references", "four-references", "references-at-6s", "10s", "seed"],
)
def test_bad_input_is_permanent_with_googles_message(vertex, tmp_path, overrides, google_says):
    if "reference_images" in overrides:
        ref = image_file(tmp_path / "ref.png")
        overrides["reference_images"] = tuple(ref for _ in overrides["reference_images"])
    with pytest.raises(ProviderError) as caught:
        VeoProvider().submit(request(**overrides))
    error = caught.value
    assert error.permanent and error.status_code == 400 and error.code == "invalid_request"
    assert error.code in PERMANENT_FAILURE_CODES
    assert google_says in error.message and "INVALID_ARGUMENT" in error.message
    assert vertex.stats.creates == 0


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"size": "1024x1024"}, "not 1024x1024"),
        ({"seconds": 4.5}, "whole seconds"),
        ({"model": "veo-3.0-generate-001"}, "unknown Veo model"),
    ],
)
def test_what_veo_cannot_express_is_refused_before_any_call(vertex, overrides, says):
    with pytest.raises(ProviderError) as caught:
        VeoProvider().submit(request(**overrides))
    assert caught.value.permanent and caught.value.code == "invalid_request" and says in caught.value.message
    assert vertex.stats.creates == 0 and sum(vertex.stats.refusals.values()) == 0


@pytest.mark.parametrize(
    ("rpc", "code", "permanent"),
    [
        (13, "internal", False),
        (14, "unavailable", False),
        (3, "invalid_request", True),
        (9, "invalid_request", True),
    ],
)
def test_an_operation_that_ends_in_error(vertex, rpc, code, permanent):
    vertex.config.fail_next_operations = 1
    vertex.config.operation_error = (rpc, "the model gave up")
    provider = VeoProvider()
    done = wait_until_done(provider, provider.submit(request()).id)
    assert done.status == TaskState.FAILED and done.error_code == code
    assert (done.error_code in PERMANENT_FAILURE_CODES) is permanent
    assert "the model gave up" in done.error_message


def test_an_unknown_operation_is_permanent(vertex):
    model = f"projects/{vertex.project}/locations/{vertex.location}/publishers/google/models/{FAST}"
    name = f"{model}/operations/nope"
    with pytest.raises(ProviderError) as caught:
        VeoProvider().poll(name)
    assert caught.value.permanent and caught.value.status_code == 404 and "not found" in caught.value.message
    with pytest.raises(ProviderError) as caught:
        VeoProvider().poll("video_123")
    assert caught.value.permanent and "not a Veo operation name" in caught.value.message


# --- configuration and credentials -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("VERTEX_PROJECT", "", "VERTEX_PROJECT"),
        ("GOOGLE_APPLICATION_CREDENTIALS", "", "GOOGLE_APPLICATION_CREDENTIALS"),
        ("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json", "GOOGLE_APPLICATION_CREDENTIALS"),
    ],
)
def test_missing_configuration_is_permanent_and_names_the_variable(vertex, settings, setting, value, named):
    setattr(settings, setting, value)
    provider = VeoProvider()
    for call in (
        lambda: provider.submit(request()),
        lambda: provider.poll("x"),
        lambda: provider.download("x", Path("y")),
    ):
        with pytest.raises(ProviderError) as caught:
            call()
        assert caught.value.permanent and caught.value.code == "not_configured"
        assert named in caught.value.message
    assert vertex.stats.tokens_issued == 0 and vertex.stats.creates == 0


def test_a_file_that_is_not_a_key_is_not_configured(vertex, settings, tmp_path):
    bogus = tmp_path / "key.json"
    bogus.write_text('{"type": "service_account"}')
    settings.GOOGLE_APPLICATION_CREDENTIALS = str(bogus)
    with pytest.raises(ProviderError) as caught:
        VeoProvider().submit(request())
    assert caught.value.permanent and caught.value.code == "not_configured"
    assert "GOOGLE_APPLICATION_CREDENTIALS" in caught.value.message


def test_a_key_google_does_not_know_is_a_permanent_auth_failure(vertex, settings, tmp_path):
    info = vertex.service_account_info()
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info["private_key"] = stranger.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    forged = tmp_path / "forged.json"
    forged.write_text(__import__("json").dumps(info))
    settings.GOOGLE_APPLICATION_CREDENTIALS = str(forged)
    with pytest.raises(ProviderError) as caught:
        VeoProvider().submit(request())
    assert caught.value.permanent and caught.value.code == "auth_failed"
    assert "invalid_grant" in caught.value.message
    assert vertex.stats.creates == 0


def test_token_is_fetched_once_shared_and_refreshed_when_refused(vertex):
    # One token serves every provider instance (workers make a provider per task).
    task = VeoProvider().submit(request())
    VeoProvider().poll(task.id)
    assert vertex.stats.tokens_issued == 1

    # When Google stops honouring it, the next call refreshes once and goes through.
    vertex.revoke_tokens()
    assert VeoProvider().poll(task.id).status in {TaskState.IN_PROGRESS, TaskState.COMPLETED}
    assert vertex.stats.tokens_issued == 2
    assert vertex.stats.refusals[401] == 1


def test_an_expiring_token_is_refreshed_before_the_call(vertex):
    # google-auth refreshes a token that has less than its threshold (minutes) left, before sending.
    vertex.config.token_lifetime = 60
    provider = VeoProvider()
    task = provider.submit(request())
    provider.poll(task.id)
    assert vertex.stats.tokens_issued == 2 and vertex.stats.refusals[401] == 0
