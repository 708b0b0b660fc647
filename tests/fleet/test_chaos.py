"""The chaos bench's scenario, shortened: three jobs on a fleet of subprocesses (its own Redis without
persistence, a submit/poll worker, an assembler, beat) survive a worker SIGKILLed mid-poll while Redis
restarts empty, and the assembler SIGKILLed mid-assembly. Every job completes, every segment was created
once at the provider, no clip is lost.

The broker restart loses every poll message the dead worker held, so only database state can bring those
segments back: the fleet runs with the short recovery settings of tests/support/fleet.py (FAST_RECOVERY:
10 s leases, the reaper every 2 s) and must finish each phase within RECOVERY_BOUND seconds."""

from __future__ import annotations

import time

import pytest

from jobs.models import JobStatus
from tests.support.chaos import all_finished, chaos_jobs
from tests.support.worker import wait_for

from .conftest import assert_nothing_lost, rendering_fleet

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

JOBS = 3
SEGMENTS = 3
# How long one phase may take to recover: a lease or a requeue wait of FAST_RECOVERY (10 s), the reaper's
# interval (2 s) and a restarted worker's start-up, with room for a loaded machine.
RECOVERY_BOUND = 40.0


def test_jobs_survive_killed_worker_broker_restart_and_killed_assembler(tmp_path, fleet_api):
    # Given a fleet of its own, with 5 s provider renders so the kill lands while every clip is in flight
    with rendering_fleet(
        tmp_path, fleet_api, jobs=JOBS, segments=SEGMENTS, seed=13, concurrency=2, assembly_delay=1.5
    ) as (fleet, redis_server):
        # When the worker dies mid-poll and Redis restarts empty before the worker comes back
        fleet["worker-1"].kill()
        redis_server.restart(down_for=1.0)
        fleet["worker-1"].start()

        # ... and the assembler dies in the middle of an assembly
        wait_for(
            lambda: chaos_jobs().filter(status=JobStatus.ASSEMBLING).exists(),
            RECOVERY_BOUND,
            interval=0.05,
            what="a job to start assembling after the worker and Redis restarts",
        )
        fleet["assembler"].kill()
        time.sleep(1.0)
        fleet["assembler"].start()

        # Then every job still completes
        wait_for(lambda: all_finished(JOBS), RECOVERY_BOUND, interval=0.5, what="every job to finish")
    # Exactly one create per segment at the provider, despite the kills and the lost broker.
    assert_nothing_lost(fleet_api, jobs=JOBS, segments=SEGMENTS)
