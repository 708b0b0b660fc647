"""The fal provider against the strict stand-in of fal's queue (over TLS, trusted via REQUESTS_CA_BUNDLE).

Each test configures the provider only through settings (pytest-django's `settings` fixture), as a
deployment does.
"""

from __future__ import annotations

import base64
import json
import time
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from rendering.fake_api.fal import (
    ENDPOINTS,
    FakeFalServer,
    FalFakeConfig,
    WebhookRecorder,
    nominal_size,
    sign_fal_webhook,
)
from rendering.media import probe
from rendering.providers.base import PERMANENT_FAILURE_CODES, ProviderError, RenderRequest, TaskState
from rendering.providers.fal import FalProvider, aspect_ratio_of, split_task_id
from rendering.providers.fal_models import FAL_MODELS, MODELS
from rendering.providers.fal_webhooks import (
    FalWebhookError,
    clear_jwks_cache,
    fetch_jwks,
    verify_fal_webhook,
)
from rendering.providers.registry import get_provider

KLING25 = "fal-ai/kling-video/v2.5-turbo/pro"
KLING21 = "fal-ai/kling-video/v2.1/master"
VEO_FAST = "fal-ai/veo3.1/fast"
VEO = "fal-ai/veo3.1"
SEEDANCE = "fal-ai/bytedance/seedance/v1.5/pro"
HAILUO = "fal-ai/minimax/hailuo-02/pro"
WAN = "fal-ai/wan-25-preview"


def config(**overrides) -> FalFakeConfig:
    return FalFakeConfig(**{"queue_latency": 0.05, "latency": 0.3, **overrides})


@pytest.fixture(scope="module")
def fal_server():
    with FakeFalServer(config()) as server:
        yield server


@pytest.fixture
def fal(fal_server, settings, monkeypatch):
    fal_server.reset(config())
    settings.FAL_QUEUE_URL = fal_server.url
    settings.FAL_KEY = fal_server.config.key
    settings.FAL_WEBHOOK_JWKS_URL = fal_server.jwks_url
    settings.FAL_CONNECT_TIMEOUT = 5.0
    settings.FAL_READ_TIMEOUT = 30.0
    settings.FAL_DOWNLOAD_TIMEOUT = 60.0
    settings.PUBLIC_BASE_URL = ""
    # requests reads the CA bundle from the environment on every request (trust_env).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fal_server.ca_file))
    clear_jwks_cache()
    yield fal_server
    clear_jwks_cache()


def render(**overrides) -> RenderRequest:
    fields = {
        "prompt": "A lighthouse at dusk",
        "seconds": 5.0,
        "size": "1920x1080",
        "fps": 24,
        "model": KLING25,
    }
    fields.update(overrides)
    return RenderRequest(**fields)


def image(path: Path, size=(1280, 720), color=(200, 40, 40)) -> Path:
    Image.new("RGB", size, color).save(path)
    return path


def poll_done(provider: FalProvider, task_id: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    states = []
    while time.monotonic() < deadline:
        task = provider.poll(task_id)
        states.append(task.status)
        if task.done:
            return task, states
        time.sleep(0.05)
    raise AssertionError(f"{task_id} not done after {timeout} s: {states[-3:]}")


def sent(fal) -> dict:
    return fal.stats.requests[-1]


def inline_bytes(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    assert header.startswith("data:image/") and header.endswith(";base64")
    return base64.b64decode(payload)


# --- the contract -----------------------------------------------------------------------------------


def test_create_poll_download_a_real_clip(fal, tmp_path):
    fal.reset(config(latency=0.8))  # long enough to be seen in progress on a busy machine
    provider = FalProvider()
    task = provider.submit(render(seconds=10.0, size="1080x1920"))
    assert task.status == TaskState.QUEUED
    endpoint_id, request_id = split_task_id(task.id)
    assert endpoint_id == f"{KLING25}/text-to-video" and sent(fal)["request_id"] == request_id
    assert sent(fal)["input"] == {"prompt": "A lighthouse at dusk", "duration": "10", "aspect_ratio": "9:16"}

    done, states = poll_done(provider, task.id)
    assert (done.status, done.progress) == (TaskState.COMPLETED, 100.0)
    assert states[0] in {TaskState.QUEUED, TaskState.IN_PROGRESS} and TaskState.IN_PROGRESS in states

    out = provider.download(task.id, tmp_path / "clips" / "segment-1.mp4")
    info = probe(out)
    assert info.size == "1080x1920" and info.duration == pytest.approx(10.0, abs=0.1)
    assert info.video_codec == "h264"
    # Nothing but the finished file in the folder: no partial left behind.
    assert [p.name for p in out.parent.iterdir()] == ["segment-1.mp4"]
    assert fal.stats.downloads == 1


def test_veo_sends_duration_resolution_and_audio_explicitly(fal, tmp_path):
    provider = FalProvider()
    task = provider.submit(render(model=VEO_FAST, seconds=4.0, size="1280x720", seed=7))
    assert sent(fal)["endpoint"] == VEO_FAST
    assert sent(fal)["input"] == {
        "prompt": "A lighthouse at dusk",
        "duration": "4s",
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "generate_audio": False,  # Veo defaults to true and bills it: always sent
        "seed": 7,
    }
    poll_done(provider, task.id)
    info = probe(provider.download(task.id, tmp_path / "veo.mp4"))
    assert info.size == "1280x720" and info.duration == pytest.approx(4.0, abs=0.1)


def test_the_provider_is_registered_and_named():
    provider = get_provider("fal")
    assert isinstance(provider, FalProvider) and provider.name == "fal"


def test_missing_key_is_permanent_and_names_the_setting(fal, settings):
    settings.FAL_KEY = ""
    with pytest.raises(ProviderError, match="FAL_KEY is not set") as caught:
        FalProvider().submit(render())
    assert caught.value.permanent and caught.value.code == "no_api_key"
    assert fal.stats.submits == 0


def test_a_wrong_key_is_permanent_with_fals_message(fal, settings):
    settings.FAL_KEY = "someone:else"
    with pytest.raises(ProviderError) as caught:
        FalProvider().submit(render())
    error = caught.value
    assert error.permanent and error.status_code == 401 and error.code == "invalid_api_key"
    assert "No user found for Key ID and Secret" in error.message


def test_cancel_a_queued_request_then_again_after_it_finished(fal):
    fal.reset(config(queue_latency=10.0))
    provider = FalProvider()
    task = provider.submit(render())
    assert provider.poll(task.id).status == TaskState.QUEUED
    provider.cancel(task.id)
    done = provider.poll(task.id)
    assert (done.status, done.error_code) == (TaskState.FAILED, "cancelled")
    provider.cancel(task.id)  # ALREADY_COMPLETED: a finished task stays finished, no error
    assert fal.stats.cancels == 2


def test_429_is_transient_and_carries_retry_after(fal):
    fal.config.rate_limit_next = 1
    fal.config.retry_after = 3.0
    provider = FalProvider()
    with pytest.raises(ProviderError) as caught:
        provider.submit(render())
    error = caught.value
    assert not error.permanent and error.status_code == 429 and error.retry_after == 3.0
    assert provider.submit(render()).id  # the next one gets through
    assert fal.stats.rejected_429 == 1 and fal.stats.submits == 1


def test_a_transient_5xx_is_retryable_and_the_next_poll_works(fal):
    provider = FalProvider()
    task = provider.submit(render())
    fal.config.transient_errors_next = 1
    with pytest.raises(ProviderError) as caught:
        provider.poll(task.id)
    assert not caught.value.permanent and caught.value.status_code == 503
    assert "nginx" in caught.value.message
    assert poll_done(provider, task.id)[0].status == TaskState.COMPLETED


def test_connection_errors_are_transient(fal, settings):
    settings.FAL_QUEUE_URL = "https://127.0.0.1:9"  # the discard port: nothing listens
    with pytest.raises(ProviderError) as caught:
        FalProvider().poll(f"{KLING25}/text-to-video|abc")
    assert not caught.value.permanent and caught.value.code == "connection_error"


def test_content_refusal_is_permanent_and_keeps_fals_reason(fal):
    provider = FalProvider()
    task = provider.submit(render(prompt="a FORBIDDEN scene"))
    done, _ = poll_done(provider, task.id)
    assert done.status == TaskState.FAILED and done.error_code == "content_policy_violation"
    assert done.error_code in PERMANENT_FAILURE_CODES
    assert done.error_message.startswith("prompt: ") and "content checker" in done.error_message


def test_bad_input_refused_by_fal_is_permanent_with_the_field_message(fal):
    provider = FalProvider()
    task = provider.submit(render(prompt="x" * 2600))  # Kling takes at most 2500 characters
    done, _ = poll_done(provider, task.id)
    assert done.status == TaskState.FAILED and done.error_code == "invalid_request"
    assert done.error_code in PERMANENT_FAILURE_CODES
    assert done.error_message == "prompt: String should have at most 2500 characters"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"seconds": 7.0}, "renders clips of 5, 10 s, not 7 s"),
        ({"size": "1280x720"}, "size '1280x720' is not offered"),
        ({"model": "fal-ai/sora-9"}, "unknown fal model"),
    ],
)
def test_requests_no_model_takes_are_refused_before_any_call(fal, overrides, message):
    with pytest.raises(ProviderError, match=message) as caught:
        FalProvider().submit(render(**overrides))
    assert caught.value.permanent and caught.value.code == "invalid_request"
    assert fal.stats.submits == 0


def test_a_lost_runner_is_a_failure_worth_retrying(fal):
    fal.config.runner_failures_next = 1
    provider = FalProvider()
    task = provider.submit(render())
    done, _ = poll_done(provider, task.id)
    assert (done.status, done.error_code) == (TaskState.FAILED, "runner_disconnected")
    assert done.error_code not in PERMANENT_FAILURE_CODES


def test_an_expired_file_is_a_permanent_expired_error(fal, tmp_path):
    provider = FalProvider()
    task = provider.submit(render())
    poll_done(provider, task.id)
    fal.config.expire_next_downloads = 1
    dest = tmp_path / "out" / "clip.mp4"
    with pytest.raises(ProviderError) as caught:
        provider.download(task.id, dest)
    assert caught.value.permanent and caught.value.code == "expired"
    assert not dest.exists() and (not dest.parent.exists() or list(dest.parent.iterdir()) == [])


def test_an_expired_result_is_a_permanent_expired_error(fal, tmp_path):
    provider = FalProvider()
    task = provider.submit(render())
    poll_done(provider, task.id)
    fal.config.result_ttl = 0.0
    for call in (lambda: provider.poll(task.id), lambda: provider.download(task.id, tmp_path / "x.mp4")):
        with pytest.raises(ProviderError) as caught:
            call()
        assert caught.value.permanent and caught.value.code == "expired"


def test_the_video_is_fetched_without_our_key(fal, tmp_path, monkeypatch):
    provider = FalProvider()
    task = provider.submit(render())
    poll_done(provider, task.id)
    seen: list[tuple[str, str | None]] = []
    original = provider.session.get

    def spy(url, **kwargs):
        seen.append((url, (kwargs.get("headers") or {}).get("Authorization")))
        return original(url, **kwargs)

    monkeypatch.setattr(provider.session, "get", spy)
    provider.download(task.id, tmp_path / "clip.mp4")
    assert len(seen) == 1 and "/files/" in seen[0][0] and seen[0][1] is None


# --- frames, inline, to the right field per model ---------------------------------------------------


@pytest.mark.parametrize(
    ("model", "seconds", "size", "endpoint", "first_field", "last_field"),
    [
        (KLING25, 5.0, "1920x1080", f"{KLING25}/image-to-video", "image_url", "tail_image_url"),
        (SEEDANCE, 4.0, "1280x720", f"{SEEDANCE}/image-to-video", "image_url", "end_image_url"),
        (HAILUO, 6.0, "1920x1080", f"{HAILUO}/image-to-video", "image_url", "end_image_url"),
        (
            VEO_FAST,
            4.0,
            "1280x720",
            f"{VEO_FAST}/first-last-frame-to-video",
            "first_frame_url",
            "last_frame_url",
        ),
        (VEO, 4.0, "1280x720", f"{VEO}/first-last-frame-to-video", "first_frame_url", "last_frame_url"),
    ],
)
def test_first_and_last_frame_go_inline_to_the_models_fields(
    fal, tmp_path, model, seconds, size, endpoint, first_field, last_field
):
    width, height = (int(v) for v in size.split("x"))
    first = image(tmp_path / "first.png", (width // 2, height // 2), (200, 10, 10))
    last = image(tmp_path / "last.png", (width // 2, height // 2), (10, 10, 200))
    provider = FalProvider()
    task = provider.submit(
        render(model=model, seconds=seconds, size=size, reference_image=first, last_frame=last)
    )
    assert sent(fal)["endpoint"] == endpoint and split_task_id(task.id)[0] == endpoint
    body = sent(fal)["input"]
    assert inline_bytes(body[first_field]) == first.read_bytes()
    assert inline_bytes(body[last_field]) == last.read_bytes()
    assert body[first_field].startswith("data:image/png;base64,")
    # The strict stand-in accepted every field: the clip renders, at the asked shape and length.
    done, _ = poll_done(provider, task.id)
    assert done.status == TaskState.COMPLETED, done.error_message
    info = probe(provider.download(task.id, tmp_path / "clip.mp4"))
    assert info.size == size and info.duration == pytest.approx(seconds, abs=0.1)


@pytest.mark.parametrize(
    ("model", "seconds", "size", "field"),
    [
        (KLING21, 5.0, "1920x1080", "image_url"),
        (WAN, 5.0, "1280x720", "image_url"),
        (VEO_FAST, 6.0, "1280x720", "image_url"),
    ],
)
def test_first_frame_alone_goes_to_image_to_video(fal, tmp_path, model, seconds, size, field):
    first = image(tmp_path / "first.jpg", (640, 360))
    provider = FalProvider()
    task = provider.submit(render(model=model, seconds=seconds, size=size, reference_image=first))
    assert sent(fal)["endpoint"].endswith("/image-to-video")
    assert inline_bytes(sent(fal)["input"][field]) == first.read_bytes()
    assert sent(fal)["input"][field].startswith("data:image/jpeg;base64,")
    assert poll_done(provider, task.id)[0].status == TaskState.COMPLETED


def test_a_last_frame_where_the_model_takes_none_is_refused(fal, tmp_path):
    first = image(tmp_path / "a.png")
    with pytest.raises(ProviderError, match="takes no last frame") as caught:
        FalProvider().submit(render(model=KLING21, reference_image=first, last_frame=first))
    assert caught.value.permanent and fal.stats.submits == 0
    with pytest.raises(ProviderError, match="only together with a first frame"):
        FalProvider().submit(render(model=KLING25, last_frame=first))


def test_reference_images_go_to_veos_reference_endpoint(fal, tmp_path):
    refs = tuple(image(tmp_path / f"r{i}.png", (512, 512), (i * 60, 90, 90)) for i in range(3))
    provider = FalProvider()
    task = provider.submit(render(model=VEO, seconds=8.0, size="1280x720", reference_images=refs))
    assert sent(fal)["endpoint"] == f"{VEO}/reference-to-video"
    assert [inline_bytes(uri) for uri in sent(fal)["input"]["image_urls"]] == [p.read_bytes() for p in refs]
    assert poll_done(provider, task.id)[0].status == TaskState.COMPLETED
    with pytest.raises(ProviderError, match="at most 0 reference images"):
        provider.submit(render(model=VEO_FAST, seconds=8.0, size="1280x720", reference_images=refs))


# --- webhooks ---------------------------------------------------------------------------------------


def test_submit_asks_for_a_webhook_and_its_signature_verifies(fal, settings):
    with WebhookRecorder() as recorder:
        settings.PUBLIC_BASE_URL = recorder.url + "/"
        provider = FalProvider()
        task = provider.submit(render(model=VEO_FAST, seconds=4.0, size="1280x720"))
        assert sent(fal)["webhook_url"] == f"{recorder.url}/webhooks/fal"
        (delivery,) = recorder.wait(1)
    assert delivery.path == "/webhooks/fal"
    # Keys fetched from settings.FAL_WEBHOOK_JWKS_URL (the stand-in's JWKS, over TLS).
    assert verify_fal_webhook(delivery.headers, delivery.body) == split_task_id(task.id)[1]
    assert json.loads(delivery.body)["status"] == "OK"


def signed(fal, body: bytes, *, key: Ed25519PrivateKey | None = None, at: int | None = None) -> dict:
    """Headers of a delivery signed by the stand-in's published key, or by `key` (one fal never published)."""
    timestamp = str(int(time.time()) if at is None else at)
    request_id = "7f0c3f7e-1111-4a5b-9c2d-000000000001"
    signer = key or fal.signing_key
    return {
        "X-Fal-Webhook-Request-Id": request_id,
        "X-Fal-Webhook-User-Id": fal.config.user_id,
        "X-Fal-Webhook-Timestamp": timestamp,
        "X-Fal-Webhook-Signature": sign_fal_webhook(signer, request_id, fal.config.user_id, timestamp, body),
    }


def test_webhook_verification_accepts_and_rejects(fal, settings):
    body = b'{"request_id": "7f0c3f7e-1111-4a5b-9c2d-000000000001", "status": "OK", "payload": {}}'
    jwks = fetch_jwks()
    good = signed(fal, body)
    assert verify_fal_webhook(good, body, jwks) == good["X-Fal-Webhook-Request-Id"]
    # Lower-case header names (as a WSGI environ or another framework hands them over) work too.
    assert verify_fal_webhook({k.lower(): v for k, v in good.items()}, body, jwks)

    with pytest.raises(FalWebhookError, match="verifies the signature"):
        verify_fal_webhook(good, body + b" ", jwks)  # the body was changed
    tampered = dict(good, **{"X-Fal-Webhook-Signature": "00" * 64})
    with pytest.raises(FalWebhookError, match="verifies the signature"):
        verify_fal_webhook(tampered, body, jwks)
    with pytest.raises(FalWebhookError, match="not hex"):
        verify_fal_webhook(dict(good, **{"X-Fal-Webhook-Signature": "zz"}), body, jwks)
    stranger = signed(fal, body, key=Ed25519PrivateKey.generate())
    with pytest.raises(FalWebhookError, match="verifies the signature"):
        verify_fal_webhook(stranger, body, jwks)  # signed by a key fal does not publish
    settings.WEBHOOK_TOLERANCE_SECONDS = 300
    stale = signed(fal, body, at=int(time.time()) - 301)
    with pytest.raises(FalWebhookError, match="more than 300 s"):
        verify_fal_webhook(stale, body, jwks)
    future = signed(fal, body, at=int(time.time()) + 301)
    with pytest.raises(FalWebhookError, match="more than 300 s"):
        verify_fal_webhook(future, body, jwks)
    missing = {k: v for k, v in good.items() if k != "X-Fal-Webhook-User-Id"}
    with pytest.raises(FalWebhookError, match="missing"):
        verify_fal_webhook(missing, body, jwks)


def test_webhook_keys_are_fetched_once_cached_and_refreshed_at_most_once_a_minute(fal):
    from rendering.providers import fal_webhooks

    body = b"{}"
    good = signed(fal, body)
    forged = signed(fal, body, key=Ed25519PrivateKey.generate())
    counted = []
    original = requests.get

    def counting(url, **kwargs):
        counted.append(url)
        assert kwargs["timeout"]  # bounded
        return original(url, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(requests, "get", counting)
        assert verify_fal_webhook(good, body) and verify_fal_webhook(good, body)
        # Forged deliveries cannot make us fetch again within the minute.
        for _ in range(3):
            with pytest.raises(FalWebhookError):
                verify_fal_webhook(forged, body)
        assert counted == [fal.jwks_url]
        # Once the minute has passed, a signature no cached key verifies fetches the set once more
        # (the way a key rotation is picked up), then refuses.
        patch.setattr(fal_webhooks, "JWKS_REFRESH_MIN_INTERVAL", 0.0)
        with pytest.raises(FalWebhookError, match="no key fal publishes"):
            verify_fal_webhook(forged, body)
        assert counted == [fal.jwks_url] * 2


# --- the catalogue ----------------------------------------------------------------------------------


def test_the_catalogue_lists_every_model(fal):
    catalogue = FalProvider().catalogue()
    assert catalogue.models == MODELS and catalogue.default_model == KLING25
    assert catalogue.requires == ("FAL_KEY",)
    assert catalogue.model(HAILUO).all_sizes() == ("1920x1080",)
    assert catalogue.model(VEO).check_size("3840x2160")
    with pytest.raises(Exception, match="not offered by"):
        catalogue.model(KLING25).check_size("1280x720")
    assert catalogue.model(KLING21).lengths_for("1920x1080") == (5.0, 10.0)
    assert str(catalogue.model(KLING25).cost(10, "1920x1080")) == "0.7000"  # $0.35 per 5 s on fal's page
    assert str(catalogue.model(KLING21).cost(5, "1920x1080")) == "1.4000"  # $1.40 per 5 s
    assert str(catalogue.model(HAILUO).cost(6, "1920x1080")) == "0.4800"  # "$0.48/video"
    assert str(catalogue.model(VEO).cost(8, "3840x2160")) == "3.2000"  # silent 4k: $0.40/s
    assert str(catalogue.model(VEO).cost(8, "3840x2160", audio=True)) == "4.8000"  # with audio: $0.60/s


def test_every_model_figure_has_a_source_and_a_date():
    for spec in MODELS:
        assert spec.provider == "fal" and spec.source and spec.as_of == "2026-11-30"
        assert spec.clip_seconds and spec.sizes and spec.price_per_second
        for resolution in spec.sizes:
            assert resolution in spec.price_per_second or "*" in spec.price_per_second
            if spec.audio and "*" not in spec.price_per_second:
                assert f"{resolution}+audio" in spec.price_per_second
    seedance = next(spec for spec in MODELS if spec.id == SEEDANCE)
    # fal's page: "Each 720p 5 second video with audio costs roughly $0.26".
    assert round(seedance.price_per_second["720p+audio"] * 5, 2) == Decimal("0.26")


def test_the_catalogue_agrees_with_the_stand_in():
    """Two tables written apart (provider catalogue, fake's schemas): every endpoint the provider calls
    exists, and every size it offers is the one the endpoint returns for that ratio and tier."""
    for model in FAL_MODELS:
        for endpoint in model.inputs.endpoints():
            assert endpoint.id in ENDPOINTS, endpoint.id
            schema = ENDPOINTS[endpoint.id].fields
            for flag, name in [
                (endpoint.duration, model.inputs.duration_field),
                (endpoint.aspect_ratio, model.inputs.aspect_ratio_field),
                (endpoint.resolution, model.inputs.resolution_field),
                (endpoint.audio, model.inputs.audio_field),
                (endpoint.seed, model.inputs.seed_field),
            ]:
                assert flag == (name in schema), (endpoint.id, name)
            for name in (endpoint.first_frame, endpoint.last_frame, endpoint.references):
                assert name is None or name in schema, (endpoint.id, name)
        for resolution, sizes in model.spec.sizes.items():
            for size in sizes:
                assert nominal_size(resolution, aspect_ratio_of(size)) == size
