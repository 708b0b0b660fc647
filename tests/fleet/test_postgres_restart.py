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

from tests.support.chaos import all_finished
from tests.support.worker import wait_for

from .conftest import assert_nothing_lost, rendering_fleet

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
def test_a_postgres_restart_mid_render_loses_nothing(tmp_path, fleet_api):
    with rendering_fleet(tmp_path, fleet_api, jobs=JOBS, segments=SEGMENTS, seed=7, concurrency=2):
        # When the database restarts while every clip is in flight at the provider
        restart_postgres()
        reconnect()  # this process's connection was cut too

        # Then every job still completes, without a second create
        wait_for(lambda: all_finished(JOBS), RECOVERY_BOUND, interval=0.5, what="every job to finish")
    assert_nothing_lost(fleet_api, jobs=JOBS, segments=SEGMENTS)
