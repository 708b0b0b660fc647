"""Deliveries to a real local receiver: Standard Webhooks signatures that verify, retries after a 5xx,
giving up after CALLBACK_MAX_ATTEMPTS, bounded time, no redirects, refused addresses, one delivery
per endpoint and event. Attempts run in the test's thread (services.delivery_attempt, what the task
calls); queued tasks are recorded by the `queued` fixture instead of run."""

from __future__ import annotations

import json
import socket
from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from callbacks import services
from callbacks.models import CallbackEvent, Delivery, DeliveryStatus, WebhookEndpoint
from jobs.events import JOB_STATUS, SEGMENT_STATE, publish_after_commit, segment_state
from jobs.models import JobStatus, SegmentStatus, VideoJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(make_job) -> VideoJob:
    job = make_job(short=True)
    VideoJob.objects.filter(id=job.id).update(status=JobStatus.COMPLETED, render_generation=1)
    job.refresh_from_db()
    return job


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """Call a service and run what it handed to on_commit (a test transaction never commits)."""

    def call(service, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return service(**kwargs)

    return call


def endpoint_for(user, url: str, **fields) -> WebhookEndpoint:
    return services.endpoint_create(owner=user, url=url, **fields)


def due_now(delivery: Delivery) -> None:
    """Skip the backoff wait (the retry's timer is what the `queued` fixture recorded)."""
    Delivery.objects.filter(id=delivery.id).update(next_attempt_at=timezone.now())


def test_a_delivery_is_signed_per_standard_webhooks(run, user, job, receiver, queued):
    endpoint = endpoint_for(user, receiver.url)
    [delivery] = run(services.job_event_record, job_id=job.id, status=JobStatus.COMPLETED)
    assert [(name, args) for _, name, args in queued] == [("callbacks.deliver", (delivery.id,))]

    delivery = run(services.delivery_attempt, delivery_id=delivery.id)

    [request] = receiver.requests
    assert request.path == "/hooks/sora"
    # The receiver's own check: the spec's reference implementation, with the secret shown at creation.
    payload = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert payload["type"] == "job.completed"
    assert payload["data"]["job"]["id"] == str(job.id) and payload["data"]["job"]["status"] == "completed"
    assert request.headers["webhook-id"] == delivery.event_id
    assert request.headers["content-type"] == "application/json"
    with pytest.raises(WebhookVerificationError):  # signed with another secret: refused
        Webhook(services.new_secret()).verify(request.body, request.headers)
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.next_attempt_at is None
    [attempt] = delivery.attempt_log.all()
    assert (attempt.number, attempt.status_code, attempt.error) == (1, 204, "")


def test_a_500_is_retried_with_backoff_then_succeeds(run, user, job, receiver, queued, settings):
    settings.CALLBACK_BACKOFF_SECONDS = 30
    receiver.statuses = [500, 200]
    endpoint_for(user, receiver.url)
    [delivery] = run(services.job_event_record, job_id=job.id, status=JobStatus.COMPLETED)

    before = timezone.now()
    delivery = run(services.delivery_attempt, delivery_id=delivery.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert timedelta(seconds=29) < delivery.next_attempt_at - before < timedelta(seconds=32)
    assert queued[-1] == (30.0, "callbacks.deliver", (delivery.id,))
    # Not yet due: a duplicate or early task sends nothing.
    assert run(services.delivery_attempt, delivery_id=delivery.id) is None
    assert len(receiver.requests) == 1

    due_now(delivery)
    delivery = run(services.delivery_attempt, delivery_id=delivery.id)
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert [(a.number, a.status_code) for a in delivery.attempt_log.all()] == [(1, 500), (2, 200)]
    # Every attempt carries the same event id and body, freshly signed.
    first, second = receiver.requests
    assert first.body == second.body and first.headers["webhook-id"] == second.headers["webhook-id"]


def test_gives_up_after_max_attempts(run, user, job, receiver, queued, settings):
    settings.CALLBACK_MAX_ATTEMPTS = 3
    receiver.statuses = [503]
    endpoint_for(user, receiver.url)
    [delivery] = run(services.job_event_record, job_id=job.id, status=JobStatus.COMPLETED)
    for _ in range(3):
        due_now(delivery)
        delivery = run(services.delivery_attempt, delivery_id=delivery.id)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 3, None)
    assert delivery.finished_at is not None and delivery.last_error == "HTTP 503"
    due_now(delivery)
    assert run(services.delivery_attempt, delivery_id=delivery.id) is None
    assert len(receiver.requests) == 3
    # Backoff doubles between attempts and is capped.
    assert [delay for delay, _, _ in queued[1:]] == [0.05, 0.1]
    settings.CALLBACK_BACKOFF_SECONDS, settings.CALLBACK_BACKOFF_MAX_SECONDS = 10, 60
    assert [services.backoff_seconds(n) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 60, 60]


def test_a_slow_receiver_is_cut_off_and_retried(run, user, job, receiver, queued, settings):
    settings.CALLBACK_TIMEOUT_SECONDS = 0.3
    receiver.delay = 2.0
    endpoint_for(user, receiver.url)
    [delivery] = run(services.job_event_record, job_id=job.id, status=JobStatus.COMPLETED)
    delivery = run(services.delivery_attempt, delivery_id=delivery.id)
    assert delivery.status == DeliveryStatus.PENDING and delivery.last_status_code is None
    assert "timed out" in delivery.last_error.lower()


def test_redirects_are_not_followed(run, user, job, receiver, queued):
    receiver.statuses = [302]
    receiver.location = "http://127.0.0.1:1/elsewhere"
    endpoint_for(user, receiver.url)
    [delivery] = run(services.job_event_record, job_id=job.id, status=JobStatus.COMPLETED)
    delivery = run(services.delivery_attempt, delivery_id=delivery.id)
    assert delivery.status == DeliveryStatus.PENDING and delivery.last_status_code == 302
    assert "redirects are not followed" in delivery.last_error
    assert len(receiver.requests) == 1


def test_private_addresses_are_refused_at_send_time(run, user, job, receiver, queued, settings, monkeypatch):
    # Registered while allowed (or the name pointed elsewhere then); checked again when sending.
    endpoint_for(user, receiver.url)
    named = endpoint_for(user, "https://hooks.example.com/sora")
    settings.ALLOW_PRIVATE_CALLBACKS = False
    real_getaddrinfo = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        if host == "hooks.example.com":  # a DNS answer that now points inside the network
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    deliveries = run(services.job_event_record, job_id=job.id, status=JobStatus.COMPLETED)
    results = {d.endpoint_id: run(services.delivery_attempt, delivery_id=d.id) for d in deliveries}
    assert receiver.requests == []
    for delivery in results.values():
        # Permanent: given up at once, not retried.
        assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 1
        assert "private, loopback" in delivery.last_error
    assert "10.0.0.7" in results[named.id].last_error


def test_one_delivery_per_endpoint_and_event(run, user, job, receiver, queued):
    endpoint_for(user, receiver.url)
    first = run(services.job_event_record, job_id=job.id, status=JobStatus.COMPLETED)
    again = run(services.job_event_record, job_id=job.id, status=JobStatus.COMPLETED)
    assert len(first) == 1 and again == []
    assert Delivery.objects.count() == 1 and CallbackEvent.objects.count() == 1
    # A new render of the job is a new event.
    VideoJob.objects.filter(id=job.id).update(render_generation=2)
    assert len(run(services.job_event_record, job_id=job.id, status=JobStatus.COMPLETED)) == 1


def test_event_types_and_paused_endpoints_filter(run, user, job, receiver, queued):
    failures = endpoint_for(user, receiver.url, event_types=["job.failed"])
    endpoint_for(user, receiver.url, is_active=False)
    assert run(services.job_event_record, job_id=job.id, status=JobStatus.COMPLETED) == []
    [delivery] = run(services.job_event_record, job_id=job.id, status=JobStatus.FAILED)
    assert delivery.endpoint_id == failures.id


def test_other_users_endpoints_get_nothing(run, user, other_user, job, receiver, queued):
    endpoint_for(other_user, receiver.url)
    assert run(services.job_event_record, job_id=job.id, status=JobStatus.COMPLETED) == []


def test_committed_job_events_become_deliveries(
    user, job, receiver, queued, django_capture_on_commit_callbacks
):
    endpoint_for(user, receiver.url)
    segment = job.segments.get(index=0)
    segment.status = SegmentStatus.COMPLETED
    segment.save()
    with django_capture_on_commit_callbacks(execute=True):
        publish_after_commit(job.id, SEGMENT_STATE, segment_state(segment))
        publish_after_commit(job.id, JOB_STATUS, {"status": JobStatus.COMPLETED})
        publish_after_commit(job.id, JOB_STATUS, {"status": JobStatus.RENDERING})  # not subscribed
    types = sorted(Delivery.objects.values_list("event__type", flat=True))
    assert types == ["job.completed", "segment.completed"]
    payload = CallbackEvent.objects.get(type="segment.completed").payload
    assert payload["data"]["segment"]["index"] == 0 and payload["data"]["job"]["id"] == str(job.id)


def test_a_jobs_callback_catches_up_on_what_already_happened(
    run, user, job, receiver, queued, django_capture_on_commit_callbacks
):
    # The job finished (one segment completed) before its callback row was committed: the listener
    # saw no endpoint then. Registering reports both, under the ids the listener would have used.
    segment = job.segments.get(index=0)
    segment.status = SegmentStatus.COMPLETED
    segment.save()
    with django_capture_on_commit_callbacks(execute=True):
        endpoint = endpoint_for(user, receiver.url, job=job)
    events = {d.event.type: d.event_id for d in Delivery.objects.filter(endpoint=endpoint)}
    assert set(events) == {"job.completed", "segment.completed"}
    # The listener reporting the same transitions later adds nothing.
    assert run(services.segment_event_record, job_id=job.id, segment=segment_state(segment)) == []
    assert run(services.job_event_record, job_id=job.id, status=JobStatus.COMPLETED) == []


def test_the_payload_names_absolute_media_urls(run, user, job, receiver, queued, settings):
    settings.PUBLIC_BASE_URL = "https://videos.example.com/"
    endpoint_for(user, receiver.url)
    VideoJob.objects.filter(id=job.id).update(output_video=f"jobs/{job.id}/video.mp4")
    [delivery] = run(services.job_event_record, job_id=job.id, status=JobStatus.COMPLETED)
    output = delivery.event.payload["data"]["job"]["output_url"]
    assert output.startswith("https://videos.example.com/") and output.endswith("video.mp4")
    json.dumps(delivery.event.payload)  # stored as sent
