"""Benchmark: jobs through a real Celery worker against the fake Videos API with a fixed latency.

    python bench/pipeline.py [--latency 10] [--segments 6] [--jobs 3] [--workers 4]

Needs PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379). It creates and migrates a database of its
own (sora_bench_pipeline, or BENCH_PIPELINE_DATABASE), uses Redis db 13 (or BENCH_PIPELINE_REDIS_URL;
bench/embedded.py's fleet run shares both), starts the fake API in this process and one
`celery worker` subprocess, and prints, side by side in one table:

- one parallel job of M segments: wall time against the provider latency L (ideal: L plus assembly)
  and against the serial sum M x L (what a script that renders clip after clip takes);
- one chain job of M segments: wall time against M x L (chain is serial by nature);
- a burst of N parallel jobs at once;
- provider create calls per segment (exactly 1.0 when nothing fails) and our overhead per segment
  beyond L.

and, for spend control (issue 7), in a second table:

- the same job submitted twice: the second is served by the render cache, so it costs nothing, and
  the spend ledger and the fake API's create count agree;
- a burst of B one-segment jobs under a fleet-wide limit of K renders at a time (a second worker
  started with PROVIDER_MAX_CONCURRENT=sora=K), against a fake API that answers 429 to a (K+1)th
  concurrent render: zero 429s, and wall time against the ideal schedule ceil(B/K) x L + assembly.

Targets: (issue 3) a parallel job of 6 segments finishes within 1.2 x L plus assembly; (issue 7) the
double submission costs once and the limited burst sees zero 429s within 1.2 x its ideal schedule.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# Overridable so that two runs on one server (several checkouts) do not share a database or a Redis db.
DATABASE = os.environ.get("BENCH_PIPELINE_DATABASE", "sora_bench_pipeline")
PG = "postgres://postgres@127.0.0.1:5432"
REDIS = os.environ.get("BENCH_PIPELINE_REDIS_URL", "redis://127.0.0.1:6379/13")
WORK = REPO_ROOT / "var" / "bench-pipeline"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=20.0, help="provider seconds per clip (L)")
    parser.add_argument("--segments", type=int, default=6, help="segments per job (M)")
    parser.add_argument("--jobs", type=int, default=3, help="jobs in the burst (N)")
    parser.add_argument("--workers", type=int, default=4, help="worker processes (prefork concurrency)")
    parser.add_argument(
        "--burst-jobs", type=int, default=10, help="one-segment jobs in the limited burst (B)"
    )
    parser.add_argument("--limit", type=int, default=2, help="fleet-wide concurrent renders in the burst (K)")
    parser.add_argument(
        "--burst-latency", type=float, default=None, help="L for the burst (default: --latency)"
    )
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
        # fal and Veo are only planned here (the billed-per-shown table), never called.
        "FAL_KEY": "bench:unused",
        "VERTEX_PROJECT": "bench",
        "GOOGLE_APPLICATION_CREDENTIALS": "/unused.json",
        "LOG_LEVEL": "WARNING",
    }


def _prepare_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO_ROOT,
        check=True,
        env={**os.environ},
    )


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

    from jobs import ledger, services
    from jobs.models import JobStatus, SpendEntry, SpendKind, VideoJob
    from rendering.fake_api import FakeConfig, FakeVideoServer
    from tests.support.worker import Worker, wait_for

    redis.Redis.from_url(REDIS).flushdb()
    user, _ = get_user_model().objects.get_or_create(username="bench")
    fake = FakeVideoServer(FakeConfig(latency=args.latency, poll_after_ms=250, api_key="sk-bench")).start()
    env = {**_environment(), "SORA_BASE_URL": fake.url}
    worker = Worker("bench", env, WORK / "worker.log", concurrency=args.workers)
    rows: list[dict] = []
    spend_rows: list[dict] = []
    # Prompts unique to this run and scenario, so the render cache (which would rightly reuse clips of
    # an earlier run or scenario) never turns a timing scenario into a cache hit.
    run_tag = uuid.uuid4().hex[:6]
    try:
        worker.wait_ready(timeout=60)
        # Warm the fake API's clip cache so the first job does not pay for making content.
        from rendering.fake_api import content

        content.video_bytes("1280x720", 4.0, 30)

        def run(continuity: str, count: int) -> tuple[float, float, list[VideoJob]]:
            fake.reset(FakeConfig(latency=args.latency, poll_after_ms=250, api_key="sk-bench"))
            prompts = [
                f"Shot {i + 1} of a harbour at dawn, {continuity}, {count} job(s), run {run_tag}"
                for i in range(args.segments)
            ]
            jobs = [
                services.video_job_create(
                    owner=user,
                    prompt=" ".join(prompts),
                    duration_seconds=4.0 * args.segments,
                    segment_seconds=4,
                    strategy="manual",
                    manual_prompts=[f"{p} (job {j})" for p in prompts],
                    provider="sora",
                    size="1280x720",
                    continuity=continuity,
                )
                for j in range(count)
            ]
            started = time.monotonic()
            for job in jobs:
                services.video_job_render(job=job)
            assembling_seen: dict[str, float] = {}

            def finished() -> bool:
                states = dict(
                    VideoJob.objects.filter(id__in=[j.id for j in jobs]).values_list("id", "status")
                )
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
                (
                    j.finished_at.timestamp()
                    - j.segments.order_by("-updated_at").first().updated_at.timestamp()
                )
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
            rows.append(
                {
                    "scenario": label,
                    "wall": wall,
                    "ideal": ideal,
                    "assembly": assembly,
                    "serial": serial,
                    "creates_per_segment": creates,
                    "overhead": per_segment_overhead,
                    "continuity": continuity,
                }
            )

        def wait_jobs(jobs: list[VideoJob], timeout: float) -> list[VideoJob]:
            ids = [j.id for j in jobs]
            wait_for(
                lambda: all(
                    s in {JobStatus.COMPLETED, JobStatus.FAILED}
                    for s in VideoJob.objects.filter(id__in=ids).values_list("status", flat=True)
                ),
                timeout=timeout,
                interval=0.05,
                what="jobs",
            )
            done = [VideoJob.objects.get(id=i) for i in ids]
            failed = [j for j in done if j.status != JobStatus.COMPLETED]
            if failed:
                raise SystemExit(f"{len(failed)} job(s) failed: {failed[0].error}")
            return done

        # --- Spend: the same job submitted twice costs once ---------------------------------------------
        fake.reset(FakeConfig(latency=args.latency, poll_after_ms=250, api_key="sk-bench"))
        prompts = [
            f"Shot {i + 1} of a lighthouse, submitted twice, run {run_tag}" for i in range(args.segments)
        ]

        def submit_twice_job() -> VideoJob:
            return services.video_job_create(
                owner=user,
                prompt=" ".join(prompts),
                duration_seconds=4.0 * args.segments,
                segment_seconds=4,
                strategy="manual",
                manual_prompts=prompts,
                provider="sora",
                size="1280x720",
            )

        walls = []
        twice = []
        for _ in range(2):
            started = time.monotonic()
            twice += wait_jobs([services.video_job_render(job=submit_twice_job())], args.latency * 3 + 120)
            walls.append(time.monotonic() - started)
        first, second = twice
        entries = SpendEntry.objects.filter(job__in=twice)
        totals = ledger.totals(entries)
        price = first.cost_estimate_usd / args.segments
        agree = totals.spent_usd == price * fake.stats.creates and fake.stats.creates == args.segments
        spend_rows.append(
            {
                "scenario": f"same {args.segments}-segment job submitted twice",
                "wall": sum(walls),
                "ideal": None,
                "creates": fake.stats.creates,
                "rejected": fake.stats.rejected_429,
                "in_flight": fake.stats.max_in_flight,
                "estimate": first.cost_estimate_usd + second.cost_estimate_usd,
                "spent": totals.spent_usd,
                "saved": totals.saved_usd,
                "notes": f"2nd job ${second.cost_spent_usd:.2f} in {walls[1]:.2f} s, "
                f"{entries.filter(kind=SpendKind.CACHE_SAVING).count()} clips from the cache; "
                f"ledger = creates x price: {'yes' if agree else 'NO'}",
                "pass": agree and second.cost_spent_usd == 0,
            }
        )
    finally:
        worker.stop()

    # --- Spend: a burst under a fleet-wide limit, on a worker started with that limit --------------------
    burst_latency = args.burst_latency or args.latency
    limited_env = {**env, "PROVIDER_MAX_CONCURRENT": f"sora={args.limit}"}
    limited = Worker("bench-limited", limited_env, WORK / "worker-limited.log", concurrency=args.workers)
    try:
        limited.wait_ready(timeout=60)
        # Like a real quota: the fake answers 429 to a create beyond K renders in flight.
        fake.reset(
            FakeConfig(
                latency=burst_latency, poll_after_ms=250, api_key="sk-bench", max_concurrent=args.limit
            )
        )
        jobs = [
            services.video_job_create(
                owner=user,
                prompt=f"Burst job {j}, run {run_tag}",
                duration_seconds=4.0,
                segment_seconds=4,
                provider="sora",
                size="1280x720",
            )
            for j in range(args.burst_jobs)
        ]
        started = time.monotonic()
        for job in jobs:
            services.video_job_render(job=job)
        done = wait_jobs(jobs, burst_latency * args.burst_jobs * 3 + 120)
        wall = time.monotonic() - started
        assembly = max(j.finished_at.timestamp() - j.segments.get().updated_at.timestamp() for j in done)
        ideal = math.ceil(args.burst_jobs / args.limit) * burst_latency + assembly
        spent = ledger.totals(SpendEntry.objects.filter(job__in=done)).spent_usd
        spend_rows.append(
            {
                "scenario": f"{args.burst_jobs} one-segment jobs at once, limit {args.limit} at a time "
                f"(L = {burst_latency:g} s)",
                "wall": wall,
                "ideal": ideal,
                "creates": fake.stats.creates,
                "rejected": fake.stats.rejected_429,
                "in_flight": fake.stats.max_in_flight,
                "estimate": sum(j.cost_estimate_usd for j in done),
                "spent": spent,
                "saved": 0,
                "notes": f"ideal = ceil({args.burst_jobs}/{args.limit}) x L + assembly ({assembly:.2f} s)",
                "pass": fake.stats.rejected_429 == 0
                and wall <= 1.2 * ideal
                and fake.stats.max_in_flight <= args.limit,
            }
        )
    finally:
        limited.stop()
        fake.stop()

    print(
        f"\nProvider latency L = {args.latency:g} s per clip; {args.workers} worker processes; "
        f"4 s clips at 1280x720.\n"
    )
    print(
        "| scenario | wall s | ideal s | vs ideal | serial sum s | faster than serial | creates/segment "
        "| overhead s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['scenario']} | {row['wall']:.2f} | {row['ideal']:.1f} "
            f"| {row['wall'] / row['ideal']:.2f}x "
            f"| {row['serial']:.0f} | {row['serial'] / row['wall']:.1f}x | {row['creates_per_segment']:.2f} "
            f"| {row['overhead']:.2f} |"
        )
    first = rows[0]
    target = 1.2 * args.latency + first["assembly"]
    verdict = "PASS" if first["wall"] <= target else "FAIL"
    print(
        f"\nTarget: parallel job of {args.segments} segments within 1.2 x L + assembly "
        f"({target:.2f} s): {first['wall']:.2f} s, {verdict}"
    )
    print("overhead = wall - ideal - assembly (per segment for chain: divided by M).")

    print("\nSpend control (issue 7)\n")
    print(
        "| scenario | wall s | ideal s | vs ideal | provider creates | 429s | max in flight | estimate $ "
        "| ledger spent $ | ledger saved $ | notes | verdict |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for row in spend_rows:
        ideal = f"{row['ideal']:.2f}" if row["ideal"] else "-"
        ratio = f"{row['wall'] / row['ideal']:.2f}x" if row["ideal"] else "-"
        print(
            f"| {row['scenario']} | {row['wall']:.2f} | {ideal} | {ratio} | {row['creates']} "
            f"| {row['rejected']} "
            f"| {row['in_flight']} | {row['estimate']:.2f} | {row['spent']:.2f} | {row['saved']:.2f} "
            f"| {row['notes']} | {'PASS' if row['pass'] else 'FAIL'} |"
        )
    print_plan_economics()
    return rows + spend_rows


# The plan of today before plans fitted the model: equal slices of the asked length, each rendered at the
# shortest clip length that covers it and trimmed.
def _plan_of_before(duration: float, target: float, lengths: Sequence[float]) -> float | None:
    """Billed seconds of that plan; None where it was refused (a slice longer than the longest clip)."""
    from segmentation.timing import plan_boundaries

    billed = 0.0
    for start, end in plan_boundaries(duration, target):
        covering = [a for a in lengths if a + 1e-9 >= end - start]
        if not covering:
            return None
        billed += min(covering)
    return billed


def print_plan_economics() -> list[dict]:
    """Billed seconds per shown second for a 30 s job (and a 10-minute one) in about 10 s segments,
    planned as before and as now, on the Veo, Kling and Videos protocol models. Billed is what the
    ledger charges: each segment's render length at the model's price."""
    from jobs.catalogue import model_spec
    from jobs.planning import JobSpec, plan_job

    models = (
        ("veo", "veo-3.1-fast-generate-001", "1280x720", 1.00),
        ("fal", "fal-ai/kling-video/v2.1/master", "1920x1080", 1.00),
        ("openai-videos", "sora-2", "1280x720", 1.07),
    )
    prompt = "A fox runs through snow. It stops at a river. It crosses at dusk. Night falls."
    rows = []
    for duration in (30.0, 600.0):
        for provider, model, size, target in models:
            plan = plan_job(
                JobSpec(prompt=prompt, duration_seconds=duration, provider=provider, model=model, size=size),
                check_budget=False,
            ).plan
            allowed = model_spec(provider, model).lengths_for(size) or ()
            billed_before = _plan_of_before(duration, 10.0, allowed)
            before = None if billed_before is None else billed_before / duration
            now = plan.billed_seconds / plan.planned_seconds
            rows.append(
                {
                    "model": f"{provider}:{model}",
                    "duration": duration,
                    "lengths": "+".join(f"{s.render_seconds:g}" for s in plan.segments[:6])
                    + ("+..." if len(plan.segments) > 6 else ""),
                    "before": before,
                    "now": now,
                    "target": target,
                    "pass": duration != 30.0 or now <= target + 1e-9,
                }
            )
    print("\nBilled seconds per shown second (about 10 s segments)\n")
    print(
        "| model | video s | clips now | billed/shown before | billed/shown now | target (30 s) | verdict |"
    )
    print("|---|---:|---|---:|---:|---:|---|")
    for row in rows:
        target = f"<= {row['target']:.2f}" if row["duration"] == 30.0 else "-"
        verdict = ("PASS" if row["pass"] else "FAIL") if row["duration"] == 30.0 else "-"
        before = "refused (10 s > longest clip)" if row["before"] is None else f"{row['before']:.2f}"
        print(
            f"| {row['model']} | {row['duration']:g} | {row['lengths']} | {before} "
            f"| {row['now']:.2f} | {target} | {verdict} |"
        )
    return rows


if __name__ == "__main__":
    if "--plans-only" in sys.argv:
        # The plan table alone: no database server, no worker (the embedded default's settings).
        sys.path.insert(0, str(REPO_ROOT))
        os.environ["DJANGO_SETTINGS_MODULE"] = "sora_controller.settings"
        os.environ.setdefault("FAL_KEY", "bench:unused")
        os.environ.setdefault("VERTEX_PROJECT", "bench")
        os.environ.setdefault("GOOGLE_APPLICATION_CREDENTIALS", "/unused.json")
        os.environ.setdefault("SORA_API_KEY", "sk-unused")
        import django

        django.setup()
        print_plan_economics()
    else:
        main(sys.argv[1:])
