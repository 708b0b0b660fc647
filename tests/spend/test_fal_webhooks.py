"""POST /webhooks/fal: fal's signed deliveries (ED25519, keys from the JWKS the fal stand-in serves over
TLS) record once and run the segment's next step, as Sora's do; forged, stale and replayed ones change
nothing."""

from __future__ import annotations

import json
import math
import time

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.urls import reverse

from jobs import leases, render_state, services
from jobs.models import JobStatus, SegmentStatus, WebhookEvent
from rendering import poll_schedule, transport
from rendering.fake_api.fal import FakeFalServer, FalFakeConfig, WebhookRecorder, sign_fal_webhook
from rendering.providers.fal import WEBHOOK_PATH
from rendering.providers.fal_webhooks import clear_jwks_cache

from .conftest import finish

WAN = "fal-ai/wan-25-preview"
WAN_T2V = f"{WAN}/text-to-video"
# 1280x720 for 5 s at 24 fps: a clip the stand-in's content cache already holds after the first run.
WAN_INPUT = {"prompt": "A lighthouse at dusk.", "resolution": "720p", "aspect_ratio": "16:9", "duration": "5"}
TIMEOUT = (5, 15)


def fal_config(**overrides) -> FalFakeConfig:
    return FalFakeConfig(**{"queue_latency": 0.05, "latency": 0.1, **overrides})


@pytest.fixture(scope="module")
def fal_server():
    with FakeFalServer(fal_config()) as server:
        yield server


@pytest.fixture
def fal(fal_server, settings, monkeypatch):
    """The fal stand-in, with the project pointed at it and its CA trusted (requests and the stdlib)."""
    fal_server.reset(fal_config())
    settings.FAL_QUEUE_URL = fal_server.url
    settings.FAL_KEY = fal_server.config.key
    settings.FAL_WEBHOOK_JWKS_URL = fal_server.jwks_url
    settings.FAL_CONNECT_TIMEOUT = 5.0
    settings.FAL_READ_TIMEOUT = 30.0
    settings.PUBLIC_BASE_URL = ""
    settings.WEBHOOK_TOLERANCE_SECONDS = 300
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fal_server.ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(fal_server.ca_file))
    clear_jwks_cache()
    yield fal_server
    clear_jwks_cache()


@pytest.fixture
def enqueued(monkeypatch):
    calls: list[tuple] = []
    monkeypatch.setattr(transport, "enqueue", lambda name, *args, **kwargs: calls.append((name, args)))
    return calls


def fal_job(owner):
    return services.video_job_create(
        owner=owner,
        prompt=WAN_INPUT["prompt"],
        duration_seconds=5,
        segment_seconds=5,
        strategy="manual",
        manual_prompts=[WAN_INPUT["prompt"]],
        provider="fal",
        model=WAN,
        size="1280x720",
    )


@pytest.fixture
def rendering_segment(fal, user, no_caps, django_capture_on_commit_callbacks):
    """Factory: a fal segment that is rendering with the given request id (nothing really runs)."""

    def make(request_id: str):
        with django_capture_on_commit_callbacks(execute=False):
            job = services.video_job_render(job=fal_job(user))
        segment = render_state.segment_claim(
            segment_id=job.segments.get().id, generation=job.render_generation, token="test-run"
        )
        render_state.segment_set_provider_task(
            segment_id=segment.id, task_id=f"{WAN_T2V}|{request_id}", provider_status="queued"
        )
        leases.segment_wait(segment.id, "test-run", 15.0)  # waiting between polls
        segment.refresh_from_db()
        return segment

    return make


def submit_with_webhook(fal: FakeFalServer, webhook_url: str) -> str:
    """A real request to the stand-in, asking it to deliver the result to `webhook_url`."""
    answer = requests.post(
        f"{fal.url}/{WAN_T2V}",
        params={"fal_webhook": webhook_url},
        json=WAN_INPUT,
        headers={"Authorization": f"Key {fal.config.key}"},
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["request_id"]


def signed(
    fal: FakeFalServer,
    request_id: str,
    *,
    status: str = "OK",
    timestamp: int | None = None,
    key: Ed25519PrivateKey | None = None,
    body: bytes | None = None,
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a delivery signed as fal signs it (by the stand-in's key unless `key`)."""
    if body is None:
        body = json.dumps(
            {"request_id": request_id, "gateway_request_id": request_id, "status": status, "payload": {}}
        ).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    user_id = fal.config.user_id
    signature = sign_fal_webhook(key or fal.signing_key, request_id, user_id, stamp, body)
    headers = {
        "X-Fal-Webhook-Request-Id": request_id,
        "X-Fal-Webhook-User-Id": user_id,
        "X-Fal-Webhook-Timestamp": stamp,
        "X-Fal-Webhook-Signature": signature,
    }
    return headers, body


def post(client, headers: dict[str, str], body: bytes):
    fal_headers = {k: v for k, v in headers.items() if k.lower().startswith("x-fal-webhook-")}
    return client.post(WEBHOOK_PATH, data=body, content_type="application/json", headers=fal_headers)


def test_the_route_is_where_the_provider_asks_fal_to_deliver():
    assert reverse("fal-webhook") == WEBHOOK_PATH == "/webhooks/fal"


@pytest.mark.django_db
def test_a_delivery_from_the_fal_fake_runs_the_segments_next_step_once(
    client, fal, rendering_segment, enqueued, django_capture_on_commit_callbacks
):
    with WebhookRecorder() as recorder:
        request_id = submit_with_webhook(fal, f"{recorder.url}{WEBHOOK_PATH}")
        (delivery,) = recorder.wait(1, timeout=10)
    assert delivery.path == WEBHOOK_PATH
    segment = rendering_segment(request_id)

    with django_capture_on_commit_callbacks(execute=True):
        answer = post(client, delivery.headers, delivery.body)
    assert answer.status_code == 200 and answer.json() == {"received": True, "outcome": "advanced"}
    assert enqueued == [
        ("rendering.render_segment", (str(segment.job_id), segment.id, segment.job.render_generation))
    ]
    recorded = WebhookEvent.objects.get()
    assert (
        recorded.event_id,
        recorded.provider,
        recorded.type,
        recorded.video_id,
        recorded.segment_id,
        recorded.outcome,
    ) == (f"fal:{request_id}", "fal", "video.completed", request_id, segment.id, "advanced")

    # The same delivery replayed: a duplicate, nothing more runs.
    with django_capture_on_commit_callbacks(execute=True):
        again = post(client, delivery.headers, delivery.body)
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    # fal's own retry of that result: a later timestamp and so a new signature, the same request.
    retry_headers, retry_body = signed(fal, request_id, timestamp=int(time.time()) + 5)
    with django_capture_on_commit_callbacks(execute=True):
        retried = post(client, retry_headers, retry_body)
    assert retried.status_code == 200 and retried.json()["outcome"] == "duplicate"
    assert len(enqueued) == 1 and WebhookEvent.objects.count() == 1
    segment.refresh_from_db()
    assert segment.status == SegmentStatus.RENDERING  # the poll it started decides, not the webhook


@pytest.mark.django_db
def test_a_failed_request_also_runs_the_next_step(
    client, fal, rendering_segment, enqueued, django_capture_on_commit_callbacks
):
    segment = rendering_segment("req-failed")
    with django_capture_on_commit_callbacks(execute=True):
        answer = post(client, *signed(fal, "req-failed", status="ERROR"))
    assert answer.json()["outcome"] == "advanced" and len(enqueued) == 1
    assert WebhookEvent.objects.get().type == "video.failed"
    assert enqueued[0][1][1] == segment.id


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"key": Ed25519PrivateKey.generate()}, "no key fal publishes verifies the signature"),
        ({"tamper": True}, "no key fal publishes verifies the signature"),
        (
            {"offset": -301},
            "X-Fal-Webhook-Timestamp is more than 300 s away from our clock",
        ),
        (
            {"offset": 301},
            "X-Fal-Webhook-Timestamp is more than 300 s away from our clock",
        ),
    ],
)
def test_a_forged_or_stale_delivery_gets_400_and_changes_nothing(
    client, fal, rendering_segment, enqueued, django_capture_on_commit_callbacks, change, detail
):
    segment = rendering_segment("req-1")
    # The offset is taken from now, at the moment of sending (not when the parameters were collected),
    # from the whole second on its own side of now: truncated, now + 301 s could be less than 300 s
    # ahead of the server's clock by the time it checks (a fraction of a second later).
    offset = change.get("offset")
    timestamp = None if offset is None else (math.ceil if offset > 0 else math.floor)(time.time()) + offset
    headers, body = signed(fal, "req-1", key=change.get("key"), timestamp=timestamp)
    if change.get("tamper"):
        body = body.replace(b'"OK"', b'"ERROR"')
    with django_capture_on_commit_callbacks(execute=True):
        answer = post(client, headers, body)
    assert answer.status_code == 400 and answer.json() == {"detail": detail}
    assert enqueued == [] and not WebhookEvent.objects.exists()
    segment.refresh_from_db()
    assert segment.status == SegmentStatus.RENDERING


@pytest.mark.django_db
def test_other_deliveries_are_acknowledged_and_recorded_only(
    client, fal, rendering_segment, enqueued, django_capture_on_commit_callbacks
):
    rendering_segment("req-known")
    with django_capture_on_commit_callbacks(execute=True):
        unknown = post(client, *signed(fal, "req-nobody"))
        odd = post(client, *signed(fal, "req-known", status="PENDING"))
    assert unknown.status_code == 200 and unknown.json()["outcome"] == "unknown_video"
    assert odd.json()["outcome"] == "ignored_type"
    assert enqueued == []
    assert set(WebhookEvent.objects.values_list("event_id", "type", "outcome")) == {
        ("fal:req-nobody", "video.completed", "unknown_video"),
        ("fal:req-known", "fal.PENDING", "ignored_type"),
    }
    # A request id that only ends like a stored one is another request.
    with django_capture_on_commit_callbacks(execute=True):
        suffix = post(client, *signed(fal, "known"))
    assert suffix.json()["outcome"] == "unknown_video" and enqueued == []

    assert post(client, *signed(fal, "req-x", body=b"not json")).json() == {"detail": "the body is not JSON"}
    assert post(client, *signed(fal, "req-x", body=b"[]")).json() == {
        "detail": "the body must be a JSON object"
    }
    assert client.get(WEBHOOK_PATH).status_code == 405
    unsigned = client.post(WEBHOOK_PATH, data=b"{}", content_type="application/json")
    assert unsigned.status_code == 400 and "missing" in unsigned.json()["detail"]


@pytest.mark.django_db
def test_a_request_id_too_long_to_record_whole_is_refused_not_cut_short(client, fal, enqueued):
    answer = post(client, *signed(fal, "r" * 197))  # "fal:" + 197 > WebhookEvent.event_id's 200
    assert answer.status_code == 400 and "longer than the 196 characters" in answer.json()["detail"]
    assert enqueued == [] and not WebhookEvent.objects.exists()
    assert post(client, *signed(fal, "r" * 196)).json()["outcome"] == "unknown_video"
    assert WebhookEvent.objects.get().event_id == "fal:" + "r" * 196


@pytest.mark.django_db
def test_when_fals_keys_cannot_be_fetched_the_delivery_is_asked_to_come_back(
    client, fal, settings, rendering_segment, enqueued
):
    rendering_segment("req-1")
    settings.FAL_WEBHOOK_JWKS_URL = "https://127.0.0.1:9/.well-known/jwks.json"  # nothing listens
    answer = post(client, *signed(fal, "req-1"))
    assert answer.status_code == 503 and answer["Retry-After"] == "60"
    assert "could not fetch fal's webhook keys" in answer.json()["detail"]
    assert enqueued == [] and not WebhookEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_end_to_end_the_webhook_finishes_the_job_long_before_the_next_poll(
    fal, live_server, settings, user, no_caps, monkeypatch
):
    settings.PUBLIC_BASE_URL = live_server.url
    # Done a second after the submit: time enough for the pipeline to store the task id first, even on a
    # busy machine (a delivery before that would find no segment, and polling would have to finish).
    fal.reset(fal_config(latency=1.0))
    # Without the webhook the first poll after the submit is two minutes away.
    monkeypatch.setattr(poll_schedule, "POLL_MIN_SECONDS", 120.0)
    monkeypatch.setattr(poll_schedule, "POLL_MAX_SECONDS", 120.0)
    started = time.monotonic()
    job = services.video_job_render(job=fal_job(user))

    deadline = started + 30
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in {JobStatus.COMPLETED, JobStatus.FAILED}:
            break
        time.sleep(0.1)
    assert job.status == JobStatus.COMPLETED, job.error
    assert time.monotonic() - started < 20
    stats = fal.stats
    assert stats.submits == 1 and stats.webhooks_sent == 1 and stats.webhook_statuses == [200]
    assert stats.requests[0]["webhook_url"] == f"{live_server.url}{WEBHOOK_PATH}"
    assert stats.status_polls == 1  # the webhook's; the backoff's own poll never came
    event = WebhookEvent.objects.get()
    assert (event.provider, event.outcome) == ("fal", "advanced")
    finish(job)  # the waiting poller notices the segment settled and lets go of its thread
