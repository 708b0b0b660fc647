"""REST API throughput and latency under concurrency, against daphne on PostgreSQL.

Scenarios, each driven by the same pool of concurrent keep-alive clients:

- bare: a bare Django JSON view (jobs.api.bench_views) on the same server: the cost of the stack itself
- detail: GET /api/video-jobs/{id}/ of a job with 10 segments (token auth, DRF, 3 queries)
- create: POST /api/video-jobs/ with render false (validation, planning, one transaction)

Prints a markdown table with requests/s, p50 and p99 latency and the ratios against the bare view.

    .venv/bin/python bench/api.py [--concurrency 16] [--requests 2000] [--time-limit 60]

Needs a PostgreSQL server (default postgres://postgres@127.0.0.1:5432); the benchmark creates its own
database (sora_bench), migrates it and drops it afterwards (--keep-db to keep it). Only loopback traffic.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.daphne import Daphne  # noqa: E402
from tests.support.databases import drop_database, recreate_database  # noqa: E402

VENV_BIN = Path(sys.executable).parent


@dataclass
class Result:
    name: str
    count: int
    errors: dict[int, int]
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def setup_data(env: dict[str, str]) -> tuple[str, str]:
    """Migrate, then create the user, its token and a 10-segment job; returns (token key, job id)."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    script = (
        "from django.contrib.auth import get_user_model\n"
        "from rest_framework.authtoken.models import Token\n"
        "from jobs import services\n"
        "user = get_user_model().objects.create_user('bench')\n"
        "job = services.video_job_create(owner=user, prompt='A lighthouse at night. ' * 10,"
        " duration_seconds=100, segment_seconds=10)\n"
        "assert job.segments.count() == 10\n"
        "print(Token.objects.create(user=user).key, job.id)\n"
    )
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return out[-2], out[-1]


Request = Callable[[requests.Session], requests.Response]


def drive(name: str, request: Request, expect: int, *, concurrency: int, total: int, limit: float) -> Result:
    """`concurrency` threads, each with its own keep-alive session, share `total` requests (or stop at
    `limit` seconds). Latency is measured per request on the client."""
    lock = threading.Lock()
    issued = 0
    latencies: list[float] = []
    errors: dict[int, int] = {}
    stop_at = time.monotonic() + limit

    def worker() -> None:
        nonlocal issued
        session = requests.Session()
        mine: list[float] = []
        bad: dict[int, int] = {}
        while True:
            with lock:
                if issued >= total or time.monotonic() > stop_at:
                    break
                issued += 1
            started = time.perf_counter()
            response = request(session)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code == expect:
                mine.append(elapsed)
            else:
                bad[response.status_code] = bad.get(response.status_code, 0) + 1
        session.close()
        with lock:
            latencies.extend(mine)
            for code, count in bad.items():
                errors[code] = errors.get(code, 0) + count

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Result(name, len(latencies), errors, time.perf_counter() - began, latencies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--db-name", default="sora_bench")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2000, help="per scenario")
    parser.add_argument("--warmup", type=int, default=100, help="requests per scenario before measuring")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per scenario at most")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="sora-bench-api-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "sora_controller.settings",
        "DATABASE_URL": f"{args.server_url}/{args.db_name}",
        "SECRET_KEY": "bench-only-secret",
        "DATA_DIR": str(data_dir),
        "BENCH_VIEWS": "1",
        "API_CREATE_THROTTLE": "1000000/hour",
        "TASK_RUNNER": "inprocess",
        "DEBUG": "0",
        "LOG_LEVEL": "ERROR",
        # Under ASGI every request runs its sync code in a fresh thread, and Django's connections are
        # per thread: persistent connections (the default DB_CONN_MAX_AGE=60) are never reused and pile
        # up until PostgreSQL refuses new clients. Django's advice for ASGI is no persistence (or a pool).
        "DB_CONN_MAX_AGE": "0",
        # Plain HTTP on loopback: no TLS proxy in front, so no redirect to https.
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_HSTS_SECONDS": "0",
    }
    env.pop("REDIS_URL", None)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    recreate_database(args.server_url, args.db_name)
    server = None
    try:
        key, job_id = setup_data(env)
        server = Daphne(env, data_dir / "daphne.log", probe="/api/_bench/json/").start()
        base = server.url
        auth = {"Authorization": f"Token {key}"}
        body = {"prompt": "A fox runs. It jumps. It sleeps.", "duration_seconds": 30, "render": False}

        scenarios: list[tuple[str, Request, int]] = [
            ("bare Django JSON view", lambda s: s.get(f"{base}/api/_bench/json/"), 200),
            (
                "job detail (10 segments)",
                lambda s: s.get(f"{base}/api/video-jobs/{job_id}/", headers=auth),
                200,
            ),
            (
                "create (render false)",
                lambda s: s.post(f"{base}/api/video-jobs/", json=body, headers=auth),
                201,
            ),
        ]
        results = []
        for name, request, expect in scenarios:
            drive(
                name, request, expect, concurrency=args.concurrency, total=args.warmup, limit=args.time_limit
            )
            result = drive(
                name,
                request,
                expect,
                concurrency=args.concurrency,
                total=args.requests,
                limit=args.time_limit,
            )
            if result.errors:
                print(f"warning: unexpected responses in {name!r}: {result.errors}", file=sys.stderr)
            results.append(result)
    finally:
        if server is not None:
            server.stop()
        if not args.keep_db:
            drop_database(args.server_url, args.db_name)
        shutil.rmtree(data_dir, ignore_errors=True)

    bare = results[0]
    print(
        f"\nAPI under concurrency {args.concurrency}: daphne (1 process) on PostgreSQL, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, client and server on one machine\n"
    )
    print("| scenario | requests | requests/s | p50 ms | p99 ms | throughput vs bare | p50 vs bare |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.name} | {r.count} | {r.rps:.0f} | {r.percentile(50):.1f} | {r.percentile(99):.1f} "
            f"| {r.rps / bare.rps:.2f}x | {r.percentile(50) / bare.percentile(50):.1f}x |"
        )
    mean = statistics.fmean(bare.latencies_ms) if bare.latencies_ms else float("nan")
    failed = sum(sum(r.errors.values()) for r in results)
    print(
        f"\n(bare view mean latency {mean:.1f} ms; unexpected responses: {failed}; "
        f"load average before the run: {load})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
