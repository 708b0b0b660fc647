"""A whole production fleet as subprocesses: its own redis-server, Celery workers, an assembler and beat.

Shared by the chaos bench (bench/chaos.py) and the chaos fleet test (tests/fleet/test_chaos.py), so the
commands, environment and kill/restart rules are defined once. Every process runs in a session of its
own, so a SIGKILL reaches the whole process group (a Celery parent and its pool children) and nothing
is left behind; every wait is bounded.

Redis runs with `--save "" --appendonly no`: a restart loses every queued and unacknowledged message,
as a broker without persistence does in production. The fleet must survive that from database state.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import redis
from celery import Celery

ROOT = Path(__file__).resolve().parents[2]

# Environment variables that bound how fast a fleet notices lost work (jobs.leases), set short for the
# chaos fleet test so a recovery takes seconds, not the shipped defaults' minute. A name this checkout's
# settings module never reads is left out (see recovery_env), so the fleet never claims a knob it lacks.
FAST_RECOVERY: dict[str, str] = {
    # A segment or assembly being worked on is held this long, renewed by heartbeat (every third of it).
    "LEASE_SECONDS": "10",
    # A message sent to the workers must be picked up within this long, or it is sent again.
    "REQUEUE_AFTER_SECONDS": "10",
    # How often beat runs the reaper that resumes whatever is past its lease.
    "REAPER_INTERVAL_SECONDS": "2",
    # Redis hands a dead worker's unacknowledged messages out again after this long, checked this often.
    "CELERY_VISIBILITY_TIMEOUT": "10",
    "CELERY_RESTORE_INTERVAL": "1",
}
SETTINGS_MODULE = ROOT / "sora_controller" / "settings.py"


def recovery_env(settings_source: str | None = None) -> dict[str, str]:
    """FAST_RECOVERY limited to the variables the settings module reads (it names each one once, quoted:
    `env_int("REAPER_INTERVAL_SECONDS", 60)`)."""
    source = SETTINGS_MODULE.read_text() if settings_source is None else settings_source
    return {name: value for name, value in FAST_RECOVERY.items() if f'"{name}"' in source}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fleet_env(
    *,
    database_url: str,
    redis_url: str,
    media_root: Path,
    data_dir: Path,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of every fleet process: one database, one broker, one media root."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "sora_controller.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": os.environ.get("SECRET_KEY", "fleet-only-secret"),
        "TASK_RUNNER": "celery",
        "MEDIA_ROOT": str(media_root),
        "DATA_DIR": str(data_dir),
        "LOCAL_PROVIDER_DIR": str(data_dir / "local-provider"),
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra or {})
    return env


def slow_ffmpeg(directory: Path, delay: float) -> Path:
    """An ffmpeg that waits `delay` seconds before each run: given to the assembler (FFMPEG_BINARY) so an
    assembly lasts long enough for a kill to land in the middle of it. Latency injection only: the real
    binary does the work."""
    from rendering.ffmpeg_binary import ffmpeg_exe

    real = ffmpeg_exe()
    path = directory / "slow-ffmpeg"
    path.write_text(f'#!/bin/sh\nsleep {delay:g}\nexec "{real}" "$@"\n')
    path.chmod(0o755)
    return path


class ManagedProcess:
    """One long-running command in a session of its own: started, SIGKILLed, started again, stopped."""

    def __init__(self, name: str, cmd: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.cmd = cmd
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> ManagedProcess:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                self.cmd,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.starts += 1
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown, no message given back."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (a warm shutdown), then SIGKILL after `timeout`. Pool children that outlived their
        parent die with the group either way."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=timeout)
        self.kill()

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class RedisServer(ManagedProcess):
    """A redis-server of our own on `port`, with no persistence: a restart starts from an empty broker."""

    def __init__(self, port: int, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH")
        cmd = [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
            "--daemonize",
            "no",
        ]
        super().__init__("redis", cmd, os.environ, directory / "redis.log")
        self.port = port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        super().start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"redis-server on port {self.port} exited: {self.log_tail()}")
            try:
                if redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5).ping():
                    return self
            except redis.RedisError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout:g} s")

    def restart(self, down_for: float = 1.0) -> None:
        """Kill it and start it again on the same port: everything it held is gone."""
        self.kill()
        time.sleep(down_for)
        self.start()


def celery_worker(
    name: str,
    env: Mapping[str, str],
    log_path: Path,
    *,
    queues: str,
    concurrency: int,
) -> ManagedProcess:
    """A `celery worker` as the Procfile runs it (prefork, prefetch 1, fair scheduling)."""
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "sora_controller",
        "worker",
        "--loglevel=INFO",
        "--pool=prefork",
        f"--concurrency={concurrency}",
        "--prefetch-multiplier=1",
        "-O",
        "fair",
        "-Q",
        queues,
        "-n",
        node_name(name),
        "--without-gossip",
        "--without-mingle",
    ]
    return ManagedProcess(name, cmd, env, log_path)


def celery_beat(name: str, env: Mapping[str, str], directory: Path) -> ManagedProcess:
    """`celery beat`, with its schedule file in `directory` (not the working tree)."""
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "sora_controller",
        "beat",
        "--loglevel=INFO",
        "-s",
        str(directory / "celerybeat-schedule"),
    ]
    return ManagedProcess(name, cmd, env, directory / f"{name}.log")


def node_name(name: str) -> str:
    return f"{name}@{socket.gethostname()}"


def wait_workers_ready(broker_url: str, workers: list[ManagedProcess], timeout: float = 60.0) -> None:
    """Wait until every worker answers a ping on `broker_url` (a probe app of its own, so the caller's
    Celery configuration, which may name another broker, plays no part)."""
    # Not the current app: Celery's current_app would otherwise send the caller's own tasks to this broker.
    probe = Celery("fleet-probe", broker=broker_url, set_as_current=False)
    try:
        waiting = {node_name(w.name): w for w in workers}
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            for worker in waiting.values():
                if not worker.running:
                    raise RuntimeError(f"worker {worker.name} exited: {worker.log_tail()}")
            replies = probe.control.ping(destination=list(waiting), timeout=0.5) or []
            for reply in replies:
                for node in reply:
                    waiting.pop(node, None)
        if waiting:
            raise RuntimeError(f"no ping answer within {timeout:g} s from {', '.join(waiting)}")
    finally:
        probe.close()


class Fleet:
    """The processes of one fleet by name; `stop()` ends them all, whatever state they are in."""

    def __init__(self) -> None:
        self.processes: dict[str, ManagedProcess] = {}

    def add(self, process: ManagedProcess) -> ManagedProcess:
        self.processes[process.name] = process
        return process

    def __getitem__(self, name: str) -> ManagedProcess:
        return self.processes[name]

    def stop(self) -> None:
        # Beat and the workers first, the broker last, so nothing logs a storm of reconnects meanwhile.
        for process in sorted(self.processes.values(), key=lambda p: isinstance(p, RedisServer)):
            try:
                process.stop()
            except Exception:  # one stuck process must not keep the others running
                process.kill()


def start_render_fleet(
    *,
    redis_server: RedisServer,
    env: Mapping[str, str],
    directory: Path,
    workers: int = 2,
    concurrency: int = 2,
    assembly_delay: float = 0.0,
) -> Fleet:
    """The Procfile's fleet on `redis_server` (already started): `workers` submit/poll workers named
    worker-1..N, one assembler, and beat; returns once every worker answers a ping. With
    `assembly_delay`, the assembler's ffmpeg waits that long before each run (see slow_ffmpeg)."""
    fleet = Fleet()
    fleet.add(redis_server)
    try:
        for n in range(1, workers + 1):
            name = f"worker-{n}"
            fleet.add(
                celery_worker(
                    name, env, directory / f"{name}.log", queues="submit,poll", concurrency=concurrency
                )
            )
        assembler_env = dict(env)
        if assembly_delay > 0:
            assembler_env["FFMPEG_BINARY"] = str(slow_ffmpeg(directory, assembly_delay))
        fleet.add(
            celery_worker(
                "assembler", assembler_env, directory / "assembler.log", queues="assemble", concurrency=1
            )
        )
        fleet.add(celery_beat("beat", env, directory))
        for process in fleet.processes.values():
            if not process.running:
                process.start()
        wait_workers_ready(
            redis_server.url, [p for name, p in fleet.processes.items() if name not in {"redis", "beat"}]
        )
    except BaseException:
        fleet.stop()
        raise
    return fleet
