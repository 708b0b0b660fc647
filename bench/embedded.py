"""Benchmark: one job of N segments at provider latency L, through the embedded default and through the
fleet, side by side.

    python bench/embedded.py [--segments 30] [--latency 10] [--progress-steps N]

- embedded: SQLite, the in-process runner with its default 2 threads (a waiting segment goes back on
  the runner's timer instead of holding a thread), run in a subprocess with no DATABASE_URL/REDIS_URL;
- fleet: PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379), one `celery worker` subprocess with 2
  processes (polls are countdowns on the poll queue).

Both render against the fake Videos API with latency L per clip and print wall time, the most clips in
flight at once (as the provider saw them), and the wall time against the target 1.3 x L + assembly.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, default=30, help="segments in the job (N)")
    parser.add_argument("--latency", type=float, default=10.0, help="provider seconds per clip (L)")
    parser.add_argument(
        "--progress-steps",
        type=int,
        default=None,
        help="distinct progress values the fake reports while rendering (default: the fake's own)",
    )
    parser.add_argument("--mode", choices=["embedded", "fleet"], default=None, help=argparse.SUPPRESS)
    return parser.parse_args(list(argv))


def start_fake(args: argparse.Namespace):
    from rendering.fake_api import FakeConfig, FakeVideoServer
    from rendering.fake_api import content as fake_content

    fake_content.video_bytes("1280x720", 4.0, 30)  # warm the fake's clip cache
    config = FakeConfig(latency=args.latency, poll_after_ms=500, api_key="sk-bench")
    if args.progress_steps:
        config.progress_steps = args.progress_steps
    return FakeVideoServer(config).start()


def run_job(fake, segments: int, latency: float, settle=None) -> dict:
    """Create and render one sora job of `segments` 4 s segments against `fake`; `settle` runs once the
    job has finished (the embedded runner waits for its last tasks there)."""
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from jobs import services
    from jobs.models import JobStatus, VideoJob

    settings.SORA_BASE_URL = fake.url
    user, _ = get_user_model().objects.get_or_create(username="bench")
    tag = uuid.uuid4().hex[:6]
    prompts = [f"Shot {i + 1} of a harbour at dawn, run {tag}" for i in range(segments)]
    job = services.video_job_create(
        owner=user,
        prompt=" ".join(prompts),
        duration_seconds=4.0 * segments,
        segment_seconds=4,
        strategy="manual",
        manual_prompts=prompts,
        provider="sora",
        size="1280x720",
        use_cache=False,
    )
    started = time.monotonic()
    started_at = time.time()
    services.video_job_render(job=job)
    assembling_at = None
    deadline = started + latency * segments + 300
    while (status := VideoJob.objects.get(id=job.id).status) not in {JobStatus.COMPLETED, JobStatus.FAILED}:
        if assembling_at is None and status == JobStatus.ASSEMBLING:
            assembling_at = time.time()  # seen within one 50 ms look of the real moment
        if time.monotonic() > deadline:
            raise SystemExit("the job did not finish in time")
        time.sleep(0.05)
    wall = time.monotonic() - started
    if settle is not None:
        settle()
    job = VideoJob.objects.get(id=job.id)
    if job.status != JobStatus.COMPLETED:
        raise SystemExit(f"the job ended {job.status}: {job.error}")
    last_clip = job.segments.order_by("-updated_at").first().updated_at
    return {
        "wall": wall,
        "assembly": (job.finished_at - last_clip).total_seconds(),
        "in_flight": fake.stats.max_in_flight,
        "creates": fake.stats.creates,
        "phases": phases(fake, job, latency, started_at, assembling_at),
    }


def phases(fake, job, latency: float, started_at: float, assembling_at: float | None) -> dict:
    """Where the wall time went, in seconds from the render's start, from the fake's own clock (when each
    create arrived, when each clip was ready, when a retrieve first answered it finished, its download)
    and the database's (when each segment completed, when the job finished)."""
    videos = {v.id: v for v in fake.state.videos.values()}
    rows = []
    for segment in job.segments.all():
        video = videos[segment.provider_task_id.rsplit("|", 1)[-1]]
        ready = video.created + latency
        rows.append(
            {
                "created": video.created - started_at,
                "ready": ready - started_at,
                "poll_lag": (video.seen_done_at or ready) - ready,
                "processing": segment.updated_at.timestamp() - (video.seen_done_at or ready),
                "completed": segment.updated_at.timestamp() - started_at,
            }
        )
    last_completed = max(r["completed"] for r in rows)
    return {
        "first_create": min(r["created"] for r in rows),
        "last_create": max(r["created"] for r in rows),
        "last_ready": max(r["ready"] for r in rows),
        "poll_lag_mean": sum(r["poll_lag"] for r in rows) / len(rows),
        "poll_lag_max": max(r["poll_lag"] for r in rows),
        "processing_mean": sum(r["processing"] for r in rows) / len(rows),
        "processing_max": max(r["processing"] for r in rows),
        "last_completed": last_completed,
        "assembly_seen": None if assembling_at is None else assembling_at - started_at,
        "finished": job.finished_at.timestamp() - started_at,
        "polls": fake.stats.polls,
    }


def embedded(args: argparse.Namespace) -> dict:
    import django

    django.setup()
    from django.core.management import call_command

    from rendering.transport import inprocess_runner

    call_command("migrate", verbosity=0)

    fake = start_fake(args)
    try:
        return run_job(fake, args.segments, args.latency, lambda: inprocess_runner().wait_idle(timeout=30))
    finally:
        fake.stop()


def fleet(args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    import pipeline  # bench/pipeline.py: the same scratch database, Redis db and worker helper

    os.environ.update(pipeline._environment())
    os.environ["DJANGO_SETTINGS_MODULE"] = "sora_controller.settings"
    for folder in ("media", "data"):
        (pipeline.WORK / folder).mkdir(parents=True, exist_ok=True)
    pipeline._prepare_database()
    import django

    django.setup()
    import redis

    from tests.support.worker import Worker

    redis.Redis.from_url(pipeline.REDIS).flushdb()

    fake = start_fake(args)
    log = pipeline.WORK / "embedded-worker.log"
    worker = Worker("bench-embedded", {**os.environ, "SORA_BASE_URL": fake.url}, log, concurrency=2)
    try:
        worker.wait_ready(timeout=60)
        return run_job(fake, args.segments, args.latency)
    finally:
        worker.stop()
        fake.stop()


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if args.mode == "embedded":
        print(json.dumps(embedded(args)))
        return 0
    if args.mode == "fleet":
        print(json.dumps(fleet(args)))
        return 0
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-embedded-") as scratch:
        for mode in ("embedded", "fleet"):
            env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
            env.update(DJANGO_SETTINGS_MODULE="sora_controller.settings", SORA_API_KEY="sk-bench")
            if mode == "embedded":
                env.update(DATA_DIR=str(Path(scratch) / "data"), LOG_LEVEL="ERROR")
            command = [sys.executable, __file__, "--mode", mode, "--segments", str(args.segments)]
            command += ["--latency", str(args.latency)]
            if args.progress_steps:
                command += ["--progress-steps", str(args.progress_steps)]
            limit = args.latency * args.segments + 900
            out = subprocess.run(
                command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=limit
            )
            if out.returncode != 0:
                print(out.stdout[-2000:], out.stderr[-4000:], file=sys.stderr)
                return 1
            results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    steps = f", progress in {args.progress_steps} steps" if args.progress_steps else ""
    print(
        f"One job of {args.segments} segments, provider latency L = {args.latency:g} s per clip "
        f"(fake Videos API{steps}), 2 threads / 2 worker processes\n"
    )
    print("| runner | wall s | clips in flight at most | target 1.3 x L + assembly s | vs target | verdict |")
    print("|---|---:|---:|---:|---:|---|")
    failed = False
    for mode, label in (
        ("embedded", "embedded default (in-process, SQLite)"),
        ("fleet", "fleet (Celery, PostgreSQL)"),
    ):
        row = results[mode]
        target = 1.3 * args.latency + row["assembly"]
        ok = row["wall"] <= target
        failed |= not ok
        print(
            f"| {label} | {row['wall']:.2f} | {row['in_flight']} | {target:.2f} "
            f"| {row['wall'] / target:.2f}x | {'PASS' if ok else 'FAIL'} |"
        )
    print_phases(results)
    return 1 if failed else 0


PHASES = (
    ("first create at the provider", "first_create"),
    ("last create at the provider", "last_create"),
    ("last clip ready at the provider", "last_ready"),
    ("a ready clip seen by a poll after (mean / max)", ("poll_lag_mean", "poll_lag_max")),
    (
        "seen -> segment completed: download, conform, frames (mean / max)",
        ("processing_mean", "processing_max"),
    ),
    ("last segment completed", "last_completed"),
    ("assembly started (seen within 50 ms)", "assembly_seen"),
    ("job completed", "finished"),
)


def print_phases(results: dict) -> None:
    """Where the time went: seconds from the render's start (or durations, where it says)."""
    print("\n| phase, s from the render's start | embedded | fleet |")
    print("|---|---:|---:|")

    def cell(phases: dict, key) -> str:
        if isinstance(key, tuple):
            return " / ".join(f"{phases[k]:.2f}" for k in key)
        return "-" if phases[key] is None else f"{phases[key]:.2f}"

    embedded, fleet = results["embedded"]["phases"], results["fleet"]["phases"]
    for label, key in PHASES:
        print(f"| {label} | {cell(embedded, key)} | {cell(fleet, key)} |")
    print(f"| provider retrieves (polls) | {embedded['polls']} | {fleet['polls']} |")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
