"""Chaos on the real fleet: N jobs render while workers, the assembler and beat are SIGKILLed at random
points and Redis is restarted once with an empty broker.

The fleet is the Procfile's, as subprocesses (tests/support/fleet.py): PostgreSQL (a database of its
own, created, migrated and dropped here), a redis-server of its own without persistence (a restart loses
every queued message), two submit/poll workers, an assembler and celery beat. Clips come from the
OpenAI-Videos stand-in (rendering/fake_api) with a latency, so polls are in flight when the kills land;
the assembler's ffmpeg waits --assembly-delay seconds before each run so a kill can land mid-assembly.
Jobs arrive --spacing seconds apart. A seeded RNG chooses each victim, when it dies and when it comes back.
A process that exits by itself (a Celery worker can die of a broker restart) is started again after
SUPERVISOR_DELAY, as the deployment's supervisor would, and reported.

Prints a markdown table: jobs completed, creates per segment (provider creates / segments: 1.00 means no
double create), longest stall (the longest time any in-flight segment or assembling job went without its
database row changing, sampled), clips lost, total time and kills made, then the targets line.

    .venv/bin/python bench/chaos.py [--jobs 20] [--seed 1] [--time-limit 300] [--set NAME=VALUE ...]

Needs PostgreSQL (default postgres://postgres@127.0.0.1:5432) and redis-server on PATH; it never touches
another Redis. The fleet runs with the settings as shipped (LEASE_SECONDS, REQUEUE_AFTER_SECONDS,
REAPER_INTERVAL_SECONDS: the bound the README documents); --fast-recovery gives it the short ones of the
chaos fleet test (tests/support/fleet.py FAST_RECOVERY), and --set NAME=VALUE any setting on every process.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.chaos import (  # noqa: E402
    Outcome,
    Stall,
    StallWatch,
    all_finished,
    in_flight_counts,
    measure,
    start_submitter,
    wait_submitter,
)
from tests.support.databases import drop_database, recreate_database  # noqa: E402
from tests.support.fleet import (  # noqa: E402
    Fleet,
    RedisServer,
    fleet_env,
    recovery_env,
    start_render_fleet,
)

API_KEY = "sk-chaos-bench"
TARGET_STALL_SECONDS = 60.0
SAMPLE_SECONDS = 0.5
VICTIMS = ("worker-1", "worker-2", "assembler", "beat")
SUPERVISOR_DELAY = 1.0  # seconds before a process that exited by itself is started again


@dataclass
class Kill:
    at: float  # seconds since the first job was submitted
    victim: str
    rendering: int  # segments rendering when it died
    assembling: int  # jobs assembling when it died


@dataclass
class Exit:
    at: float  # seconds since the first job was submitted (when it was noticed, within SAMPLE_SECONDS)
    process: str
    code: int | None


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"--set takes NAME=VALUE, got {pair!r}")
        overrides[name] = value
    return overrides


def configure_django(database_url: str, redis_url: str, data_dir: Path, media_root: Path) -> None:
    """This process reads the fleet's database (to sample stalls and measure the outcome); it never
    enqueues, so it needs no worker of its own."""
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "sora_controller.settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SECRET_KEY": "bench-only-secret",
            "TASK_RUNNER": "celery",
            "DATA_DIR": str(data_dir),
            "MEDIA_ROOT": str(media_root),
            "LOG_LEVEL": "ERROR",
        }
    )
    import django

    django.setup()


def migrate(env: dict[str, str]) -> None:
    import subprocess

    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )


def interrupt(signum: int, frame: object) -> None:
    """A SIGTERM ends the run through the same clean-up as Ctrl-C: every process stopped, the database
    dropped."""
    raise KeyboardInterrupt


def verdict(met: bool) -> str:
    return "met" if met else "missed"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--min-segments", type=int, default=3)
    parser.add_argument("--max-segments", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds from the first job")
    parser.add_argument("--kills", type=int, default=8, help="SIGKILLs of workers, assembler and beat")
    parser.add_argument("--kill-gap", type=float, nargs=2, default=(3.0, 8.0), metavar=("MIN", "MAX"))
    parser.add_argument("--down-for", type=float, nargs=2, default=(1.0, 3.0), metavar=("MIN", "MAX"))
    parser.add_argument("--spacing", type=float, default=1.0, help="seconds between two jobs")
    parser.add_argument("--latency", type=float, default=8.0, help="provider seconds per clip")
    parser.add_argument("--poll-after-ms", type=int, default=2000, help="the provider's poll hint")
    parser.add_argument(
        "--assembly-delay", type=float, default=1.0, help="seconds before each assembly ffmpeg"
    )
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--redis-port", type=int, default=6391)
    parser.add_argument("--server-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--db-name", default="sora_bench_chaos")
    parser.add_argument(
        "--fast-recovery", action="store_true", help="the chaos fleet test's short leases and reaper interval"
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--keep-logs", action="store_true", help="keep the fleet's logs and print where")
    args = parser.parse_args(argv)
    if not 1 <= args.min_segments <= args.max_segments:
        parser.error("--min-segments must be at least 1 and at most --max-segments")
    try:
        args.overrides = parse_overrides(args.overrides)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    return args


@dataclass
class RunResult:
    outcome: Outcome
    longest_stall: Stall
    samples: int
    finished: bool  # every job finished before the time limit
    seconds: float
    kills: list[Kill]
    exits: list[Exit]
    redis_restarted_at: float | None
    recovery: dict[str, str]
    started_at: datetime  # when the first job was submitted (wall clock, to place the longest stall)


class Chaos:
    """The seeded schedule of kills, restarts and the one Redis restart, advanced by `step(now)`."""

    def __init__(self, args: argparse.Namespace, fleet: Fleet, redis_server: RedisServer) -> None:
        self.args = args
        self.fleet = fleet
        self.redis_server = redis_server
        self.rng = random.Random(args.seed)
        # Drawn now so the RNG's sequence does not depend on when the submitter finishes.
        self.redis_restart_delay = self.rng.uniform(0.2, 0.8) * args.latency
        self.redis_down_for = self.rng.uniform(*args.down_for)
        self.redis_restart_at: float | None = None  # set once every job is in (see submitted)
        self.redis_restarted_at: float | None = None
        self.next_kill_at = self.rng.uniform(*args.kill_gap)
        self.comes_back: dict[str, float] = {}  # victim -> when it is started again
        self.kills: list[Kill] = []
        self.exits: list[Exit] = []  # processes that died without being killed

    def submitted(self, now: float) -> None:
        """Every job is in: Redis restarts within the provider latency that follows, while the last
        jobs' clips are still in flight. Not before: a broker down while a render is asked for fails
        that request (the web process's problem, which this bench does not measure)."""
        self.redis_restart_at = now + self.redis_restart_delay

    def step(self, now: float) -> None:
        self._supervise(now)
        for victim, due in list(self.comes_back.items()):
            if now >= due:
                self.fleet[victim].start()
                del self.comes_back[victim]
        if len(self.kills) < self.args.kills and now >= self.next_kill_at:
            victim = self._alive_from(self.rng.randrange(len(VICTIMS)))
            self.next_kill_at = now + self.rng.uniform(*self.args.kill_gap)
            down_for = self.rng.uniform(*self.args.down_for)
            if victim is not None:
                rendering, assembling = in_flight_counts()
                self.fleet[victim].kill()
                self.kills.append(Kill(round(now, 1), victim, rendering, assembling))
                self.comes_back[victim] = now + down_for
        if (
            self.redis_restarted_at is None
            and self.redis_restart_at is not None
            and now >= self.redis_restart_at
        ):
            self.redis_restarted_at = round(now, 1)
            self.redis_server.restart(down_for=self.redis_down_for)

    def _alive_from(self, index: int) -> str | None:
        """The victim drawn, or the next one up if it is down: the RNG's draws stay the same whatever is
        down at that moment, so a seed replays the same schedule as far as the machine's timing allows."""
        for offset in range(len(VICTIMS)):
            name = VICTIMS[(index + offset) % len(VICTIMS)]
            if name not in self.comes_back:
                return name
        return None  # everything is down already: this kill slot passes

    def _supervise(self, now: float) -> None:
        """Start again, after SUPERVISOR_DELAY, a process that exited without being killed, as the
        deployment's supervisor does (docker-compose `restart: unless-stopped`, a Procfile platform)."""
        for name in VICTIMS:
            process = self.fleet[name]
            if name not in self.comes_back and not process.running:
                code = process.process.returncode if process.process is not None else None
                self.exits.append(Exit(round(now, 1), name, code))
                self.comes_back[name] = now + SUPERVISOR_DELAY


def run(args: argparse.Namespace, work: Path) -> RunResult:
    """Start the fleet, submit the jobs, make chaos until every job finished or the time limit; then
    measure. Every process is stopped on the way out, whatever happened."""
    from django.utils import timezone

    from rendering.fake_api import FakeConfig, FakeVideoServer

    media_root, data_dir = work / "media", work / "data"
    database_url = f"{args.server_url}/{args.db_name}"
    redis_server = RedisServer(args.redis_port, work)
    recovery = {**(recovery_env() if args.fast_recovery else {}), **args.overrides}
    fake = FakeVideoServer(
        FakeConfig(latency=args.latency, poll_after_ms=args.poll_after_ms, api_key=API_KEY, seed=args.seed)
    )
    env = fleet_env(
        database_url=database_url,
        redis_url=redis_server.url,
        media_root=media_root,
        data_dir=data_dir,
        extra={"SORA_BASE_URL": fake.url, "SORA_API_KEY": API_KEY, "LOG_LEVEL": "INFO", **recovery},
    )
    fleet: Fleet | None = None
    submitter = None
    try:
        migrate(env)
        fake.start()
        redis_server.start()
        fleet = start_render_fleet(
            redis_server=redis_server,
            env=env,
            directory=work,
            workers=2,
            concurrency=args.worker_concurrency,
            assembly_delay=args.assembly_delay,
        )
        submitter = start_submitter(
            env,
            jobs=args.jobs,
            min_segments=args.min_segments,
            max_segments=args.max_segments,
            seed=args.seed,
            spacing=args.spacing,
        )
        began, started_at = time.monotonic(), timezone.now()
        chaos = Chaos(args, fleet, redis_server)
        watch = StallWatch()
        finished = False
        while (now := time.monotonic() - began) <= args.time_limit:
            if submitter is not None and submitter.poll() is not None:
                wait_submitter(submitter, timeout=1)
                submitter = None
                chaos.submitted(now)
            watch.sample()
            if submitter is None and all_finished(args.jobs):
                finished = True
                break
            chaos.step(now)
            time.sleep(SAMPLE_SECONDS)
        return RunResult(
            outcome=measure(fake.stats.creates_by_prompt),
            longest_stall=watch.longest,
            samples=watch.samples,
            finished=finished,
            seconds=time.monotonic() - began,
            kills=chaos.kills,
            exits=chaos.exits,
            redis_restarted_at=chaos.redis_restarted_at,
            recovery=recovery,
            started_at=started_at,
        )
    finally:
        if submitter is not None and submitter.poll() is None:
            submitter.kill()
            submitter.wait(timeout=10)
        if fleet is not None:
            fleet.stop()
        else:
            redis_server.stop()
        fake.stop()


def report(args: argparse.Namespace, result: RunResult, load: str) -> None:
    outcome, stall = result.outcome, result.longest_stall
    by_victim = Counter(k.victim for k in result.kills)
    settings_text = ", ".join(f"{k}={v}" for k, v in sorted(result.recovery.items())) or "as shipped"
    print(
        f"\nChaos: {args.jobs} jobs of {args.min_segments}-{args.max_segments} x 4 s segments, "
        f"{args.spacing:g} s apart, on 2 submit/poll workers (concurrency {args.worker_concurrency}), "
        f"1 assembler and beat, PostgreSQL and a Redis without persistence; provider latency "
        f"{args.latency:g} s; seed {args.seed}; {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"settings: {settings_text}"
    )
    stall_text = f"{'>= ' if not result.finished else ''}{stall.seconds:.1f} s"
    if stall.what and stall.since is not None:
        began = (stall.since - result.started_at).total_seconds()
        stall_text += f" ({stall.what}, from {began:.1f} s)"
    kills_text = ", ".join(f"{by_victim[v]} {v}" for v in VICTIMS if by_victim[v]) or "none"
    restarted = result.redis_restarted_at
    redis_text = f"Redis restarted at {restarted:g} s" if restarted is not None else "Redis not restarted"
    print("| measure | result | target |")
    print("|---|---:|---:|")
    print(f"| jobs completed | {outcome.jobs_completed} of {args.jobs} | {args.jobs} of {args.jobs} |")
    print(f"| creates per segment | {outcome.creates_per_segment:.2f} | 1.00 |")
    print(f"| longest stall | {stall_text} | <= {TARGET_STALL_SECONDS:g} s |")
    print(f"| clips lost | {outcome.clips_lost} of {outcome.segments} | 0 |")
    print(f"| total time | {result.seconds:.1f} s{'' if result.finished else ' (time limit)'} | |")
    exits_text = f"; crashes by themselves: {len(result.exits)}, restarted" if result.exits else ""
    print(f"| kills made | {len(result.kills)} ({kills_text}); {redis_text}{exits_text} | |")
    targets = [
        ("jobs", outcome.jobs == args.jobs and outcome.jobs_completed == args.jobs),
        # Every segment created exactly once (a double and a lost create would cancel out in the ratio).
        ("creates", outcome.segments > 0 and not outcome.double_created and not outcome.never_created),
        ("stall", result.finished and stall.seconds <= TARGET_STALL_SECONDS),
        ("clips", outcome.clips_lost == 0),
    ]
    print(
        f"\nTargets: {args.jobs} of {args.jobs}, 1.00, <= {TARGET_STALL_SECONDS:g} s, 0: "
        + ", ".join(f"{name} {verdict(met)}" for name, met in targets)
    )
    kills = "; ".join(f"{k.at:g} s {k.victim} ({k.rendering}/{k.assembling})" for k in result.kills)
    print(f"\nKills (when, victim, segments rendering / jobs assembling at that moment): {kills or 'none'}")
    if result.exits:
        exits = "; ".join(f"{e.at:g} s {e.process} (exit code {e.code})" for e in result.exits)
        print(f"Exited without being killed (started again after {SUPERVISOR_DELAY:g} s): {exits}")
    if outcome.double_created or outcome.never_created:
        print(
            f"Segments created at the provider more than once: {outcome.double_created}; "
            f"never: {outcome.never_created}"
        )
    for line in outcome.unfinished:
        print(f"Unfinished: {line}")
    print(f"(stall samples: {result.samples}; load average before the run: {load})")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="sora-bench-chaos-"))
    (work / "media").mkdir()
    (work / "data").mkdir()
    configure_django(
        f"{args.server_url}/{args.db_name}",
        f"redis://127.0.0.1:{args.redis_port}/0",
        work / "data",
        work / "media",
    )
    from django.db import connections

    recreate_database(args.server_url, args.db_name)
    try:
        result = run(args, work)
    finally:
        connections.close_all()
        if not args.keep_db:
            drop_database(args.server_url, args.db_name)
        if args.keep_logs:
            print(f"fleet logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    report(args, result, load)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
