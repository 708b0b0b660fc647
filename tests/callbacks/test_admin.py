"""The operators' view of outgoing webhooks and idempotency keys: pages render, deliveries are
read-only, "redeliver" queues a delivery again, and secrets are never shown."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from callbacks import services
from callbacks.models import CallbackEvent, Delivery, DeliveryAttempt, DeliveryStatus, WebhookEndpoint
from idempotency.models import IdempotencyKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def delivery(user, make_job) -> Delivery:
    endpoint = services.endpoint_create(owner=user, url="https://hooks.example.com/sora")
    event = CallbackEvent.objects.create(
        id="msg_admin", type="job.failed", job=make_job(), payload={"type": "job.failed"}
    )
    delivery = Delivery.objects.create(
        endpoint=endpoint, event=event, status=DeliveryStatus.FAILED, attempts=3, last_error="HTTP 500"
    )
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=1,
        started_at=timezone.now(),
        status_code=500,
        latency_ms=12,
        error="HTTP 500",
    )
    return delivery


def test_pages_render(admin_client, delivery, user):
    IdempotencyKey.objects.create(
        owner=user, key="k1", fingerprint="0" * 64, method="POST", path="/api/video-jobs/",
        locked_at=timezone.now(), expires_at=timezone.now(),
    )  # fmt: skip
    pages = [
        reverse("admin:callbacks_delivery_changelist"),
        reverse("admin:callbacks_delivery_change", args=[delivery.id]),
        reverse("admin:callbacks_webhookendpoint_changelist"),
        reverse("admin:callbacks_webhookendpoint_change", args=[delivery.endpoint_id]),
        reverse("admin:callbacks_callbackevent_changelist"),
        reverse("admin:callbacks_callbackevent_change", args=[delivery.event_id]),
        reverse("admin:idempotency_idempotencykey_changelist"),
    ]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
        assert delivery.endpoint.secret not in response.content.decode(), page
    detail = admin_client.get(reverse("admin:callbacks_delivery_change", args=[delivery.id])).content.decode()
    assert "HTTP 500" in detail and "12" in detail  # the attempt's error and latency


def test_redeliver_action(admin_client, delivery, django_capture_on_commit_callbacks, monkeypatch):
    queued = []
    monkeypatch.setattr(services, "enqueue", lambda name, *args: queued.append((name, args)))
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:callbacks_delivery_changelist"),
            {"action": "redeliver", "_selected_action": [delivery.id]},
            follow=True,
        )
    assert response.status_code == 200
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 0)
    assert queued == [("callbacks.deliver", (delivery.id,))]


def test_deliveries_cannot_be_edited(admin_client, delivery):
    url = reverse("admin:callbacks_delivery_change", args=[delivery.id])
    admin_client.post(url, {"status": "succeeded"})
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert admin_client.get(reverse("admin:callbacks_delivery_add")).status_code == 403


def test_an_operator_can_pause_an_endpoint_but_not_point_it_at_the_network(admin_client, delivery, settings):
    settings.ALLOW_PRIVATE_CALLBACKS = False
    endpoint = delivery.endpoint
    url = reverse("admin:callbacks_webhookendpoint_change", args=[endpoint.id])
    form = {"url": endpoint.url, "description": "", "event_types": "[]", "is_active": ""}
    assert admin_client.post(url, form).status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.is_active is False
    response = admin_client.post(url, {**form, "url": "https://10.0.0.1/x"})
    assert response.status_code == 200 and "private" in response.content.decode()
    assert WebhookEndpoint.objects.get(id=endpoint.id).url == "https://hooks.example.com/sora"
