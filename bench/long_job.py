"""The cost of a long job: a 30-minute job (180 segments of 10 s) against a 3-segment job, phase by phase.

- planning: `jobs.planning.plan_job` (split the prompt, fit the model's lengths, price, check budget);
- creation: `jobs.services.video_job_submit` (plan, then store the job and its segments);
- job page: GET /jobs/<id>/ through daphne, logged in (the HTML the browser paints first);
- snapshot: the job's socket, from connect to the snapshot message (what makes the page live);
- first paint: page + snapshot, what a person waits for before the page shows the live job;
- assembly: `rendering.assembly.assemble` of the job's clips (probe each, stream-copy concat, verify).

Each phase prints its time at each size, the ratio long/short, the cost per segment, and the cost of
each segment added between sizes (a cost per added segment that climbs with the size would be a
quadratic term). A phase grows at most linearly when the ratio is no larger than the ratio of segment
counts (60). The snapshot must stay under 200 ms so the page is interactive.

    .venv/bin/python bench/long_job.py [--segments 3,60,180] [--runs 7]

Needs PostgreSQL (default postgres://postgres@127.0.0.1:5432; the benchmark creates the database
sora_bench_long, migrates it and drops it afterwards unless --keep-db) and Redis
(redis://127.0.0.1:6379/13, flushed before and after). Loopback only. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.realtime import connect, flush_redis  # noqa: E402
from tests.support.daphne import Daphne  # noqa: E402
from tests.support.databases import drop_database, recreate_database  # noqa: E402

SEGMENT_SECONDS = 10.0
SNAPSHOT_TARGET_MS = 200.0
CLIP_SIZE = "160x120"  # tiny clips: assembly's cost is per clip (probe, demux), not per pixel
CLIP_FPS = 10
HTTP_TIMEOUT = 30.0
PROMPT = (
    "A lighthouse keeper climbs the spiral stairs at dusk. The lamp flickers on and sweeps the sea. "
    "A storm rolls in from the west; waves break over the rocks. At dawn the sea is calm again and "
    "gulls circle the tower."
)


@dataclass
class Phase:
    name: str
    what: str
    ms: dict[int, float]  # segment count -> median milliseconds

    def ratio(self, small: int, large: int) -> float:
        return self.ms[large] / self.ms[small]

    def per_segment(self, count: int) -> float:
        return self.ms[count] / count

    def linear(self, small: int, large: int) -> bool:
        return self.ratio(small, large) <= large / small


def median_ms(runs: int, action: Callable[[], Any]) -> float:
    """The median wall time of `runs` calls, in milliseconds (the median: neighbours on this machine
    make single runs noisy in both directions)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def spec_for(segments: int) -> Any:
    from jobs.planning import JobSpec

    return JobSpec(
        prompt=PROMPT,
        duration_seconds=segments * SEGMENT_SECONDS,
        segment_seconds=SEGMENT_SECONDS,
        provider="local",
        size="320x240",
    )


def setup_django() -> tuple[Any, str]:
    """Migrate, collect static files (the job page links them through the manifest, as in
    production), make the owner and a logged-in session. Returns (user, cookie header value)."""
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    user = get_user_model().objects.create_user(username="bench-long")
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return user, f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def get_page(url: str, cookie: str) -> int:
    request = urllib.request.Request(url, headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
        body = response.read()
        if response.status != 200 or b'data-testid="segment-0"' not in body:
            raise RuntimeError(f"{url}: {response.status}, not the job page")
        return len(body)


def snapshot_ms(port: int, job_id: str, cookie: str) -> float:
    async def once() -> float:
        started = time.perf_counter()
        client = await connect(port, job_id, cookie)
        elapsed = (time.perf_counter() - started) * 1000
        client.close()
        return elapsed

    return asyncio.run(once())


def clips_for(count: int, work: Path) -> list[Any]:
    """`count` clips of SEGMENT_SECONDS, copies of three rendered once (assembly reads every file)."""
    from bench.clips import ensure_clips
    from rendering.assembly import ClipInput

    sources = ensure_clips(count=3, seconds=SEGMENT_SECONDS, size=CLIP_SIZE, fps=CLIP_FPS, verbose=False)
    folder = work / f"clips-{count}"
    folder.mkdir()
    clips = []
    for index in range(count):
        path = folder / f"clip-{index:04d}.mp4"
        shutil.copyfile(sources[index % len(sources)], path)
        clips.append(ClipInput(path=path, duration=SEGMENT_SECONDS))
    return clips


def measure(args: argparse.Namespace, port: int, user: Any, cookie: str, work: Path) -> list[Phase]:
    from jobs.planning import plan_job
    from jobs.services import video_job_submit
    from rendering.assembly import assemble
    from rendering.media_types import ClipTarget

    counts = args.counts
    phases = {
        name: Phase(name, what, {})
        for name, what in [
            ("planning", "plan_job: split, fit lengths, price"),
            ("creation", "video_job_submit: plan and store job + segments"),
            ("job page", "GET /jobs/<id>/ (HTML) through daphne"),
            ("snapshot", "socket connect -> snapshot message"),
            ("first paint", "job page + snapshot"),
            ("assembly", "assemble(): probe, stream-copy concat, verify"),
        ]
    }
    target = ClipTarget.from_size(CLIP_SIZE, CLIP_FPS)
    for count in counts:
        spec = spec_for(count)
        video_job_submit(owner=user, spec=spec)  # warm: catalogue, strategy, queries compiled
        phases["planning"].ms[count] = median_ms(args.runs, lambda spec=spec: plan_job(spec))
        jobs: list[Any] = []
        phases["creation"].ms[count] = median_ms(
            args.runs, lambda spec=spec, jobs=jobs: jobs.append(video_job_submit(owner=user, spec=spec))
        )
        job = jobs[-1]
        if job.segments.count() != count:
            raise RuntimeError(f"planned {job.segments.count()} segments, expected {count}")
        url = f"http://127.0.0.1:{port}/jobs/{job.id}/"
        get_page(url, cookie)  # warm: templates compiled, connections open
        phases["job page"].ms[count] = median_ms(args.runs, lambda url=url: get_page(url, cookie))
        snapshot_ms(port, str(job.id), cookie)
        times = [snapshot_ms(port, str(job.id), cookie) for _ in range(args.runs)]
        phases["snapshot"].ms[count] = statistics.median(times)
        phases["first paint"].ms[count] = phases["job page"].ms[count] + phases["snapshot"].ms[count]
        clips = clips_for(count, work)
        out = work / f"assembled-{count}.mp4"
        phases["assembly"].ms[count] = median_ms(
            max(1, args.runs // 2), lambda clips=clips, out=out: assemble(clips, out, target)
        )
        print(f"  {count} segments measured", file=sys.stderr, flush=True)
    return list(phases.values())


def marginal(phase: Phase, low: int, high: int) -> float:
    """Milliseconds each segment added between `low` and `high` segments cost."""
    return (phase.ms[high] - phase.ms[low]) / (high - low)


def table(phases: Sequence[Phase], counts: Sequence[int]) -> str:
    small, large = counts[0], counts[-1]
    steps = list(pairwise(counts))
    head = " | ".join(f"{n} segments (ms)" for n in counts)
    step_head = " | ".join(f"ms per added segment {a}->{b}" for a, b in steps)
    lines = [
        f"| Phase | What | {head} | Ratio {large}/{small} (segments x{large / small:g}) "
        f"| ms per segment at {small} | ms per segment at {large} | {step_head} | Grows |",
        "|---|---|" + "---:|" * (len(counts) + 3 + len(steps)) + "---|",
    ]
    for p in phases:
        times = " | ".join(f"{p.ms[n]:.1f}" for n in counts)
        step_costs = " | ".join(f"{marginal(p, a, b):.2f}" for a, b in steps)
        lines.append(
            f"| {p.name} | {p.what} | {times} | {p.ratio(small, large):.1f} | {p.per_segment(small):.2f} | "
            f"{p.per_segment(large):.2f} | {step_costs} | "
            f"{'at most linearly' if p.linear(small, large) else 'FASTER THAN LINEARLY'} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--segments",
        default="3,60,180",
        help="segment counts: the short job, any between (to show the cost per added segment), the long job",
    )
    parser.add_argument("--runs", type=int, default=7, help="runs per phase (the median is reported)")
    parser.add_argument("--server-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--db-name", default="sora_bench_long")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    args.counts = sorted({int(n) for n in args.segments.split(",") if n.strip()})
    if len(args.counts) < 2 or args.counts[0] < 1 or args.runs < 1:
        parser.error("--segments takes at least two positive counts; --runs must be positive")
    small, large = args.counts[0], args.counts[-1]

    work = Path(tempfile.mkdtemp(prefix="sora-bench-long-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "sora_controller.settings",
        "DATABASE_URL": f"{args.server_url}/{args.db_name}",
        "REDIS_URL": args.redis_url,
        "SECRET_KEY": "bench-long-job-not-secret",  # the same in both processes: sessions check it
        "TASK_RUNNER": "inprocess",  # nothing is rendered; no worker fleet needed
        "DATA_DIR": str(work / "data"),
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",  # plain HTTP on loopback
        "LOG_LEVEL": "ERROR",
        "MAX_DURATION_SECONDS": str(max(1800.0, large * SEGMENT_SECONDS)),
    }
    recreate_database(args.server_url, args.db_name)
    flush_redis(args.redis_url)
    os.environ.update(env)
    server = None
    try:
        user, cookie = setup_django()
        server = Daphne(env, work / "daphne.log", probe="/healthz").start()
        phases = measure(args, server.port, user, cookie, work)
    finally:
        if server is not None:
            server.stop()
        flush_redis(args.redis_url)
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            drop_database(args.server_url, args.db_name)
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"A {large}-segment job ({large * SEGMENT_SECONDS / 60:g} min) against a {small}-segment job, local "
        f"provider, {SEGMENT_SECONDS:g} s segments; page and socket through one daphne process, PostgreSQL "
        f"and Redis on loopback; assembly of {CLIP_SIZE} clips; median of {args.runs} runs "
        f"({max(1, args.runs // 2)} for assembly); Python {platform.python_version()}, {os.cpu_count()} CPUs."
    )
    print()
    print(table(phases, args.counts))
    print()
    snapshot = next(p for p in phases if p.name == "snapshot")
    superlinear = [p.name for p in phases if not p.linear(small, large)]
    snapshot_ok = snapshot.ms[large] < SNAPSHOT_TARGET_MS
    growth = "met" if not superlinear else "MISSED by " + ", ".join(superlinear)
    print(
        f"Targets (issue 15): every phase grows at most linearly: {growth}; snapshot of the {large}-segment "
        f"job {snapshot.ms[large]:.1f} ms (target < {SNAPSHOT_TARGET_MS:g} ms): "
        f"{'met' if snapshot_ok else 'MISSED'}."
    )
    print(f"Load average (1 min) before the run {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}.")
    return 0 if snapshot_ok and not superlinear else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
