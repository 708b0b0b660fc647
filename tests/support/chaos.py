"""The chaos workload and what is measured of it, shared by bench/chaos.py and tests/fleet/test_chaos.py.

- `submit_jobs` creates and renders N jobs on the OpenAI-Videos protocol (the fake API in tests), each
  with a few 4 s segments whose prompts are unique, so the provider's per-prompt create count is a
  per-segment create count. `start_submitter` runs it as `python -m tests.support.chaos --jobs N ...`
  in the fleet's environment, so the render messages reach the fleet's own broker whatever broker the
  calling process is configured with.
- `StallWatch` samples the database: for every segment in flight and every job between its last segment
  and its video, how long since its row last changed. The longest such gap is how long the fleet took,
  at worst, to notice and resume work a kill or a broker restart left behind.
- `measure` reads the outcome: jobs completed, clips lost, creates per segment.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEGMENT_SECONDS = 4  # the shortest clip the OpenAI-Videos protocol renders
SIZE = "1280x720"
OWNER = "chaos"


def segment_prompts(job_number: int, segments: int) -> list[str]:
    """Prompts unique across the run: the provider counts creates per prompt."""
    return [f"Chaos job {job_number} shot {i + 1}: a lighthouse beam sweeps the fog" for i in range(segments)]


def submit_jobs(*, jobs: int, min_segments: int, max_segments: int, seed: int, spacing: float = 0.0) -> None:
    """Create and render `jobs` jobs for the OWNER user (Django must be set up), `spacing` seconds
    apart, so the fleet meets new work all through a run instead of one burst."""
    from django.contrib.auth import get_user_model

    from jobs import services

    rng = random.Random(seed)
    owner, _ = get_user_model().objects.get_or_create(username=OWNER)
    for n in range(jobs):
        if n and spacing:
            time.sleep(spacing)
        prompts = segment_prompts(n, rng.randint(min_segments, max_segments))
        job = services.video_job_create(
            owner=owner,
            prompt=" ".join(prompts),
            duration_seconds=SEGMENT_SECONDS * len(prompts),
            segment_seconds=SEGMENT_SECONDS,
            strategy="manual",
            manual_prompts=prompts,
            provider="sora",
            size=SIZE,
            use_cache=False,  # every segment is a real create, so creates per segment stays meaningful
        )
        services.video_job_render(job=job)


def start_submitter(
    env: Mapping[str, str],
    *,
    jobs: int,
    min_segments: int,
    max_segments: int,
    seed: int,
    spacing: float = 0.0,
) -> subprocess.Popen:
    """Run `submit_jobs` in a process of its own with the fleet's environment (its database, its
    broker), as a web process would: the caller need not be configured for the fleet's broker."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.chaos",
            f"--jobs={jobs}",
            f"--min-segments={min_segments}",
            f"--max-segments={max_segments}",
            f"--seed={seed}",
            f"--spacing={spacing}",
        ],
        cwd=ROOT,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_submitter(process: subprocess.Popen, timeout: float) -> None:
    """Wait for the submitter (killing it past `timeout`); raises with its error output if it failed."""
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        raise RuntimeError(f"submitting the chaos jobs took over {timeout:g} s: {stderr[-3000:]}") from None
    if process.returncode != 0:
        raise RuntimeError(f"submitting the chaos jobs failed: {stderr[-3000:]}")


def chaos_jobs():
    """The chaos owner's jobs, oldest first (job N is the Nth submitted)."""
    from jobs.models import VideoJob

    return VideoJob.objects.filter(owner__username=OWNER).order_by("created_at")


@dataclass
class Stall:
    seconds: float = 0.0
    what: str = ""
    since: datetime | None = None  # the row's last change before the gap (to line it up with the kills)


@dataclass
class StallWatch:
    """The longest time any piece of in-flight work went without its database row changing.

    Sampled: call `sample()` every fraction of a second while the jobs run. A segment counts while it is
    queued or rendering; a job counts while it is assembling, and while it is still marked rendering with
    no segment in flight (its assembly was asked for but has not begun: a lost message shows up here).
    """

    longest: Stall = field(default_factory=Stall)
    samples: int = 0

    def sample(self) -> None:
        from django.db.models import Max
        from django.utils import timezone

        from jobs.models import IN_FLIGHT_SEGMENT_STATUSES, RENDERING_JOB_STATUSES, JobStatus, Segment

        now = timezone.now()
        self.samples += 1
        jobs = list(
            chaos_jobs()
            .annotate(last_segment_change=Max("segments__updated_at"))
            .values_list("id", "status", "updated_at", "last_segment_change")
        )
        number = {job_id: n for n, (job_id, *_) in enumerate(jobs)}
        in_flight = Segment.objects.filter(
            job__owner__username=OWNER,
            job__status__in=RENDERING_JOB_STATUSES,
            status__in=IN_FLIGHT_SEGMENT_STATUSES,
        ).values_list("job_id", "index", "status", "updated_at")
        busy_jobs = set()
        for job_id, index, status, updated_at in in_flight:
            busy_jobs.add(job_id)
            self._note(now, updated_at, f"job {number.get(job_id, '?')} segment {index + 1} ({status})")
        for job_id, status, updated_at, last_segment_change in jobs:
            if status == JobStatus.ASSEMBLING:
                self._note(now, updated_at, f"job {number[job_id]} (assembling)")
            elif status in RENDERING_JOB_STATUSES and job_id not in busy_jobs:
                last = max(updated_at, last_segment_change or updated_at)
                self._note(now, last, f"job {number[job_id]} (segments settled, assembly not begun)")

    def _note(self, now: datetime, since: datetime, what: str) -> None:
        seconds = (now - since).total_seconds()
        if seconds > self.longest.seconds:
            self.longest = Stall(seconds, what, since)


@dataclass
class Outcome:
    jobs: int
    jobs_completed: int
    segments: int
    clips_lost: int  # segments that failed or never completed, or whose clip file is missing
    creates: int  # provider creates for this run's segments
    double_created: int  # segments created more than once at the provider
    never_created: int  # segments the provider never saw (their render message was lost, say)
    unfinished: list[str]  # "job N: status (segments ...)" for every job that did not complete

    @property
    def creates_per_segment(self) -> float:
        return self.creates / self.segments if self.segments else 0.0


def measure(creates_by_prompt: Mapping[str, int]) -> Outcome:
    """The run's outcome from the database, with the provider's create count per prompt."""
    from jobs.models import JobStatus, Segment, SegmentStatus

    jobs = list(chaos_jobs())
    segments = list(Segment.objects.filter(job__owner__username=OWNER))
    lost = sum(
        1
        for s in segments
        if s.status != SegmentStatus.COMPLETED or not s.clip or not Path(s.clip.path).exists()
    )
    creates = [creates_by_prompt.get(s.prompt, 0) for s in segments]
    unfinished = []
    for n, job in enumerate(jobs):
        if job.status != JobStatus.COMPLETED:
            states = Counter(s.status for s in segments if s.job_id == job.id)
            detail = ", ".join(f"{count} {status}" for status, count in sorted(states.items()))
            error = f"; {job.error}" if job.error else ""
            unfinished.append(f"job {n}: {job.status} (segments: {detail}){error}")
    return Outcome(
        jobs=len(jobs),
        jobs_completed=sum(1 for j in jobs if j.status == JobStatus.COMPLETED),
        segments=len(segments),
        clips_lost=lost,
        creates=sum(creates),
        double_created=sum(1 for c in creates if c > 1),
        never_created=sum(1 for c in creates if c == 0),
        unfinished=unfinished,
    )


def all_finished(expected_jobs: int) -> bool:
    """True once `expected_jobs` chaos jobs exist and none is still active."""
    from jobs.models import FINISHED_JOB_STATUSES

    jobs = chaos_jobs()
    return jobs.count() >= expected_jobs and not jobs.exclude(status__in=FINISHED_JOB_STATUSES).exists()


def in_flight_counts() -> tuple[int, int]:
    """(segments rendering, jobs assembling) right now: where a kill lands."""
    from jobs.models import JobStatus, Segment, SegmentStatus

    rendering = Segment.objects.filter(job__owner__username=OWNER, status=SegmentStatus.RENDERING).count()
    return rendering, chaos_jobs().filter(status=JobStatus.ASSEMBLING).count()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Create and render the chaos jobs.")
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--min-segments", type=int, default=3)
    parser.add_argument("--max-segments", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--spacing", type=float, default=0.0, help="seconds between two jobs")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sora_controller.settings")
    import django

    django.setup()
    submit_jobs(
        jobs=args.jobs,
        min_segments=args.min_segments,
        max_segments=args.max_segments,
        seed=args.seed,
        spacing=args.spacing,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
