"""Reads: a user's endpoints and deliveries (always scoped to the user), and where an event goes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from .models import Delivery, DeliveryStatus, WebhookEndpoint


def endpoint_list(*, user: Any, job_id: uuid.UUID | None = None) -> QuerySet[WebhookEndpoint]:
    endpoints = WebhookEndpoint.objects.filter(owner=user)
    return endpoints.filter(job_id=job_id) if job_id is not None else endpoints


def endpoint_get(*, user: Any, endpoint_id: uuid.UUID) -> WebhookEndpoint | None:
    return endpoint_list(user=user).filter(id=endpoint_id).first()


def delivery_list(
    *, user: Any, endpoint_id: uuid.UUID | None = None, status: str | None = None
) -> QuerySet[Delivery]:
    deliveries = Delivery.objects.filter(endpoint__owner=user).select_related("event", "endpoint")
    if endpoint_id is not None:
        deliveries = deliveries.filter(endpoint_id=endpoint_id)
    if status:
        deliveries = deliveries.filter(status=status)
    return deliveries


def delivery_get(*, user: Any, delivery_id: int) -> Delivery | None:
    return delivery_list(user=user).prefetch_related("attempt_log").filter(id=delivery_id).first()


def endpoints_for_event(*, owner_id: int, job_id: uuid.UUID | str, event_type: str) -> list[WebhookEndpoint]:
    """The owner's account-wide endpoints and the job's own callback that want `event_type`."""
    candidates = WebhookEndpoint.objects.filter(owner_id=owner_id, is_active=True).filter(
        Q(job__isnull=True) | Q(job_id=job_id)
    )
    return [endpoint for endpoint in candidates if endpoint.wants(event_type)]


def deliveries_overdue(*, cutoff: datetime) -> list[int]:
    """Pending deliveries whose attempt was due before `cutoff`: their task was lost (worker died)."""
    return list(
        Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=cutoff).values_list(
            "id", flat=True
        )[:1000]
    )
