"""Benchmark: jobs through a real Celery worker against the fake Videos API with a fixed latency.

    python bench/pipeline.py [--latency 10] [--segments 6] [--jobs 3] [--workers 4]

Needs PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379). It creates and migrates a database of its
own (sora_bench_pipeline), uses Redis db 13, starts the fake API in this process and one
`celery worker` subprocess, and prints, side by side in one table:

- one parallel job of M segments: wall time against the provider latency L (ideal: L plus assembly)
  and against the serial sum M x L (what a script that renders clip after clip takes);
- one chain job of M segments: wall time against M x L (chain is serial by nature);
- a burst of N parallel jobs at once;
- provider create calls per segment (exactly 1.0 when nothing fails) and our overhead per segment
  beyond L.

Target (issue 3): a parallel job of 6 segments finishes within 1.2 x L plus assembly.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATABASE = "sora_bench_pipeline"
PG = "postgres://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/13"
WORK = REPO_ROOT / "var" / "bench-pipeline"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=20.0, help="provider seconds per clip (L)")
    parser.add_argument("--segments", type=int, default=6, help="segments per job (M)")
    parser.add_argument("--jobs", type=int, default=3, help="jobs in the burst (N)")
    parser.add_argument("--workers", type=int, default=4, help="worker processes (prefork concurrency)")
    return parser.parse_args(list(argv))


def _environment() -> dict[str, str]:
    return {
        "DATABASE_URL": f"{PG}/{DATABASE}",
        "REDIS_URL": REDIS,
        "SECRET_KEY": "bench-only-secret",
        "TASK_RUNNER": "celery",
        "DATA_DIR": str(WORK / "data"),
        "MEDIA_ROOT": str(WORK / "media"),
        "LOCAL_PROVIDER_DIR": str(WORK / "data" / "local-provider"),
        "SORA_API_KEY": "sk-bench",
        "LOG_LEVEL": "WARNING",
    }


def _prepare_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO_ROOT, check=True,
                   env={**os.environ})


def main(argv: Sequence[str]) -> list[dict]:
    args = parse_args(argv)
    os.environ.update(_environment())
    (WORK / "media").mkdir(parents=True, exist_ok=True)
    (WORK / "data").mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(REPO_ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "sora_controller.settings"
    _prepare_database()
    import django

    django.setup()
    import redis
    from django.contrib.auth import get_user_model

    from jobs import services
    from jobs.models import JobStatus, VideoJob
    from rendering.fake_api import FakeConfig, FakeVideoServer
    from tests.support.worker import Worker, wait_for

    redis.Redis.from_url(REDIS).flushdb()
    user, _ = get_user_model().objects.get_or_create(username="bench")
    fake = FakeVideoServer(FakeConfig(latency=args.latency, poll_after_ms=250, api_key="sk-bench")).start()
    env = {**_environment(), "SORA_BASE_URL": fake.url}
    worker = Worker("bench", env, WORK / "worker.log", concurrency=args.workers)
    rows: list[dict] = []
    try:
        worker.wait_ready(timeout=60)
        # Warm the fake API's clip cache so the first job does not pay for making content.
        from rendering.fake_api import content

        content.video_bytes("1280x720", 4.0, 30)

        def run(continuity: str, count: int) -> tuple[float, float, list[VideoJob]]:
            fake.reset(FakeConfig(latency=args.latency, poll_after_ms=250, api_key="sk-bench"))
            prompts = [f"Shot {i + 1} of a harbour at dawn, {continuity}" for i in range(args.segments)]
            jobs = [
                services.video_job_create(
                    owner=user, prompt=" ".join(prompts), duration_seconds=4.0 * args.segments, segment_seconds=4,
                    strategy="manual", manual_prompts=[f"{p} (job {j})" for p in prompts], provider="sora",
                    size="1280x720", continuity=continuity,
                )
                for j in range(count)
            ]
            started = time.monotonic()
            for job in jobs:
                services.video_job_render(job=job)
            assembling_seen: dict[str, float] = {}

            def finished() -> bool:
                states = dict(VideoJob.objects.filter(id__in=[j.id for j in jobs]).values_list("id", "status"))
                for job_id, status in states.items():
                    if status == JobStatus.ASSEMBLING and job_id not in assembling_seen:
                        assembling_seen[str(job_id)] = time.monotonic()
                return all(s in {JobStatus.COMPLETED, JobStatus.FAILED} for s in states.values())

            wait_for(finished, timeout=args.latency * args.segments * 3 + 120, interval=0.05, what="jobs")
            wall = time.monotonic() - started
            done = [VideoJob.objects.get(id=j.id) for j in jobs]
            failed = [j for j in done if j.status != JobStatus.COMPLETED]
            if failed:
                raise SystemExit(f"{len(failed)} job(s) failed: {failed[0].error}")
            assembly = max(
                (j.finished_at.timestamp() - j.segments.order_by("-updated_at").first().updated_at.timestamp())
                for j in done
            )
            return wall, assembly, done

        latency, segments = args.latency, args.segments
        for label, continuity, count, ideal in (
            (f"1 parallel job x {segments} segments", "parallel", 1, latency),
            (f"1 chain job x {segments} segments", "chain", 1, latency * segments),
            (f"{args.jobs} parallel jobs x {segments} segments at once", "parallel", args.jobs, latency),
        ):
            wall, assembly, _ = run(continuity, count)
            creates = fake.stats.creates / (count * segments)
            serial = latency * segments * count
            per_segment_overhead = (wall - ideal - assembly) / (segments if continuity == "chain" else 1)
            rows.append({
                "scenario": label, "wall": wall, "ideal": ideal, "assembly": assembly, "serial": serial,
                "creates_per_segment": creates, "overhead": per_segment_overhead, "continuity": continuity,
            })
    finally:
        worker.stop()
        fake.stop()

    print(f"\nProvider latency L = {args.latency:g} s per clip; {args.workers} worker processes; "
          f"4 s clips at 1280x720.\n")
    print("| scenario | wall s | ideal s | vs ideal | serial sum s | faster than serial | creates/segment "
          "| overhead s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['scenario']} | {row['wall']:.2f} | {row['ideal']:.1f} | {row['wall'] / row['ideal']:.2f}x "
              f"| {row['serial']:.0f} | {row['serial'] / row['wall']:.1f}x | {row['creates_per_segment']:.2f} "
              f"| {row['overhead']:.2f} |")
    first = rows[0]
    target = 1.2 * args.latency + first["assembly"]
    verdict = "PASS" if first["wall"] <= target else "FAIL"
    print(f"\nTarget: parallel job of {args.segments} segments within 1.2 x L + assembly "
          f"({target:.2f} s): {first['wall']:.2f} s, {verdict}")
    print("overhead = wall - ideal - assembly (per segment for chain: divided by M).")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
