"""Celery tasks: thin wrappers over rendering.pipeline. They take ids, are idempotent, acknowledge late,
and retry only transient provider errors, with backoff that honours the provider's retry-after."""

from __future__ import annotations

import logging
import random
import time

from celery import shared_task
from django.conf import settings

from jobs import services

from . import pipeline
from .providers.base import ProviderError

log = logging.getLogger(__name__)


def backoff_seconds(attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter (1, 2, 4 ... 60 s), never sooner than the provider asked."""
    base = min(60.0, 2.0**attempt) * (0.75 + random.random() / 2)
    return max(base, retry_after or 0.0)


@shared_task(
    bind=True,
    name="rendering.render_segment",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,  # bounded below by TRANSIENT_RETRIES, so the segment is failed, not the task lost
)
def render_segment(self, job_id: str, segment_id: int, generation: int) -> str:
    try:
        return pipeline.render_segment(segment_id=segment_id, generation=generation)
    except ProviderError as exc:  # transient: the pipeline records permanent errors itself
        if self.request.retries + 1 >= settings.TRANSIENT_RETRIES:
            services.segment_fail(
                segment_id=segment_id, error=f"gave up after {self.request.retries + 1} tries: {exc.message}"
            )
            return "failed"
        countdown = backoff_seconds(self.request.retries, exc.retry_after)
        if self.request.is_eager:
            # In-process runs retry synchronously; wait here so backoff still happens.
            time.sleep(countdown)
        raise self.retry(exc=exc, countdown=countdown) from exc
    except Exception as exc:  # never let one segment break the fan-out: record it and move on
        log.exception("render_segment %s of job %s crashed", segment_id, job_id)
        services.segment_fail(segment_id=segment_id, error=f"internal error: {type(exc).__name__}: {exc}")
        return "failed"


@shared_task(
    bind=True, name="rendering.assemble_job", acks_late=True, reject_on_worker_lost=True, max_retries=3
)
def assemble_job(self, job_id: str, generation: int) -> str:
    try:
        return pipeline.assemble_job(job_id=job_id, generation=generation)
    except Exception as exc:
        log.exception("assemble_job %s crashed", job_id)
        services.job_fail(job_id=job_id, error=f"internal error during assembly: {type(exc).__name__}: {exc}")
        return "failed"
