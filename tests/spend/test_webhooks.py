"""POST /webhooks/sora: Standard Webhooks signatures, replays, and a webhook finishing a segment long
before the next poll would have."""

from __future__ import annotations

import json
import time

import pytest

from jobs import leases, render_state, services
from jobs.models import JobStatus, SegmentStatus, WebhookEvent
from rendering import transport, webhooks
from rendering.fake_api.server import sign_webhook

from .conftest import finish, sora_job

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="


def test_the_standard_webhooks_reference_vector():
    # The example from the Standard Webhooks specification and its reference libraries.
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert webhooks.sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": f"v1,bm90IGl0 {expected} v2,whatever",  # any one v1 match will do
    }
    webhooks.verify(SECRET, headers, body, now=1614265330 + 299)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"secret": OTHER_SECRET}, "no webhook-signature matches"),
        ({"body": b'{"test": 2432232315}'}, "no webhook-signature matches"),
        ({"webhook-id": "msg_other"}, "no webhook-signature matches"),
        ({"now": 1614265330 + 301}, "more than 300 s old"),
        ({"now": 1614265330 - 301}, "more than 300 s in the future"),
        ({"webhook-signature": ""}, "missing"),
        ({"webhook-timestamp": "yesterday"}, "not a Unix time"),
    ],
)
def test_a_bad_or_stale_signature_is_refused(change, reason):
    body = b'{"test": 2432232314}'
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": webhooks.sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
    }
    now = change.pop("now", 1614265330)
    secret = change.pop("secret", SECRET)
    body = change.pop("body", body)
    headers.update(change)
    with pytest.raises(webhooks.WebhookError) as refused:
        webhooks.verify(secret, headers, body, now=now)
    assert reason in refused.value.message


def event(video_id: str, kind: str = "video.completed", event_id: str = "evt_1") -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": kind,
            "created_at": int(time.time()),
            "data": {"id": video_id},
        }
    ).encode()


def post(client, body: bytes, *, secret: str = SECRET, msg_id: str = "evt_1", timestamp: int | None = None):
    timestamp = int(time.time()) if timestamp is None else timestamp
    return client.post(
        "/webhooks/sora",
        data=body,
        content_type="application/json",
        headers={
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign_webhook(secret, msg_id, timestamp, body),
        },
    )


@pytest.fixture
def rendering_segment(settings, user, no_caps, django_capture_on_commit_callbacks):
    """A sora segment that is rendering with provider task video_abc (nothing really runs)."""
    settings.SORA_WEBHOOK_SECRET = SECRET
    with django_capture_on_commit_callbacks(execute=False):
        job = services.video_job_render(job=sora_job(user))
    segment = render_state.segment_claim(
        segment_id=job.segments.get().id, generation=job.render_generation, token="test-run"
    )
    render_state.segment_set_provider_task(
        segment_id=segment.id, task_id="video_abc", provider_status="queued"
    )
    leases.segment_wait(segment.id, "test-run", 15.0)  # waiting between polls, as a poll chain leaves it
    return segment


@pytest.fixture
def enqueued(monkeypatch):
    calls: list[tuple] = []
    monkeypatch.setattr(transport, "enqueue", lambda name, *args, **kwargs: calls.append((name, args)))
    return calls


@pytest.mark.django_db
def test_a_signed_completion_runs_the_segments_next_step_once(
    client, rendering_segment, enqueued, django_capture_on_commit_callbacks
):
    segment = rendering_segment
    with django_capture_on_commit_callbacks(execute=True):
        answer = post(client, event("video_abc"))
    assert answer.status_code == 200 and answer.json() == {"received": True, "outcome": "advanced"}
    assert enqueued == [
        ("rendering.render_segment", (str(segment.job_id), segment.id, segment.job.render_generation))
    ]
    # The same delivery again (a retry or a replay): recorded once, nothing more happens.
    with django_capture_on_commit_callbacks(execute=True):
        again = post(client, event("video_abc"))
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert len(enqueued) == 1
    recorded = WebhookEvent.objects.get()
    assert (recorded.event_id, recorded.type, recorded.segment_id, recorded.outcome) == (
        "evt_1",
        "video.completed",
        segment.id,
        "advanced",
    )


@pytest.mark.django_db
def test_a_burst_of_deliveries_for_one_task_starts_one_step(
    client, rendering_segment, enqueued, django_capture_on_commit_callbacks
):
    # Ten different deliveries (different ids, as a provider's duplicate sends or several subscriptions
    # would make) for the one task the segment waits on: one step is started, not one poll chain each.
    with django_capture_on_commit_callbacks(execute=True):
        outcomes = [
            post(client, event("video_abc", event_id=f"evt_{n}"), msg_id=f"evt_{n}").json()["outcome"]
            for n in range(10)
        ]
    assert outcomes == ["advanced"] + ["in_progress"] * 9
    assert len(enqueued) == 1
    rendering_segment.refresh_from_db()
    # The step the first delivery started holds the segment, and is told to poll again when it ends.
    assert not rendering_segment.lease_waiting and rendering_segment.lease_poked


@pytest.mark.django_db
def test_a_late_delivery_for_a_settled_segment_changes_nothing(
    client, rendering_segment, enqueued, django_capture_on_commit_callbacks
):
    render_state.segment_fail(segment_id=rendering_segment.id, error="content_policy_violation: refused")
    with django_capture_on_commit_callbacks(execute=True):
        answer = post(client, event("video_abc"))
    assert answer.json()["outcome"] == "not_rendering" and enqueued == []
    rendering_segment.refresh_from_db()
    assert rendering_segment.status == SegmentStatus.FAILED


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "detail"),
    [
        ({"secret": OTHER_SECRET}, "no webhook-signature matches this body"),
        ({"timestamp": int(time.time()) - 301}, "webhook-timestamp is more than 300 s old"),
    ],
)
def test_a_forged_or_stale_delivery_gets_400_and_changes_nothing(
    client, rendering_segment, enqueued, django_capture_on_commit_callbacks, kwargs, detail
):
    with django_capture_on_commit_callbacks(execute=True):
        answer = post(client, event("video_abc"), **kwargs)
    assert answer.status_code == 400 and answer.json() == {"detail": detail}
    assert enqueued == [] and not WebhookEvent.objects.exists()
    rendering_segment.refresh_from_db()
    assert (
        rendering_segment.status == SegmentStatus.RENDERING
        and rendering_segment.provider_task_id == "video_abc"
    )


@pytest.mark.django_db
def test_other_deliveries_are_acknowledged_and_recorded_only(
    client, rendering_segment, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        unknown = post(client, event("video_nobody", event_id="evt_2"), msg_id="evt_2")
        other = post(client, event("video_abc", kind="video.created", event_id="evt_3"), msg_id="evt_3")
    assert unknown.json()["outcome"] == "unknown_video" and other.json()["outcome"] == "ignored_type"
    assert enqueued == [] and WebhookEvent.objects.count() == 2
    assert client.get("/webhooks/sora").status_code == 405
    not_json = b"not json"
    assert post(client, not_json, msg_id="evt_4").json() == {"detail": "the body is not JSON"}


@pytest.mark.django_db
def test_without_a_secret_webhooks_are_off(client, settings):
    settings.SORA_WEBHOOK_SECRET = ""
    answer = post(client, event("video_abc"))
    assert answer.status_code == 404 and "SORA_WEBHOOK_SECRET" in answer.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_end_to_end_the_webhook_finishes_the_job_long_before_the_next_poll(
    fake_api, live_server, settings, user, no_caps
):
    settings.SORA_WEBHOOK_SECRET = SECRET
    fake_api.config.webhook_url = f"{live_server.url}/webhooks/sora"
    fake_api.config.webhook_secret = SECRET
    fake_api.config.poll_after_ms = 120_000  # without the webhook the next poll is two minutes away
    job = services.video_job_render(job=sora_job(user))

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in {JobStatus.COMPLETED, JobStatus.FAILED}:
            break
        time.sleep(0.1)
    elapsed = 30 - (deadline - time.monotonic())
    assert job.status == JobStatus.COMPLETED, job.error
    assert elapsed < 15
    stats = fake_api.stats
    assert stats.webhooks_sent == 1 and stats.webhook_statuses == [200] and stats.creates == 1
    assert stats.polls <= 2  # the first poll (before completion) and the webhook's
    assert WebhookEvent.objects.get().outcome == "advanced"
    finish(job)  # the waiting poller notices the segment settled and lets go of its thread


@pytest.mark.django_db
def test_a_delivery_id_too_long_to_record_whole_is_refused_not_cut(client, rendering_segment):
    long_id = "msg_" + "x" * 300  # two such ids cut to 200 characters would collide
    answer = post(client, event("video_abc"), msg_id=long_id)
    assert answer.status_code == 400 and "longer than the 200 characters" in answer.json()["detail"]
    assert not WebhookEvent.objects.exists()
