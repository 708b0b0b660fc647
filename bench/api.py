"""REST API throughput and latency under concurrency, against daphne on PostgreSQL, with one web process
and with several (sora_controller.web_processes: daphne processes sharing one listening socket).

Scenarios, each driven by the same pool of concurrent keep-alive clients, taking turns (--rounds):

- bare: a bare Django JSON view (jobs.api.bench_views) on the same server: the cost of the stack itself
- detail: GET /api/video-jobs/{id}/ of a job with 10 segments (token auth, DRF, the job and its segments
  in one round trip)
- create: POST /api/video-jobs/ with render false (validation, planning, one insert statement, answered
  from the rows it wrote)

Prints one markdown table with, for 1 and for N processes side by side, requests/s, p50 and p99 latency,
the web processes' CPU per request, PostgreSQL's (when it runs on this machine: it shares the cores) and
the ratios against the bare view of the same configuration;
then the targets (detail >= 0.5x bare throughput and p99 <= 2x bare p99; create >= 0.35x bare) as
met or missed for each configuration.

    .venv/bin/python bench/api.py [--processes 2] [--concurrency 16] [--requests 2000] [--time-limit 60]

Needs PostgreSQL (default postgres://postgres@127.0.0.1:5432) and Redis (default redis://127.0.0.1:6379/1;
several web processes need the Redis channel layer, and both configurations use the same settings). The
benchmark creates its own database (sora_bench), migrates it and drops it afterwards (--keep-db to keep
it), and empties the Redis database it is given. Only loopback traffic. Client and server share the
machine, so N processes scale by less than N: the client's threads need CPU too.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.daphne import WebProcesses  # noqa: E402
from tests.support.databases import drop_database, recreate_database  # noqa: E402

VENV_BIN = Path(sys.executable).parent


@dataclass
class Result:
    name: str
    count: int
    errors: dict[int, int]
    seconds: float
    latencies_ms: list[float]
    server_cpu_ms: float = float("nan")  # the web processes' CPU per request
    database_cpu_ms: float = float("nan")  # PostgreSQL's CPU per request, when it runs on this machine

    @property
    def rps(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    @classmethod
    def combined(cls, parts: list[Result]) -> Result:
        """One result of several runs of the same scenario: their requests, time and latencies."""
        errors: dict[int, int] = {}
        for part in parts:
            for code, count in part.errors.items():
                errors[code] = errors.get(code, 0) + count
        return cls(
            parts[0].name,
            sum(part.count for part in parts),
            errors,
            sum(part.seconds for part in parts),
            [latency for part in parts for latency in part.latencies_ms],
        )

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# The web process's settings for every API benchmark (bench/api_cpu.py runs the app in process with them).
SERVER_SETTINGS = {
    "DJANGO_SETTINGS_MODULE": "sora_controller.settings",
    "SECRET_KEY": "bench-only-secret",
    "BENCH_VIEWS": "1",
    "API_CREATE_THROTTLE": "1000000/hour",
    "TASK_RUNNER": "inprocess",
    "DEBUG": "0",
    "LOG_LEVEL": "ERROR",
    # Plain HTTP on loopback: no TLS proxy in front, so no redirect to https.
    "SECURE_SSL_REDIRECT": "0",
    "SECURE_HSTS_SECONDS": "0",
}
# What every create scenario posts: a draft of three sentences.
CREATE_BODY = {"prompt": "A fox runs. It jumps. It sleeps.", "duration_seconds": 30, "render": False}


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


def database_cpu_seconds() -> float:
    """User + system CPU of every PostgreSQL process on this machine so far (its backends serve the
    requests; the background writers are part of their cost): it shares the two cores with the web
    processes and the load generator."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name, rest = (entry / "stat").read_text().split(") ", 1)
        except (OSError, ValueError):
            continue
        if name.endswith("(postgres"):
            fields = rest.split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


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


TARGETS = (
    # (scenario, measure, bound, comparison): the targets, against the bare view of the same run.
    ("detail", "throughput", 0.5, ">="),
    ("detail", "p99", 2.0, "<="),
    ("create", "throughput", 0.35, ">="),
)
SCENARIO_NAMES = {
    "bare": "bare Django JSON view",
    "detail": "job detail (10 segments)",
    "create": "create (render false)",
}


def run_configuration(
    server: WebProcesses, token: str, job_id: str, args: argparse.Namespace
) -> dict[str, Result]:
    """Start `server`, drive every scenario against it (warm-up first), stop it."""
    # PostgreSQL's CPU is read from this machine's processes: only when the database runs here.
    database_local = urlsplit(args.server_url).hostname in {"127.0.0.1", "localhost", "::1", None}
    base, auth = server.url, {"Authorization": f"Token {token}"}
    body = CREATE_BODY
    requests_by_scenario: dict[str, tuple[Request, int]] = {
        "bare": (lambda s: s.get(f"{base}/api/_bench/json/"), 200),
        "detail": (lambda s: s.get(f"{base}/api/video-jobs/{job_id}/", headers=auth), 200),
        "create": (lambda s: s.post(f"{base}/api/video-jobs/", json=body, headers=auth), 201),
    }
    parts: dict[str, list[Result]] = {key: [] for key in requests_by_scenario}
    cpu_seconds = dict.fromkeys(requests_by_scenario, 0.0)
    database_seconds = dict.fromkeys(requests_by_scenario, 0.0)
    server.start()
    try:
        for key, (request, expect) in requests_by_scenario.items():
            drive(
                key, request, expect, concurrency=args.concurrency, total=args.warmup, limit=args.time_limit
            )
        # The scenarios take turns, each round a share of every scenario's requests: this machine's
        # speed drifts by tens of percent over a minute (it shares its host), and measured one after
        # the other the scenarios met different machines; in turns, every ratio sees the same drift.
        for _ in range(args.rounds):
            for key, (request, expect) in requests_by_scenario.items():
                cpu_before, database_before = server.cpu_seconds(), database_cpu_seconds()
                parts[key].append(
                    drive(
                        SCENARIO_NAMES[key],
                        request,
                        expect,
                        concurrency=args.concurrency,
                        total=args.requests // args.rounds,
                        limit=args.time_limit / args.rounds,
                    )
                )
                cpu_seconds[key] += server.cpu_seconds() - cpu_before
                database_seconds[key] += database_cpu_seconds() - database_before
    finally:
        server.stop()
    results = {key: Result.combined(results) for key, results in parts.items()}
    for key, result in results.items():
        result.server_cpu_ms = cpu_seconds[key] / max(result.count, 1) * 1000
        if database_local:
            result.database_cpu_ms = database_seconds[key] / max(result.count, 1) * 1000
        if result.errors:
            print(f"warning: unexpected responses in {result.name!r}: {result.errors}", file=sys.stderr)
    return results


def ratio(result: Result, bare: Result, measure: str) -> float:
    if measure == "throughput":
        return result.rps / bare.rps
    return result.percentile(99) / bare.percentile(99)


def print_report(runs: dict[int, dict[str, Result]], args: argparse.Namespace, load: str) -> None:
    counts = list(runs)
    many = counts[-1]
    print(
        f"\nAPI under concurrency {args.concurrency}: daphne with 1 and with {many} web processes "
        f"(sora_controller.web_processes) on PostgreSQL and Redis, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, client and server on one machine\n"
    )
    header = ["scenario"]
    align = ["---"]
    for n in counts:
        label = f"{n} process" + ("es" if n > 1 else "")
        header += [f"{label}: req/s", "p50 ms", "p99 ms", "CPU ms/req", "DB CPU ms/req", "req/s vs bare"]
        header.append("p99 vs bare")
        align += ["---:"] * 7
    header.append(f"req/s {many} vs 1")
    align.append("---:")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(align) + "|")
    for key, name in SCENARIO_NAMES.items():
        row = [name]
        for n in counts:
            result, bare = runs[n][key], runs[n]["bare"]
            row += [
                f"{result.rps:.0f}",
                f"{result.percentile(50):.1f}",
                f"{result.percentile(99):.1f}",
                f"{result.server_cpu_ms:.1f}",
                f"{result.database_cpu_ms:.1f}",
                f"{ratio(result, bare, 'throughput'):.2f}x",
                f"{ratio(result, bare, 'p99'):.2f}x",
            ]
        row.append(f"{runs[many][key].rps / runs[1][key].rps:.2f}x")
        print("| " + " | ".join(row) + " |")
    print()
    for key, measure, bound, comparison in TARGETS:
        for n in counts:
            value = ratio(runs[n][key], runs[n]["bare"], measure)
            met = value >= bound if comparison == ">=" else value <= bound
            what = "throughput" if measure == "throughput" else "p99"
            print(
                f"- target: {key} {what} {comparison} {bound}x bare ({n} process{'es' if n > 1 else ''}): "
                f"{value:.2f}x, {'met' if met else 'missed'}"
            )
    failed = sum(sum(r.errors.values()) for run in runs.values() for r in run.values())
    print(
        f"\n(requests per scenario: {args.requests}, in {args.rounds} turns; unexpected responses: {failed}; "
        f"load average before the run: {load})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--db-name", default="sora_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/1")
    parser.add_argument(
        "--processes", type=int, default=max(2, os.cpu_count() or 2), help="the several-process case"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2000, help="per scenario")
    parser.add_argument(
        "--rounds", type=int, default=4, help="turns the scenarios take, sharing the requests"
    )
    parser.add_argument("--warmup", type=int, default=100, help="requests per scenario before measuring")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per scenario at most")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    import redis

    data_dir = Path(tempfile.mkdtemp(prefix="sora-bench-api-"))
    env = {
        **os.environ,
        **SERVER_SETTINGS,
        "DATABASE_URL": f"{args.server_url}/{args.db_name}",
        # The production topology: Redis for the cache (the create throttle's history) and the channel
        # layer (which several web processes need); the same for one process, so only the count differs.
        "REDIS_URL": args.redis_url,
        "DATA_DIR": str(data_dir),
    }
    env.pop("WEB_CONCURRENCY", None)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    cache = redis.Redis.from_url(args.redis_url)
    recreate_database(args.server_url, args.db_name)
    runs: dict[int, dict[str, Result]] = {}
    try:
        token, job_id = setup_data(env)
        for processes in (1, args.processes):
            cache.flushdb()  # each configuration starts from an empty throttle history
            server = WebProcesses(
                env, data_dir / f"web-{processes}.log", processes, probe="/api/_bench/json/"
            )
            runs[processes] = run_configuration(server, token, job_id, args)
    finally:
        if not args.keep_db:
            drop_database(args.server_url, args.db_name)
        cache.flushdb()
        shutil.rmtree(data_dir, ignore_errors=True)

    print_report(runs, args, load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
