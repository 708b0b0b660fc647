"""PostgreSQL restarted under a rendering fleet: every connection the workers, the assembler and beat hold
is cut. Runs interrupted by it stop without failing their segments (rendering.tasks' infrastructure
errors), their leases run out and the reaper resumes them: every job completes, every segment created
once at the provider.

It restarts this machine's PostgreSQL cluster, so it runs where the suite may do that (CI's own server,
started by .ci/run) and is skipped where pg_ctlcluster is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from django.db import OperationalError, connection

from jobs.models import Segment
from tests.support.chaos import OWNER, all_finished, measure, start_submitter, wait_submitter
from tests.support.fleet import RedisServer, fleet_env, free_port, recovery_env, start_render_fleet
from tests.support.worker import database_url, wait_for

from .conftest import FLEET_KEY, fleet_config

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

JOBS = 2
SEGMENTS = 3
RECOVERY_BOUND = 60.0


def restart_postgres() -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "fast"],
        check=True,
        timeout=60,
        capture_output=True,
    )


def reconnect(timeout: float = 30.0) -> None:
    """Open this process's connection again once the restarted server takes connections."""
    deadline = time.monotonic() + timeout
    while True:
        connection.close()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return
        except OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.mark.skipif(
    shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir() or os.geteuid() != 0,
    reason="needs a local PostgreSQL cluster it may restart (pg_ctlcluster, as root: CI's machine)",
)
def test_a_postgres_restart_mid_render_loses_nothing(tmp_path, settings, fleet_api):
    fleet_api.reset(fleet_config(latency=5.0))
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
        redis_server=redis_server, env=env, directory=tmp_path, workers=1, concurrency=2
    )
    try:
        wait_submitter(
            start_submitter(env, jobs=JOBS, min_segments=SEGMENTS, max_segments=SEGMENTS, seed=7), 60
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
        # When the database restarts while every clip is in flight at the provider
        restart_postgres()
        reconnect()  # this process's connection was cut too

        # Then every job still completes, without a second create
        wait_for(lambda: all_finished(JOBS), RECOVERY_BOUND, interval=0.5, what="every job to finish")
    finally:
        fleet.stop()
    outcome = measure(fleet_api.stats.creates_by_prompt)
    assert outcome.jobs_completed == JOBS, outcome.unfinished
    assert outcome.segments == outcome.creates == segments
    assert outcome.double_created == outcome.never_created == 0
    assert outcome.clips_lost == 0
