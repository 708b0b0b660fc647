"""The embedded default keeps every clip in flight at once: a segment waiting for its provider is put
back on the in-process runner's timer (as the fleet uses countdowns) instead of sleeping in one of its
two threads, so six segments at a slow provider render together, not in waves of two."""

from __future__ import annotations

import pytest

from jobs import services
from jobs.models import JobStatus
from rendering.fake_api import FakeConfig
from rendering.transport import inprocess_runner

pytestmark = pytest.mark.django_db(transaction=True)


def test_six_segments_are_in_flight_together_on_two_threads(user, fake_api, settings):
    assert settings.INPROCESS_WORKERS == 2
    fake_api.reset(FakeConfig(latency=3.0, poll_after_ms=200))
    job = services.video_job_create(
        owner=user,
        prompt="One. Two. Three. Four. Five. Six.",
        duration_seconds=24,
        segment_seconds=4,
        provider="sora",
        size="1280x720",
        use_cache=False,
    )
    services.video_job_render(job=job)
    assert inprocess_runner().wait_idle(timeout=120)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error
    # Every create happened before any clip was done: all six rendered at once.
    assert fake_api.stats.creates == 6 and fake_api.stats.max_in_flight == 6


def test_a_cancel_frees_the_waiting_segments_at_once(user, fake_api):
    fake_api.reset(FakeConfig(latency=30.0, poll_after_ms=20_000))  # a provider that asks for long waits
    job = services.video_job_create(
        owner=user, prompt="A slow one. Another.", duration_seconds=8, segment_seconds=4, provider="sora",
        size="1280x720", use_cache=False,
    )  # fmt: skip
    services.video_job_render(job=job)
    runner = inprocess_runner()
    assert not runner.wait_idle(timeout=2)  # both segments wait on the timer for their 20 s poll
    services.video_job_cancel(job=job)
    # The wake check sees the cancel within a second: nobody waits out the provider's poll delay.
    assert runner.wait_idle(timeout=5)


class _Task:
    """A stand-in for a Celery task: the runner only calls `apply` and reads `name`."""

    name = "tests.connection_probe"

    def __init__(self, body) -> None:
        self.body = body

    def apply(self, args=(), kwargs=None):
        return self.body()


def test_a_runner_thread_keeps_its_idle_sqlite_connection_and_drops_one_left_in_a_transaction():
    from django.db import connection, transaction

    from rendering.transport import InProcessRunner

    runner = InProcessRunner(1)  # one thread: every task below runs on it
    seen = []

    def query():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        seen.append(connection.connection)

    def leave_a_transaction_open():
        transaction.atomic().__enter__()  # a task that (wrongly) never leaves its transaction
        query()

    try:
        for body in (query, query, leave_a_transaction_open, query):
            runner.submit(_Task(body), ())
            assert runner.wait_idle(timeout=10)
    finally:
        runner.stop_sweeping()
    assert connection.vendor == "sqlite"
    # The second task reused the first one's connection; the one left mid-transaction was closed (rolled
    # back), so the next task opened a fresh one instead of inheriting it.
    assert seen[0] is seen[1] is seen[2]
    assert seen[3] is not seen[2]
