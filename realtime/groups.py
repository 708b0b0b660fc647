"""Channel-layer group names, in one place so producers and the consumer always agree."""

from __future__ import annotations

import uuid


def job_group(job_id: uuid.UUID | str) -> str:
    # Group names allow only ASCII alphanumerics, hyphens, underscores and periods.
    return f"video-job.{job_id}"
