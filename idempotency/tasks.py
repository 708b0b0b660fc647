"""The periodic purge of expired keys (celery beat; `manage.py purge_idempotency_keys` by hand)."""

from __future__ import annotations

from celery import shared_task

from . import services

PURGE_EXPIRED = "idempotency.purge_expired"


@shared_task(name=PURGE_EXPIRED, acks_late=True)
def purge_expired() -> int:
    return services.idempotency_key_purge()
