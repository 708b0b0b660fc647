"""Duplicate delivery tasks racing on a real PostgreSQL server: one attempt is sent, the others find
nothing due. Run by the service-backed pass."""

from __future__ import annotations

import threading
from typing import Any

from django.db import connections

from callbacks import services
from callbacks.models import Delivery, DeliveryStatus
from jobs.models import JobStatus, VideoJob
from tests.factories import VideoJobFactory
from tests.support.postgres import POSTGRES_ONLY

pytestmark = POSTGRES_ONLY

COPIES = 6


def test_duplicate_tasks_send_one_attempt(user, receiver, monkeypatch):
    monkeypatch.setattr(services, "enqueue", lambda *args: None)  # the race below plays the tasks
    job = VideoJobFactory(owner=user, short=True)
    VideoJob.objects.filter(id=job.id).update(status=JobStatus.COMPLETED)
    services.endpoint_create(owner=user, url=receiver.url)
    [delivery] = services.job_event_record(job_id=job.id, status=JobStatus.COMPLETED)

    barrier = threading.Barrier(COPIES)
    results: list[Any] = [None] * COPIES

    def task(slot: int) -> None:
        barrier.wait()
        try:
            results[slot] = services.delivery_attempt(delivery_id=delivery.id)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=task, args=(i,)) for i in range(COPIES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(r is not None for r in results) == 1, results
    assert len(receiver.requests) == 1
    delivery = Delivery.objects.get(id=delivery.id)
    assert (delivery.status, delivery.attempts, delivery.attempt_log.count()) == (
        DeliveryStatus.SUCCEEDED,
        1,
        1,
    )
