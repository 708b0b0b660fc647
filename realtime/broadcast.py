"""Publish job events to the job's channel group after the surrounding transaction commits.

Services call `publish_after_commit`; a consumer (or nobody) receives the event. Events never carry state
that the database has not committed, and a broadcast failure never breaks a state change.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from .groups import job_group

log = logging.getLogger(__name__)

FRAME_PROGRESS = "frame-progress"
JOB_ASSEMBLY = "job-assembly"
JOB_STATUS = "job-status"


def publish(job_id: uuid.UUID | str, event: str, payload: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "job.event", "event": event, "job_id": str(job_id), "data": payload}
    try:
        async_to_sync(layer.group_send)(job_group(job_id), message)
    except Exception:  # the event is advisory: the database already holds the truth
        log.warning("could not publish %s for job %s", event, job_id, exc_info=True)


def publish_after_commit(job_id: uuid.UUID | str, event: str, payload: dict[str, Any]) -> None:
    transaction.on_commit(lambda: publish(job_id, event, payload))
