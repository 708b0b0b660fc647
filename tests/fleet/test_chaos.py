"""The chaos bench's scenario, shortened: three jobs on a fleet of subprocesses (its own Redis without
persistence, a submit/poll worker, an assembler, beat) survive a worker SIGKILLed mid-poll while Redis
restarts empty, and the assembler SIGKILLed mid-assembly. Every job completes, every segment was created
once at the provider, no clip is lost.

The broker restart loses every poll message the dead worker held, so only database state can bring those
segments back: the fleet runs with the short recovery settings of tests/support/fleet.py (FAST_RECOVERY:
10 s leases, the reaper every 2 s) and must finish each phase within RECOVERY_BOUND seconds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from jobs.models import JobStatus, Segment
from tests.support.chaos import OWNER, all_finished, chaos_jobs, measure, start_submitter, wait_submitter
from tests.support.fleet import RedisServer, fleet_env, free_port, recovery_env, start_render_fleet
from tests.support.worker import database_url, wait_for

from .conftest import FLEET_KEY, fleet_config

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

JOBS = 3
SEGMENTS = 3
# How long one phase may take to recover: a lease or a requeue wait of FAST_RECOVERY (10 s), the reaper's
# interval (2 s) and a restarted worker's start-up, with room for a loaded machine.
RECOVERY_BOUND = 40.0


def test_jobs_survive_killed_worker_broker_restart_and_killed_assembler(tmp_path, settings, fleet_api):
    # Given a fleet of its own, with 5 s provider renders so the kill lands while every clip is in flight
    fleet_api.reset(fleet_config(latency=5.0))
    # The workers store clips where this process looks for them (the test's own media root).
    media_root, data_dir = Path(settings.MEDIA_ROOT), tmp_path / "data"
    data_dir.mkdir()
    redis_server = RedisServer(free_port(), tmp_path)
    env = fleet_env(
        database_url=database_url(),
        redis_url=redis_server.url,
        media_root=media_root,
        data_dir=data_dir,
        extra={"SORA_BASE_URL": fleet_api.url, "SORA_API_KEY": FLEET_KEY, **recovery_env()},
    )
    redis_server.start()
    fleet = start_render_fleet(
        redis_server=redis_server, env=env, directory=tmp_path, workers=1, concurrency=2, assembly_delay=1.5
    )
    try:
        wait_submitter(
            start_submitter(env, jobs=JOBS, min_segments=SEGMENTS, max_segments=SEGMENTS, seed=13), 60
        )
        segments = JOBS * SEGMENTS
        wait_for(
            lambda: (
                Segment.objects.filter(job__owner__username=OWNER).exclude(provider_task_id="").count()
                == segments
            ),
            30,
            what="every segment to be created at the provider",
        )

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
    finally:
        fleet.stop()

    outcome = measure(fleet_api.stats.creates_by_prompt)
    assert outcome.jobs_completed == JOBS, outcome.unfinished
    # Exactly one create per segment at the provider, despite the kills and the lost broker.
    assert outcome.segments == outcome.creates == segments
    assert outcome.double_created == outcome.never_created == 0
    assert outcome.clips_lost == 0
