"""What the chaos bench and test measure, checked on crafted rows (no fleet needed): the stall watch, the
outcome, the recovery settings, and that a managed process dies with its whole process group."""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta

import pytest
import redis
from celery import current_app
from django.core.files.base import ContentFile
from django.utils import timezone

from jobs.models import JobStatus, Segment, SegmentStatus
from sora_controller.celery import app as project_app
from tests.factories import UserFactory, VideoJobFactory
from tests.support.chaos import OWNER, StallWatch, measure
from tests.support.fleet import ManagedProcess, RedisServer, free_port, recovery_env, wait_workers_ready


@pytest.fixture
def chaos_owner(db):
    return UserFactory(username=OWNER)


def chaos_job(owner, shots: tuple[str, ...], status: str):
    job = VideoJobFactory(owner=owner, sora=True, shots=shots)
    type(job).objects.filter(id=job.id).update(status=status)
    return job


def age(queryset, seconds: float, **fields) -> None:
    """Set rows' fields with `updated_at` `seconds` in the past (update() leaves auto_now alone)."""
    queryset.update(updated_at=timezone.now() - timedelta(seconds=seconds), **fields)


def test_stall_watch_reports_the_segment_longest_without_a_change(chaos_owner):
    job = chaos_job(chaos_owner, ("Dawn.", "Noon.", "Dusk."), JobStatus.RENDERING)
    age(job.segments.all(), 2, status=SegmentStatus.RENDERING)
    age(job.segments.filter(index=1), 30, status=SegmentStatus.RENDERING)
    finished = chaos_job(chaos_owner, ("Old.",), JobStatus.COMPLETED)
    age(finished.segments.all(), 500, status=SegmentStatus.COMPLETED)  # settled: never a stall

    watch = StallWatch()
    watch.sample()

    assert 30 <= watch.longest.seconds < 60
    assert watch.longest.what == "job 0 segment 2 (rendering)"


def test_stall_watch_counts_a_job_whose_assembly_never_began(chaos_owner):
    job = chaos_job(chaos_owner, ("Dawn.", "Dusk."), JobStatus.RENDERING)
    age(job.segments.all(), 40, status=SegmentStatus.COMPLETED)
    age(type(job).objects.filter(id=job.id), 45)

    watch = StallWatch()
    watch.sample()

    assert 40 <= watch.longest.seconds < 60
    assert watch.longest.what == "job 0 (segments settled, assembly not begun)"


def test_stall_watch_counts_an_assembly(chaos_owner):
    job = chaos_job(chaos_owner, ("Dawn.",), JobStatus.ASSEMBLING)
    age(job.segments.all(), 90, status=SegmentStatus.COMPLETED)
    age(type(job).objects.filter(id=job.id), 20)

    watch = StallWatch()
    watch.sample()

    assert 20 <= watch.longest.seconds < 60 and watch.longest.what == "job 0 (assembling)"


def test_measure_counts_lost_clips_and_creates_per_segment(chaos_owner):
    done = chaos_job(chaos_owner, ("Dawn.", "Dusk."), JobStatus.COMPLETED)
    for segment in done.segments.all():
        segment.clip.save(f"clip-{segment.index}.mp4", ContentFile(b"not really a video"), save=False)
        Segment.objects.filter(id=segment.id).update(clip=segment.clip.name, status=SegmentStatus.COMPLETED)
    stuck = chaos_job(chaos_owner, ("Rain.", "Snow."), JobStatus.RENDERING)
    stuck.segments.filter(index=0).update(status=SegmentStatus.COMPLETED, clip="jobs/gone.mp4")  # no file
    stuck.segments.filter(index=1).update(status=SegmentStatus.RENDERING)

    outcome = measure({"Dawn.": 1, "Dusk.": 2, "Rain.": 1})  # Snow. never reached the provider

    assert (outcome.jobs, outcome.jobs_completed, outcome.segments) == (2, 1, 4)
    assert outcome.clips_lost == 2
    assert (outcome.creates, outcome.double_created, outcome.never_created) == (4, 1, 1)
    assert outcome.creates_per_segment == 1.0  # a double create and a lost one cancel out in the ratio
    assert outcome.unfinished == ["job 1: rendering (segments: 1 completed, 1 rendering)"]


def test_recovery_env_sets_only_what_the_settings_read():
    source = 'REAPER_INTERVAL_SECONDS = env_float("REAPER_INTERVAL_SECONDS", 10.0)\n'

    assert recovery_env(source) == {"REAPER_INTERVAL_SECONDS": "2"}
    assert {"LEASE_SECONDS", "CELERY_VISIBILITY_TIMEOUT"} <= set(recovery_env())  # this checkout's


def test_kill_ends_the_whole_process_group(tmp_path):
    child_pid_file = tmp_path / "child.pid"
    # A parent that starts a child and sleeps, as a Celery worker starts its pool.
    script = (
        "import subprocess, time\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        f"open({str(child_pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    process = ManagedProcess("sleeper", [sys.executable, "-c", script], os.environ, tmp_path / "sleeper.log")
    process.start()
    deadline = time.monotonic() + 10
    while not child_pid_file.exists() or not child_pid_file.read_text():
        assert time.monotonic() < deadline, process.log_tail()
        time.sleep(0.05)
    child = int(child_pid_file.read_text())

    process.kill()

    assert not process.running
    deadline = time.monotonic() + 5
    while _alive(child):  # reaped by init once orphaned and killed
        assert time.monotonic() < deadline, "the child outlived the kill"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0); it is dead for our purpose
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.redis
def test_redis_restart_starts_from_an_empty_broker(tmp_path):
    server = RedisServer(free_port(), tmp_path).start()
    try:
        client = redis.Redis.from_url(server.url, socket_timeout=2)
        client.rpush("submit", "a queued task")

        server.restart(down_for=0.1)

        assert client.llen("submit") == 0
    finally:
        server.stop()


def test_waiting_for_workers_leaves_the_callers_celery_app_current():
    wait_workers_ready("redis://127.0.0.1:1/0", [])  # nothing to wait for: only the probe is made

    assert current_app._get_current_object() is project_app  # tasks still go to the caller's broker
