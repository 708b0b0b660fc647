"""The whole state of one job as the socket sends it on connect, so a late joiner or a reconnect starts
from the truth and then applies events. The shape is jobs.events.job_state: the same segment shape as
the events and the REST API, so a browser applies all three with one function.
"""

from __future__ import annotations

import uuid
from typing import Any

from jobs.events import job_state
from jobs.selectors import video_job_detail


def job_snapshot(*, user: Any, job_id: uuid.UUID | str) -> dict[str, Any] | None:
    """The job's state if `user` may see it (owner or staff), else None."""
    job = video_job_detail(user=user, job_id=job_id)
    return None if job is None else job_state(job)
