"""The fal stand-in speaks fal's queue protocol: proven with fal's official SDK, `fal-client`.

fal-client always builds https://{FAL_QUEUE_RUN_HOST}/ URLs and reads that variable once, when its
modules load; so the `sdk` fixture sets the variables (host, key, the fake's CA in SSL_CERT_FILE) and
reloads fal_client.auth / fal_client.client, then reloads them again after the test with the
environment restored. Nothing here reaches the internet: the host is 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import io
import json
import ssl
import time
from types import ModuleType

import fal_client.auth
import fal_client.client
import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from PIL import Image

from rendering.fake_api.fal import ENDPOINTS, FakeFalServer, FalFakeConfig, WebhookRecorder, nominal_size
from rendering.media import probe

KLING_T2V = "fal-ai/kling-video/v2.1/master/text-to-video"
KLING_I2V = "fal-ai/kling-video/v2.1/master/image-to-video"
KLING25_I2V = "fal-ai/kling-video/v2.5-turbo/pro/image-to-video"


def config(**overrides) -> FalFakeConfig:
    return FalFakeConfig(**{"queue_latency": 0.15, "latency": 0.4, **overrides})


@pytest.fixture(scope="module")
def fal_server():
    with FakeFalServer(config()) as server:
        yield server


@pytest.fixture
def fal(fal_server):
    fal_server.reset(config())
    return fal_server


def _reload_sdk() -> None:
    importlib.reload(fal_client.auth)
    importlib.reload(fal_client.client)


@pytest.fixture
def sdk(fal, monkeypatch, tmp_path) -> ModuleType:
    """fal_client.client pointed at the fake through its own host variables, over TLS."""
    monkeypatch.setenv("FAL_QUEUE_RUN_HOST", fal.host)
    monkeypatch.setenv("FAL_RUN_HOST", fal.host)  # keeps any stray fal.run call local as well
    monkeypatch.setenv("FAL_KEY", fal.config.key)
    monkeypatch.delenv("FAL_KEY_ID", raising=False)
    monkeypatch.delenv("FAL_KEY_SECRET", raising=False)
    monkeypatch.setenv("FAL_HOME_DIR", str(tmp_path / "fal-home"))  # never a developer's saved login
    monkeypatch.setenv("SSL_CERT_FILE", str(fal.ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fal.ca_file))
    _reload_sdk()
    yield fal_client.client
    monkeypatch.undo()
    _reload_sdk()


@pytest.fixture
def clients(sdk):
    """Makes fal_client SyncClients and closes their HTTP connections afterwards (the SDK has no close)."""
    made = []

    def make(**kwargs):
        client = sdk.SyncClient(**kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        http = client.__dict__.get("_client")  # a cached_property, present once used
        if http is not None:
            http.close()


def data_uri(size: tuple[int, int], color=(200, 30, 30)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def wait_done(handle, timeout: float = 15.0) -> list:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = handle.status(with_logs=True)
        seen.append(status)
        if isinstance(status, fal_client.client.Completed):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"not completed in {timeout} s: {seen[-1:]}")


def trust(fal) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(fal.ca_file))


def fetch(fal, url: str) -> httpx.Response:
    # The file URL is on the fake's "CDN": public, TLS with the same CA.
    return httpx.get(url, verify=trust(fal), timeout=30)


def test_submit_status_result_with_the_official_sdk(clients, sdk, fal, tmp_path):
    fal.reset(config(latency=0.8))  # long enough to be seen in progress on a busy machine
    client = clients()
    handle = client.submit(KLING_T2V, {"prompt": "a red kite over dunes", "duration": "5"})

    # The URLs carry only owner/app, never the endpoint path.
    base = f"{fal.url}/fal-ai/kling-video/requests/{handle.request_id}"
    assert (handle.response_url, handle.status_url, handle.cancel_url) == (
        base,
        f"{base}/status",
        f"{base}/cancel",
    )
    seen = wait_done(handle)
    kinds = [type(s).__name__ for s in seen]
    assert kinds[0] == "Queued" and "InProgress" in kinds and kinds[-1] == "Completed"
    assert seen[0].position == 0
    in_progress = next(s for s in seen if isinstance(s, sdk.InProgress))
    assert in_progress.logs and "Generating video" in in_progress.logs[-1]["message"]
    assert seen[-1].error is None and "inference_time" in seen[-1].metrics

    result = handle.get()
    video = result["video"]
    assert video["content_type"] == "video/mp4" and video["file_name"].endswith(".mp4")
    response = fetch(fal, video["url"])
    assert response.status_code == 200 and len(response.content) == video["file_size"]
    path = tmp_path / "kling.mp4"
    path.write_bytes(response.content)
    info = probe(path)
    # Kling renders 1080p; 16:9 by default; the requested 5 s.
    assert info.size == "1920x1080" and info.duration == pytest.approx(5.0, abs=0.1)
    assert info.video_codec == "h264"

    stats = fal.stats
    assert stats.submits == 1 and stats.submits_by_endpoint == {KLING_T2V: 1}
    assert stats.submits_by_model == {"fal-ai/kling-video": 1}
    assert stats.status_polls == len(seen) + 1  # handle.get() checks the status once more
    assert stats.result_fetches == 1 and stats.downloads == 1


def test_the_sdk_rebuilds_a_handle_from_the_request_id_alone(clients, sdk, fal):
    client = clients()
    request_id = client.submit("fal-ai/veo3.1/fast", {"prompt": "waves", "duration": "4s"}).request_id
    # What a worker does after a restart: only the endpoint id and the request id are stored.
    status = client.status("fal-ai/veo3.1/fast", request_id)
    assert isinstance(status, sdk.Queued | sdk.InProgress)
    result = client.result("fal-ai/veo3.1/fast", request_id)
    assert result["video"]["url"].startswith(fal.url)


def test_the_queue_accepts_bad_input_and_the_result_is_the_models_422(clients, sdk, fal):
    client = clients()
    handle = client.submit(KLING_T2V, {"prompt": "a kite", "duration": 5, "mode": "pro"})
    seen = wait_done(handle)
    # No FAILED state: a refused request is COMPLETED; the error is its result.
    assert isinstance(seen[-1], sdk.Completed) and seen[-1].error is None
    with pytest.raises(sdk.FalClientHTTPError) as caught:
        handle.get()
    error = caught.value
    assert error.status_code == 422 and error.response.headers["x-fal-retryable"] == "false"
    detail = {tuple(item["loc"]): item for item in error.message}
    assert detail[("body", "duration")]["type"] == "literal_error"
    assert detail[("body", "duration")]["msg"] == "Input should be '5' or '10'"
    assert detail[("body", "mode")]["type"] == "extra_forbidden"
    assert all(item["url"].startswith("https://docs.fal.ai/errors/#") for item in error.message)


@pytest.mark.parametrize(
    ("endpoint", "body", "loc", "type_", "msg"),
    [
        (KLING_T2V, {"duration": "5"}, ["body", "prompt"], "missing", "Field required"),
        (KLING_I2V, {"prompt": "x"}, ["body", "image_url"], "missing", "Field required"),
        # Kling 2.1 Master takes no end frame; 2.5 Turbo Pro does (see the next test).
        (
            KLING_I2V,
            {"prompt": "x", "image_url": data_uri((640, 360)), "tail_image_url": data_uri((640, 360))},
            ["body", "tail_image_url"],
            "extra_forbidden",
            "Extra inputs are not permitted",
        ),
        (KLING_T2V, {"prompt": "x", "aspect_ratio": "4:3"}, ["body", "aspect_ratio"], "literal_error", None),
        (
            KLING_T2V,
            {"prompt": "x" * 2501},
            ["body", "prompt"],
            "string_too_long",
            "String should have at most 2500 characters",
        ),
        (
            KLING_T2V,
            {"prompt": "x", "cfg_scale": 1.5},
            ["body", "cfg_scale"],
            "less_than_equal",
            "Input should be less than or equal to 1",
        ),
        ("fal-ai/veo3.1", {"prompt": "x", "duration": "8"}, ["body", "duration"], "literal_error", None),
        (
            "fal-ai/veo3.1",
            {"prompt": "x", "generate_audio": "no"},
            ["body", "generate_audio"],
            "bool_type",
            None,
        ),
        (
            "fal-ai/veo3.1/first-last-frame-to-video",
            {"prompt": "x", "first_frame_url": data_uri((1280, 720))},
            ["body", "last_frame_url"],
            "missing",
            "Field required",
        ),
        (
            "fal-ai/wan-25-preview/image-to-video",
            {"prompt": "x", "image_url": data_uri((200, 200))},
            ["body", "image_url"],
            "image_too_small",
            None,
        ),
        (
            KLING_I2V,
            {"prompt": "x", "image_url": "data:image/png;base64,bm90IGFuIGltYWdl"},
            ["body", "image_url"],
            "image_load_error",
            None,
        ),
        (
            "fal-ai/minimax/hailuo-02/pro/text-to-video",
            {"prompt": "x", "duration": "6"},
            ["body", "duration"],
            "extra_forbidden",
            None,
        ),
    ],
)
def test_refuses_what_the_schemas_refuse(clients, sdk, fal, endpoint, body, loc, type_, msg):
    client = clients()
    handle = client.submit(endpoint, body)
    with pytest.raises(sdk.FalClientHTTPError) as caught:
        handle.get()
    assert caught.value.status_code == 422
    matching = [item for item in caught.value.message if item["loc"] == loc]
    assert matching and matching[0]["type"] == type_, caught.value.message
    if msg:
        assert matching[0]["msg"] == msg


def test_accepts_the_end_frame_where_the_model_takes_one(clients, sdk, fal, tmp_path):
    client = clients()
    portrait = data_uri((360, 640))
    handle = client.submit(
        KLING25_I2V, {"prompt": "x", "duration": "5", "image_url": portrait, "tail_image_url": portrait}
    )
    result = handle.get()
    path = tmp_path / "tail.mp4"
    path.write_bytes(fetch(fal, result["video"]["url"]).content)
    # Image-to-video takes the first frame's shape: portrait in, 9:16 out.
    assert probe(path).size == "1080x1920"


def test_veo_first_and_last_frame_endpoint_follows_the_frames(clients, sdk, fal, tmp_path):
    client = clients()
    handle = client.submit(
        "fal-ai/veo3.1/fast/first-last-frame-to-video",
        {
            "prompt": "a door opens",
            "duration": "4s",
            "generate_audio": False,
            "first_frame_url": data_uri((1280, 720)),
            "last_frame_url": data_uri((1280, 720), (10, 10, 200)),
        },
    )
    assert handle.status_url.startswith(f"{fal.url}/fal-ai/veo3.1/requests/")
    path = tmp_path / "flf.mp4"
    path.write_bytes(fetch(fal, handle.get()["video"]["url"]).content)
    info = probe(path)
    assert info.size == "1280x720" and info.duration == pytest.approx(4.0, abs=0.1)


def test_content_checker_refusal_is_a_422_content_policy_violation(clients, sdk, fal):
    client = clients()
    handle = client.submit(KLING_T2V, {"prompt": "something FORBIDDEN here"})
    with pytest.raises(sdk.FalClientHTTPError) as caught:
        handle.get()
    (item,) = caught.value.message
    assert caught.value.status_code == 422
    assert item["type"] == "content_policy_violation" and item["loc"] == ["body", "prompt"]
    assert "content checker" in item["msg"]


def test_cancel_then_already_completed(clients, sdk, fal):
    fal.reset(config(queue_latency=5.0))
    client = clients()
    handle = client.submit(KLING_T2V, {"prompt": "x"})
    assert isinstance(handle.status(), sdk.Queued)
    handle.cancel()  # 202 CANCELLATION_REQUESTED
    status = handle.status()
    assert isinstance(status, sdk.Completed)
    assert (status.error, status.error_type) == ("Request cancelled by the client", "client_cancelled")
    with pytest.raises(sdk.FalClientHTTPError) as caught:
        handle.cancel()
    assert caught.value.status_code == 400
    assert caught.value.response.json() == {"status": "ALREADY_COMPLETED"}
    with pytest.raises(sdk.FalClientHTTPError) as result:
        handle.get()
    assert result.value.status_code == 499 and result.value.error_type == "client_cancelled"
    assert fal.stats.cancels == 2


def test_a_wrong_key_is_401(clients, sdk, fal):
    client = clients(key="someone:else")
    with pytest.raises(sdk.FalClientHTTPError) as caught:
        client.submit(KLING_T2V, {"prompt": "x"})
    assert caught.value.status_code == 401 and "No user found" in caught.value.message
    assert fal.stats.submits == 0 and fal.stats.rejected_401 == 1


def test_429_carries_retry_after_and_the_sdk_retries_it(clients, sdk, fal):
    fal.config.rate_limit_next = 2
    fal.config.retry_after = 2.0
    raw = httpx.post(
        f"{fal.url}/{KLING_T2V}",
        json={"prompt": "x"},
        headers={"Authorization": f"Key {fal.config.key}"},
        verify=trust(fal),
        timeout=10,
    )
    assert raw.status_code == 429 and raw.headers["retry-after"] == "2"
    # fal-client retries 429 on its own (with its own backoff, ignoring Retry-After).
    handle = clients().submit(KLING_T2V, {"prompt": "x"})
    assert handle.request_id and fal.stats.rejected_429 == 2 and fal.stats.submits == 1


def test_ingress_5xx_is_retried_by_the_sdk(clients, sdk, fal):
    client = clients()
    handle = client.submit(KLING_T2V, {"prompt": "x"})
    fal.config.transient_errors_next = 2
    # The SDK recognises an nginx 502-504 page without x-fal-request-id as an ingress error.
    assert handle.status() is not None
    assert fal.stats.transient_errors == 2


def test_results_and_files_expire(clients, sdk, fal):
    client = clients()
    handle = client.submit("fal-ai/veo3.1/fast", {"prompt": "x", "duration": "4s"})
    url = handle.get()["video"]["url"]
    fal.config.expire_next_downloads = 1
    assert fetch(fal, url).status_code == 404
    assert fetch(fal, url).status_code == 200
    fal.config.result_ttl = 0.0
    with pytest.raises(sdk.FalClientHTTPError) as caught:
        handle.get()
    assert caught.value.status_code == 404
    assert fal.stats.expired_downloads == 1


def test_status_urls_with_the_endpoint_path_are_not_found(clients, sdk, fal):
    request_id = clients().submit(KLING_T2V, {"prompt": "x"}).request_id
    headers = {"Authorization": f"Key {fal.config.key}"}
    wrong = httpx.get(
        f"{fal.url}/{KLING_T2V}/requests/{request_id}/status", headers=headers, verify=trust(fal)
    )
    right = httpx.get(
        f"{fal.url}/fal-ai/kling-video/requests/{request_id}/status", headers=headers, verify=trust(fal)
    )
    unknown_app = httpx.post(f"{fal.url}/fal-ai/no-such-model", json={}, headers=headers, verify=trust(fal))
    assert (wrong.status_code, right.status_code, unknown_app.status_code) == (404, 202, 404)


def test_webhook_is_signed_with_the_key_in_the_jwks(clients, sdk, fal):
    with WebhookRecorder() as recorder:
        handle = clients().submit(
            "fal-ai/veo3.1/fast", {"prompt": "x", "duration": "4s"}, webhook_url=f"{recorder.url}/hook"
        )
        (delivery,) = recorder.wait(1)
    assert fal.stats.requests[-1]["webhook_url"] == f"{recorder.url}/hook"
    body = json.loads(delivery.body)
    assert body["request_id"] == handle.request_id and body["status"] == "OK"
    assert body["payload"]["video"]["url"].startswith(fal.url)
    headers = {k.lower(): v for k, v in delivery.headers.items()}
    assert headers["x-fal-webhook-request-id"] == handle.request_id
    assert headers["x-fal-webhook-user-id"] == fal.config.user_id
    assert abs(int(headers["x-fal-webhook-timestamp"]) - time.time()) < 30

    # Verify as fal's docs describe, straight from the published JWKS.
    (jwk,) = httpx.get(fal.jwks_url, verify=trust(fal)).json()["keys"]
    assert (jwk["kty"], jwk["crv"]) == ("OKP", "Ed25519")
    key = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4)))
    message = "\n".join(
        [
            headers["x-fal-webhook-request-id"],
            headers["x-fal-webhook-user-id"],
            headers["x-fal-webhook-timestamp"],
            hashlib.sha256(delivery.body).hexdigest(),
        ]
    ).encode()
    key.verify(bytes.fromhex(headers["x-fal-webhook-signature"]), message)
    with pytest.raises(InvalidSignature):
        key.verify(bytes.fromhex(headers["x-fal-webhook-signature"]), message + b"x")
    assert fal.stats.webhooks_sent == 1


def test_a_failed_request_is_delivered_as_an_error(clients, sdk, fal):
    with WebhookRecorder() as recorder:
        clients().submit(KLING_T2V, {"prompt": "x", "duration": "7"}, webhook_url=recorder.url)
        (delivery,) = recorder.wait(1)
    body = json.loads(delivery.body)
    assert body["status"] == "ERROR" and body["error"] == "Invalid status code: 422"
    assert body["payload"]["detail"][0]["loc"] == ["body", "duration"]


def test_a_lost_runner_completes_with_its_error_type(clients, sdk, fal):
    fal.config.runner_failures_next = 1
    handle = clients().submit(KLING_T2V, {"prompt": "x"})
    status = wait_done(handle)[-1]
    assert (status.error, status.error_type) == ("Runner disconnected", "runner_disconnected")
    with pytest.raises(sdk.FalClientHTTPError) as caught:
        handle.get()
    assert caught.value.status_code == 503 and caught.value.error_type == "runner_disconnected"


def test_plain_http_when_asked(tmp_path):
    with FakeFalServer(config(), tls=False) as plain:
        assert plain.url.startswith("http://") and plain.ca_file is None
        answer = httpx.post(
            f"{plain.url}/{KLING_T2V}",
            json={"prompt": "x"},
            headers={"Authorization": f"Key {plain.config.key}"},
        )
        assert answer.status_code == 200 and answer.json()["status_url"].startswith("http://")


def test_nominal_sizes():
    assert nominal_size("720p", "16:9") == "1280x720"
    assert nominal_size("720p", "9:16") == "720x1280"
    assert nominal_size("1080p", "16:9") == "1920x1080"
    assert nominal_size("4k", "9:16") == "2160x3840"
    assert all(endpoint.app.count("/") == 1 for endpoint in ENDPOINTS.values())


def test_result_shapes_per_model(clients, sdk, fal):
    client = clients()
    seedance = client.submit(
        "fal-ai/bytedance/seedance/v1.5/pro/text-to-video",
        {"prompt": "x", "duration": "4", "resolution": "720p", "generate_audio": False, "seed": 42},
    ).get()
    veo = client.submit("fal-ai/veo3.1/fast", {"prompt": "x", "duration": "4s"}).get()
    # Seedance (and Wan) answer the seed they used; Veo only the video.
    assert seedance["seed"] == 42 and set(veo) == {"video"}
