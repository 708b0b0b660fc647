"""Writes: endpoints (create, change, delete), events and their deliveries, and each delivery attempt.

Events are recorded from committed state only (the listener runs in jobs' on_commit hand-over), and a
delivery's task is queued only after the delivery's own row commits. An attempt claims its delivery
with a conditional UPDATE that pushes `next_attempt_at` ahead by a lease, sends outside any transaction,
then records the outcome: success, a retry after exponential backoff, or giving up.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs.errors import InvalidInput
from jobs.events import segment_state
from jobs.models import SegmentStatus, VideoJob
from rendering.transport import DELIVER_WEBHOOK, enqueue, enqueue_in

from . import selectors
from .addresses import url_problems
from .events import (
    JOB_EVENT_TYPES,
    envelope,
    job_event_id,
    job_summary,
    segment_data,
    segment_event_id,
)
from .models import CallbackEvent, Delivery, DeliveryAttempt, DeliveryStatus, EventType, WebhookEndpoint
from .sender import SendResult, event_body, post_event, signed_headers

# --- Endpoints -----------------------------------------------------------------------------------------


def new_secret() -> str:
    """A Standard Webhooks signing secret: "whsec_" and a base64 key of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def check_url(url: str, *, field: str = "url") -> None:
    problems = url_problems(url)
    if problems:
        raise InvalidInput({field: problems})


def check_event_types(event_types: Iterable[str], *, field: str = "event_types") -> list[str]:
    known = set(EventType.values)
    unknown = sorted(set(event_types) - known)
    if unknown:
        raise InvalidInput(
            {field: [f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}."]}
        )
    return sorted(set(event_types))


def endpoint_create(
    *,
    owner: Any,
    url: str,
    description: str = "",
    event_types: Iterable[str] = (),
    is_active: bool = True,
    job: VideoJob | None = None,
    url_field: str = "url",
) -> WebhookEndpoint:
    check_url(url, field=url_field)
    endpoint = WebhookEndpoint.objects.create(
        owner=owner,
        job=job,
        url=url,
        secret=new_secret(),
        description=description,
        event_types=check_event_types(event_types),
        is_active=is_active,
    )
    if job is not None:
        # The job was queued before this row existed: whatever it already did is reported now (same
        # event ids as the listener's, so nothing is sent twice).
        transaction.on_commit(lambda: job_catch_up(job_id=job.id))
    return endpoint


def endpoint_update(*, endpoint: WebhookEndpoint, **fields: Any) -> WebhookEndpoint:
    allowed = {"url", "description", "event_types", "is_active"}
    if set(fields) - allowed:
        raise InvalidInput({name: ["cannot be changed."] for name in sorted(set(fields) - allowed)})
    if "url" in fields:
        check_url(fields["url"])
    if "event_types" in fields:
        fields["event_types"] = check_event_types(fields["event_types"])
    for name, value in fields.items():
        setattr(endpoint, name, value)
    endpoint.save(update_fields=list(fields) or None)
    return endpoint


def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    endpoint.delete()  # its deliveries go with it; a running attempt finds its row gone and stops


# --- Events --------------------------------------------------------------------------------------------


def event_record(*, job: VideoJob, event_type: str, event_id: str, data: dict[str, Any]) -> list[Delivery]:
    """Record one event for every endpoint that wants it (once per endpoint) and queue the new
    deliveries. Nothing is stored when nobody listens."""
    endpoints = selectors.endpoints_for_event(owner_id=job.owner_id, job_id=job.id, event_type=event_type)
    if not endpoints:
        return []
    now = timezone.now()
    created: list[Delivery] = []
    with transaction.atomic():
        event, _ = CallbackEvent.objects.get_or_create(
            id=event_id, defaults={"type": event_type, "job": job, "payload": envelope(event_type, data)}
        )
        for endpoint in endpoints:
            delivery, new = Delivery.objects.get_or_create(
                endpoint=endpoint, event=event, defaults={"next_attempt_at": now}
            )
            if new:
                created.append(delivery)
        for delivery in created:
            transaction.on_commit(lambda d=delivery.id: enqueue(DELIVER_WEBHOOK, d))
    return created


def job_event_record(*, job_id: uuid.UUID | str, status: str) -> list[Delivery]:
    event_type = JOB_EVENT_TYPES.get(status)
    job = VideoJob.objects.filter(id=job_id).first()
    if event_type is None or job is None:
        return []
    event_id = job_event_id(job.id, event_type, job.render_generation)
    return event_record(job=job, event_type=event_type, event_id=event_id, data={"job": job_summary(job)})


def segment_event_record(*, job_id: uuid.UUID | str, segment: dict[str, Any]) -> list[Delivery]:
    job = VideoJob.objects.filter(id=job_id).first()
    if job is None:
        return []
    event_id = segment_event_id(job.id, segment["index"], segment.get("updated_at"))
    return event_record(
        job=job, event_type=EventType.SEGMENT_COMPLETED, event_id=event_id, data=segment_data(job, segment)
    )


def job_catch_up(*, job_id: uuid.UUID | str) -> None:
    """Report what a job already did: its completed segments and, if it has finished, its outcome."""
    job = VideoJob.objects.filter(id=job_id).first()
    if job is None:
        return
    for segment in job.segments.filter(status=SegmentStatus.COMPLETED).order_by("index"):
        segment_event_record(job_id=job.id, segment=segment_state(segment))
    if job.status in JOB_EVENT_TYPES:
        job_event_record(job_id=job.id, status=job.status)


# --- Deliveries ----------------------------------------------------------------------------------------


def backoff_seconds(attempts: int) -> float:
    """The wait after the `attempts`-th failed attempt: base x 2^(attempts-1), capped."""
    return min(
        settings.CALLBACK_BACKOFF_SECONDS * 2 ** max(0, attempts - 1), settings.CALLBACK_BACKOFF_MAX_SECONDS
    )


def _lease() -> timedelta:
    # Longer than one attempt can take (connect + read timeouts), so the claim outlives the send.
    return timedelta(seconds=2 * settings.CALLBACK_TIMEOUT_SECONDS + 30)


def delivery_attempt(*, delivery_id: int) -> Delivery | None:
    """Make the attempt that is due, if one is; a duplicate or early task finds nothing due."""
    now = timezone.now()
    claimed = Delivery.objects.filter(
        id=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + _lease())
    if claimed != 1:
        return None
    delivery = Delivery.objects.select_related("event", "endpoint").get(id=delivery_id)
    started = timezone.now()
    if not delivery.endpoint.is_active:
        result = SendResult(None, 0, error="the endpoint is disabled", permanent=True)
    else:
        body = event_body(delivery.event.payload)
        headers = signed_headers(
            secret=delivery.endpoint.secret, event_id=delivery.event_id, body=body, sent_at=started
        )
        result = post_event(url=delivery.endpoint.url, headers=headers, body=body)
    return _record_attempt(delivery_id, started, result)


def _record_attempt(delivery_id: int, started: Any, result: SendResult) -> Delivery | None:
    with transaction.atomic():
        delivery = Delivery.objects.select_for_update().filter(id=delivery_id).first()
        if delivery is None or delivery.status != DeliveryStatus.PENDING:
            return delivery  # deleted with its endpoint, or settled by an operator meanwhile
        number = delivery.attempt_log.count() + 1
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=started,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error,
            response_excerpt=result.excerpt,
        )
        delivery.attempts += 1
        delivery.last_status_code = result.status_code
        delivery.last_error = result.error
        now = timezone.now()
        if result.ok or result.permanent or delivery.attempts >= settings.CALLBACK_MAX_ATTEMPTS:
            delivery.status = DeliveryStatus.SUCCEEDED if result.ok else DeliveryStatus.FAILED
            delivery.finished_at = now
            delivery.next_attempt_at = None
        else:
            delay = backoff_seconds(delivery.attempts)
            delivery.next_attempt_at = now + timedelta(seconds=delay)
            transaction.on_commit(lambda: enqueue_in(delay, DELIVER_WEBHOOK, delivery_id))
        delivery.save()
    return delivery


def delivery_redeliver(*, delivery: Delivery) -> Delivery:
    """Send a delivery again now, with a fresh round of attempts (the admin's and the API's action)."""
    with transaction.atomic():
        Delivery.objects.filter(id=delivery.id).update(
            status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=timezone.now(), finished_at=None
        )
        transaction.on_commit(lambda: enqueue(DELIVER_WEBHOOK, delivery.id))
    delivery.refresh_from_db()
    return delivery


def deliveries_sweep() -> int:
    """Queue again the deliveries whose attempt is overdue (their task was lost); returns how many."""
    cutoff = timezone.now() - timedelta(seconds=settings.CALLBACK_SWEEP_SECONDS)
    overdue = selectors.deliveries_overdue(cutoff=cutoff)
    for delivery_id in overdue:
        enqueue(DELIVER_WEBHOOK, delivery_id)
    return len(overdue)
