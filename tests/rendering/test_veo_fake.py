"""The Vertex AI stand-in speaks Google's protocol: proven with the official google-genai SDK (Vertex
mode, service-account credentials through google-auth, HTTPS verified against the stand-in's CA).

If the SDK can generate, poll and read a video from the stand-in and sees its refusals as Google's errors,
then rendering.providers.veo, tested against the same stand-in, is tested against Google's protocol.
"""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google import genai
from google.auth import exceptions as auth_exceptions
from google.auth.transport.requests import AuthorizedSession
from google.auth.transport.requests import Request as AuthRequest
from google.genai import errors as genai_errors
from google.genai import types
from google.oauth2 import service_account
from PIL import Image

from rendering.fake_api.vertex import CLOUD_PLATFORM_SCOPE, FakeVertexServer, VertexConfig
from rendering.media import probe

FAST = "veo-3.1-fast-generate-001"


@pytest.fixture
def vertex(monkeypatch):
    with FakeVertexServer(VertexConfig(latency=0.3)) as server:
        # Trust the stand-in's CA, and only it: httpx (the SDK) reads SSL_CERT_FILE, requests
        # (google-auth's token refresh) REQUESTS_CA_BUNDLE.
        for name, value in server.client_env().items():
            monkeypatch.setenv(name, value)
        yield server


def credentials(server: FakeVertexServer, scopes=(CLOUD_PLATFORM_SCOPE,)) -> service_account.Credentials:
    return service_account.Credentials.from_service_account_file(
        str(server.key_file), scopes=list(scopes) if scopes else None
    )


def sdk(server: FakeVertexServer, creds=None) -> genai.Client:
    return genai.Client(
        vertexai=True,
        project=server.project,
        location=server.location,
        credentials=creds or credentials(server),
        http_options=types.HttpOptions(base_url=server.url),
    )


def wait(client: genai.Client, operation, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not operation.done:
        assert time.monotonic() < deadline, "the operation never finished"
        time.sleep(0.05)
        operation = client.operations.get(operation)
    return operation


def image_bytes(size=(64, 36), colour=(200, 40, 40), fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def test_sdk_generates_polls_and_reads_a_real_clip(vertex, tmp_path):
    # Given the SDK in Vertex mode, pointed at the stand-in
    client = sdk(vertex)

    # When it asks for a 4 s landscape clip with audio and polls the operation until done
    operation = client.models.generate_videos(
        model=FAST,
        source=types.GenerateVideosSource(prompt="a red kite over a grey sea"),
        config=types.GenerateVideosConfig(
            duration_seconds=4, aspect_ratio="16:9", resolution="720p", generate_audio=True, seed=7
        ),
    )
    assert operation.name.startswith(
        f"projects/{vertex.project}/locations/{vertex.location}/publishers/google/models/{FAST}/operations/"
    )
    first_poll = client.operations.get(operation)
    assert not first_poll.done
    operation = wait(client, first_poll)

    # Then the bytes it reads are a real 1280x720, 24 fps, 4 s MP4 with a soundtrack
    assert operation.error is None
    assert operation.result.rai_media_filtered_count == 0
    video = operation.result.generated_videos[0].video
    assert video.mime_type == "video/mp4"
    path = tmp_path / "sdk.mp4"
    path.write_bytes(video.video_bytes)
    info = probe(path)
    assert (info.size, info.video_codec, info.fps) == ("1280x720", "h264", 24)
    assert info.duration == pytest.approx(4.0, abs=0.1)
    assert info.audio_codec == "aac"
    # And the SDK spoke v1beta1 with a token from the stand-in's token endpoint, once
    assert vertex.stats.api_versions["v1beta1"] >= 3 and not vertex.stats.api_versions["v1"]
    assert vertex.stats.tokens_issued == 1
    assert vertex.stats.creates_by_model == {FAST: 1}
    assert vertex.stats.create_bodies[0]["parameters"] == {
        "durationSeconds": 4,
        "aspectRatio": "16:9",
        "resolution": "720p",
        "generateAudio": True,
        "seed": 7,
    }


def test_sdk_writes_to_cloud_storage_and_google_auth_downloads_it(vertex, tmp_path):
    # Given a portrait 1080p clip without audio, written to a bucket instead of returned inline
    client = sdk(vertex)
    operation = client.models.generate_videos(
        model="veo-3.1-lite-generate-001",
        source=types.GenerateVideosSource(prompt="a lighthouse at dusk"),
        config=types.GenerateVideosConfig(
            duration_seconds=8,
            aspect_ratio="9:16",
            resolution="1080p",
            generate_audio=False,
            output_gcs_uri="gs://veo-renders/jobs/42",
        ),
    )
    operation = wait(client, operation)
    video = operation.result.generated_videos[0].video
    assert video.video_bytes is None
    assert video.uri.startswith("gs://veo-renders/jobs/42/") and video.uri.endswith("/sample_0.mp4")

    # When the object is fetched through the GCS JSON API with a cloud-platform token
    bucket, _, name = video.uri.removeprefix("gs://").partition("/")
    session = AuthorizedSession(credentials(vertex))
    response = session.get(
        f"{vertex.url}/storage/v1/b/{bucket}/o/{requests.utils.quote(name, safe='')}",
        params={"alt": "media"},
        timeout=30,
    )

    # Then it is a real portrait 1080p, 8 s clip with no audio track
    assert response.status_code == 200, response.text
    path = tmp_path / "gcs.mp4"
    path.write_bytes(response.content)
    info = probe(path)
    assert info.size == "1080x1920" and info.duration == pytest.approx(8.0, abs=0.1)
    assert info.audio_codec is None
    assert vertex.stats.downloads == 1


def test_first_and_last_frame_arrive_as_the_bytes_the_sdk_sent(vertex):
    client = sdk(vertex)
    first, last = image_bytes(colour=(255, 0, 0)), image_bytes(colour=(0, 0, 255), fmt="JPEG")
    operation = client.models.generate_videos(
        model="veo-3.1-lite-generate-001",
        source=types.GenerateVideosSource(
            prompt="red turns blue", image=types.Image(image_bytes=first, mime_type="image/png")
        ),
        config=types.GenerateVideosConfig(
            duration_seconds=6,
            last_frame=types.Image(image_bytes=last, mime_type="image/jpeg"),
            generate_audio=False,
        ),
    )
    wait(client, operation)
    instance = vertex.stats.create_bodies[0]["instances"][0]
    assert base64.b64decode(instance["image"]["bytesBase64Encoded"]) == first
    assert instance["image"]["mimeType"] == "image/png"
    assert base64.b64decode(instance["lastFrame"]["bytesBase64Encoded"]) == last
    assert instance["lastFrame"]["mimeType"] == "image/jpeg"


def asset(data: bytes) -> types.VideoGenerationReferenceImage:
    return types.VideoGenerationReferenceImage(
        image=types.Image(image_bytes=data, mime_type="image/png"), reference_type="ASSET"
    )


@pytest.mark.parametrize(
    ("model", "config", "source", "status", "message"),
    [
        (FAST, {"duration_seconds": 4, "resolution": "1080p"}, {}, 400, "1080p videos must be 8 seconds"),
        (FAST, {"duration_seconds": 5}, {}, 400, "Supported values: 4, 6, 8"),
        (FAST, {"aspect_ratio": "1:1"}, {}, 400, "Supported values: 16:9, 9:16"),
        (FAST, {"resolution": "4k"}, {}, 400, "Supported values: 720p, 1080p"),
        ("veo-3.0-generate-001", {}, {}, 404, "was not found"),
        ("veo-3.1-generate-preview", {}, {}, 404, "was not found"),
        (
            "veo-3.1-lite-generate-001",
            {"duration_seconds": 8, "reference_images": [asset(image_bytes())]},
            {},
            400,
            "referenceImages is not supported by veo-3.1-lite-generate-001",
        ),
        (
            FAST,
            {"duration_seconds": 8, "reference_images": [asset(image_bytes())] * 4},
            {},
            400,
            "At most 3 asset reference images",
        ),
        (
            FAST,
            {"duration_seconds": 6, "reference_images": [asset(image_bytes())]},
            {},
            400,
            "only supports 8 second videos",
        ),
        (
            FAST,
            {"duration_seconds": 8},
            {"image": types.Image(image_bytes=b"not an image", mime_type="image/png")},
            400,
            "could not be decoded",
        ),
        (
            FAST,
            {"duration_seconds": 8},
            {"image": types.Image(image_bytes=image_bytes(), mime_type="image/gif")},
            400,
            "Unsupported mimeType",
        ),
        (
            FAST,
            {"http_options": types.HttpOptions(extra_body={"parameters": {"fps": 30}})},
            {},
            400,
            "Unknown name \"fps\" at 'parameters'",
        ),
    ],
    ids=[
        "1080p-at-4s",
        "5s",
        "square",
        "4k",
        "retired-veo-3.0",
        "preview-model",
        "lite-reference-images",
        "four-reference-images",
        "reference-images-at-6s",
        "broken-image",
        "gif",
        "unknown-parameter",
    ],
)
def test_sdk_sees_googles_refusals(vertex, model, config, source, status, message):
    client = sdk(vertex)
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.generate_videos(
            model=model,
            source=types.GenerateVideosSource(prompt="a red kite", **source),
            config=types.GenerateVideosConfig(generate_audio=False, **config),
        )
    error = caught.value
    assert error.code == status
    assert error.status == ("INVALID_ARGUMENT" if status == 400 else "NOT_FOUND")
    assert message in error.message
    assert vertex.stats.creates == 0


def test_safety_filter_ends_done_with_reasons_and_no_video(vertex):
    client = sdk(vertex)
    operation = client.models.generate_videos(
        model=FAST,
        source=types.GenerateVideosSource(prompt="something FORBIDDEN"),
        config=types.GenerateVideosConfig(duration_seconds=4, generate_audio=False),
    )
    operation = wait(client, operation)
    assert operation.error is None
    assert operation.result.rai_media_filtered_count == 1
    assert "usage guidelines" in operation.result.rai_media_filtered_reasons[0]
    assert not operation.result.generated_videos


def test_rate_limit_and_server_errors_reach_the_sdk_as_googles_errors(vertex):
    client = sdk(vertex)
    vertex.config.rate_limit_next_creates = 1
    vertex.config.retry_delay = 3
    with pytest.raises(genai_errors.ClientError) as limited:
        client.models.generate_videos(
            model=FAST, source=types.GenerateVideosSource(prompt="x"), config={"generate_audio": False}
        )
    assert (limited.value.code, limited.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert limited.value.details["error"]["details"][0]["retryDelay"] == "3s"

    vertex.config.fail_next_calls = 1
    with pytest.raises(genai_errors.ServerError) as unavailable:
        client.models.generate_videos(
            model=FAST, source=types.GenerateVideosSource(prompt="x"), config={"generate_audio": False}
        )
    assert (unavailable.value.code, unavailable.value.status) == (503, "UNAVAILABLE")

    # The knobs were one-shot: the next request renders.
    operation = client.models.generate_videos(
        model=FAST, source=types.GenerateVideosSource(prompt="x"), config={"generate_audio": False}
    )
    assert wait(client, operation).result.generated_videos


def test_token_endpoint_refuses_a_grant_without_scope(vertex):
    unscoped = credentials(vertex, scopes=())
    with pytest.raises(auth_exceptions.RefreshError, match="invalid_scope"):
        unscoped.refresh(AuthRequest())
    assert vertex.stats.token_refusals == {"invalid_scope": 1}
    assert vertex.stats.tokens_issued == 0

    # The SDK, handed the same unscoped credentials, never gets as far as Vertex.
    client = sdk(vertex, credentials(vertex, scopes=()))
    with pytest.raises(auth_exceptions.RefreshError, match="invalid_scope"):
        client.models.generate_videos(model=FAST, source=types.GenerateVideosSource(prompt="x"))
    assert vertex.stats.creates == 0


def test_a_token_for_another_scope_is_refused_by_vertex(vertex):
    storage_only = credentials(vertex, scopes=("https://www.googleapis.com/auth/devstorage.read_only",))
    client = sdk(vertex, storage_only)  # kept in a name: a collected Client closes its HTTP pool
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.generate_videos(
            model=FAST, source=types.GenerateVideosSource(prompt="x"), config={"generate_audio": False}
        )
    assert (caught.value.code, caught.value.status) == (403, "PERMISSION_DENIED")
    assert "insufficient authentication scopes" in caught.value.message


def test_token_endpoint_checks_the_signature(vertex, tmp_path):
    # A key file naming the right account but holding another private key.
    info = vertex.service_account_info()
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info["private_key"] = stranger.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    forged = service_account.Credentials.from_service_account_info(info, scopes=[CLOUD_PLATFORM_SCOPE])
    with pytest.raises(auth_exceptions.RefreshError, match="invalid_grant"):
        forged.refresh(AuthRequest())
    assert vertex.stats.token_refusals == {"invalid_grant": 1}


def test_vertex_refuses_calls_without_a_token_it_issued(vertex):
    url = (
        f"{vertex.url}/v1/projects/{vertex.project}/locations/{vertex.location}"
        f"/publishers/google/models/{FAST}:predictLongRunning"
    )
    body = {"instances": [{"prompt": "x"}], "parameters": {"durationSeconds": 4}}
    for headers in ({}, {"Authorization": "Bearer ya29.made-up"}):
        response = requests.post(url, json=body, headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json()["error"]["status"] == "UNAUTHENTICATED"
    assert vertex.stats.creates == 0


def test_the_stand_in_serves_only_verified_https(vertex, monkeypatch):
    # Without the stand-in's CA, certificate verification fails: nothing here switches it off.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("SSL_CERT_FILE")
    with pytest.raises(requests.exceptions.SSLError):
        requests.post(f"{vertex.url}/token", data={"grant_type": "x"}, timeout=10)
    assert Path(vertex.ca_file).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
