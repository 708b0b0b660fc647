"""Concurrent retries with one Idempotency-Key on a real PostgreSQL server: exactly one job, exactly one
render, every other answer a replay of it or a 409 while it runs. Run by the service-backed pass."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from idempotency.decorators import REPLAYED_HEADER
from idempotency.models import IdempotencyKey, KeyState
from jobs import services
from jobs.errors import IllegalTransition
from jobs.models import JobStatus, VideoJob
from tests.api.conftest import client_for, job_url
from tests.factories import VideoJobFactory
from tests.support.postgres import POSTGRES_ONLY
from tests.support.race import race

pytestmark = POSTGRES_ONLY

RETRIES = 8
KEY = "retry-storm-0001"


@pytest.fixture(autouse=True)
def _on_postgres(settings) -> Iterator[None]:
    assert connection.vendor == "postgresql", "run with DATABASE_URL set to a PostgreSQL server"
    settings.TASK_RUNNER = "inprocess"
    settings.SECURE_SSL_REDIRECT = False
    yield
    for job in VideoJob.objects.filter(
        status__in=[JobStatus.QUEUED, JobStatus.RENDERING, JobStatus.ASSEMBLING]
    ):
        with contextlib.suppress(IllegalTransition):
            services.video_job_cancel(job=job)
    from rendering.transport import inprocess_runner

    assert inprocess_runner().wait_idle(timeout=60)


def check_one_winner(responses: list[Any], status: int) -> dict:
    """One original answer; the rest are replays of it or 409 'still running'. Returns the answer."""
    shown = [(getattr(r, "status_code", r), getattr(r, "content", b"")[:200]) for r in responses]
    originals = [r for r in responses if r.status_code == status and not r.has_header(REPLAYED_HEADER)]
    assert len(originals) == 1, shown
    answer = originals[0].json()
    for response in responses:
        if response.has_header(REPLAYED_HEADER):
            assert (response.status_code, response.json()) == (status, answer)
        elif response is not originals[0]:
            assert response.status_code == 409, shown
            assert response.json()["code"] == "idempotency_key_in_progress"
    return answer


def test_concurrent_creates_with_one_key_make_one_job(user):
    clients = [client_for(user) for _ in range(RETRIES)]
    body = {"prompt": "A kite. A cloud.", "duration_seconds": 4, "segment_seconds": 2, "render": False}
    responses = race(
        [
            lambda c=c: c.post("/api/video-jobs/", body, format="json", headers={"Idempotency-Key": KEY})
            for c in clients
        ]
    )
    answer = check_one_winner(responses, 201)
    assert list(VideoJob.objects.filter(owner=user).values_list("id", flat=True)) == [uuid.UUID(answer["id"])]
    assert IdempotencyKey.objects.get(owner=user, key=KEY).state == KeyState.COMPLETED
    # A retry after the storm is a replay of the same answer.
    late = client_for(user).post("/api/video-jobs/", body, format="json", headers={"Idempotency-Key": KEY})
    assert late[REPLAYED_HEADER] == "true" and late.json()["id"] == answer["id"]


def test_concurrent_renders_with_one_key_render_once(user):
    job = VideoJobFactory(owner=user, short=True)
    clients = [client_for(user) for _ in range(RETRIES)]
    responses = race(
        [lambda c=c: c.post(job_url(job, "render/"), headers={"Idempotency-Key": KEY}) for c in clients]
    )
    check_one_winner(responses, 202)
    job.refresh_from_db()
    assert job.render_generation == 1
