"""Celery tasks of outgoing webhooks; they take ids and do nothing when nothing is due."""

from __future__ import annotations

from celery import shared_task

from rendering.transport import DELIVER_WEBHOOK, SWEEP_WEBHOOKS

from . import services


@shared_task(name=DELIVER_WEBHOOK, acks_late=True, reject_on_worker_lost=True)
def deliver(delivery_id: int) -> None:
    services.delivery_attempt(delivery_id=delivery_id)


@shared_task(name=SWEEP_WEBHOOKS, acks_late=True)
def sweep() -> int:
    return services.deliveries_sweep()
