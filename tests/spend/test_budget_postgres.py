"""Two renders of one owner started at the same moment on PostgreSQL: the owner's row lock makes the
second check see the first's reservation, so only one slips under the cap."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection

from jobs import budget, services
from jobs.errors import InvalidInput
from jobs.models import JobStatus, VideoJob

from .conftest import sora_job

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_starts_cannot_both_slip_under_the_cap(no_caps, user, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL)")
    no_caps.BUDGET_USER_DAILY_USD = Decimal("0.50")
    monkeypatch.setattr("jobs.work_queue._start_run", lambda job_id, generation: None)
    slow_reserved = budget.reserved

    def reserved(*args, **kwargs):
        value = slow_reserved(*args, **kwargs)
        time.sleep(0.3)  # widen the window between reading the reservations and queueing
        return value

    monkeypatch.setattr(budget, "reserved", reserved)
    jobs = [sora_job(user, prompts=[f"Shot {n}."]) for n in range(2)]  # $0.40 each
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def render(job) -> None:
        try:
            start.wait()
            services.video_job_render(job=job)
            outcomes.append("queued")
        except InvalidInput as exc:
            outcomes.append(exc.errors["budget"][0])
        finally:
            connection.close()

    threads = [threading.Thread(target=render, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(outcomes) == 2 and outcomes.count("queued") == 1
    refusal = next(outcome for outcome in outcomes if outcome != "queued")
    assert "$0.40 held by renders in progress" in refusal
    statuses = sorted(VideoJob.objects.filter(id__in=[j.id for j in jobs]).values_list("status", flat=True))
    assert statuses == sorted([JobStatus.DRAFT, JobStatus.QUEUED])
