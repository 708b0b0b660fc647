"""The `callback_url` field of a job's create request (registered with jobs.api.extensions): checked
before the job is stored, then stored as the job's own endpoint, whose secret the 201 body shows once."""

from __future__ import annotations

from typing import Any

from jobs.api.extensions import CreateExtension
from jobs.models import VideoJob

from .. import services
from .serializers import EndpointCreatedSerializer

FIELD = "callback_url"


def check(value: Any) -> None:
    services.check_url(value, field=FIELD)


def attach(*, owner: Any, job: VideoJob, value: str) -> dict[str, Any]:
    endpoint = services.endpoint_create(owner=owner, url=value, job=job, url_field=FIELD)
    return {"callback": EndpointCreatedSerializer(endpoint).data}


EXTENSION = CreateExtension(field=FIELD, check=check, attach=attach)
