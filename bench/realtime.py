"""Realtime fan-out latency: from a service broadcast to N connected WebSocket clients through daphne and
channels_redis (the production path), for both Redis channel layers side by side, with one and with
several daphne processes.

Each event is published the way services publish it (`realtime.broadcast.publish` from synchronous code,
here a worker thread of this process) and carries its send time; logged-in clients on
/ws/video-jobs/<id>/ (session cookie, Origin header, the real AuthMiddlewareStack) record when it
arrives. Sockets are spread over the daphne processes round-robin, as a load balancer would.

Two scenarios per configuration:
- one job, 500 sockets following it: 40 events, one at a time (the next once every socket has the
  previous one, or after a timeout), so the figures are latency, not queueing under overload;
- 1,000 jobs, 5,000 sockets (5 per job): rounds of one event to every job, published back to back.

    .venv/bin/python bench/realtime.py [--layers core,pubsub] [--processes 1,2] [--one-job-sockets 500]
        [--events 40] [--spread-sockets 5000] [--spread-jobs 1000] [--rounds 3]

Needs PostgreSQL (default postgres://postgres@127.0.0.1:5432; the benchmark creates the database
sora_bench_rt, migrates it and drops it afterwards unless --keep-db) and Redis (redis://127.0.0.1:6379/14,
flushed before and after). Loopback only. Prints a markdown table and the targets; exits 1 when a
target is missed by the production default layer.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import resource
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.daphne import Daphne  # noqa: E402
from tests.support.databases import drop_database, recreate_database  # noqa: E402

CONNECT_CONCURRENCY = 50  # handshakes in flight at once: daphne's accept backlog is 50 by default
HANDSHAKE_TIMEOUT = 60.0
CONNECT_ATTEMPTS = 3  # the job page reconnects too
RECONNECT_PAUSE = 0.5
DELIVERY_TIMEOUT = 10.0  # give up on an event that has not reached every client by then
PAUSE_BETWEEN_EVENTS = 0.02
P99_TARGET_MS = 150.0  # 500 sockets following one job (issue 15)


# --- A minimal WebSocket client (RFC 6455) ----------------------------------------------------------
# A bare asyncio Protocol: frames are parsed in data_received, with no coroutine per socket and no await
# per frame, so one process can hold 5,000 sockets and add little to what is measured. Enough for this
# benchmark and nothing else: text frames, ping/pong, close.


def _mask(payload: bytes) -> bytes:
    key = os.urandom(4)
    return key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def _frame(opcode: int, payload: bytes) -> bytes:
    # Client frames must be masked; control payloads here are short (< 126 bytes).
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + _mask(payload)


class Tally:
    """Every delivery of one scenario: latencies, and which event numbers each socket saw."""

    def __init__(self, sockets: int) -> None:
        self.sockets = sockets
        self.latencies: list[float] = []  # seconds
        self.arrivals: dict[int, int] = {}
        self.complete: dict[int, asyncio.Event] = {}

    def expect(self, number: int) -> asyncio.Event:
        self.complete[number] = asyncio.Event()
        return self.complete[number]

    def record(self, client: WsClient, number: int, latency: float) -> None:
        if number in client.seen:
            return  # a repeat is not a second delivery
        client.seen.add(number)
        self.latencies.append(latency)
        count = self.arrivals.get(number, 0) + 1
        self.arrivals[number] = count
        if count == self.sockets and number in self.complete:
            self.complete[number].set()


class WsClient(asyncio.Protocol):
    def __init__(self, request: bytes) -> None:
        self.request = request
        self.buffer = bytearray()
        self.upgraded = False
        self.snapshot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.tally: Tally | None = None
        self.seen: set[int] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.snapshot.done():
            self.snapshot.set_exception(ConnectionError(f"closed before the snapshot: {exc}"))

    def data_received(self, data: bytes) -> None:
        received = time.perf_counter()
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            del self.buffer[: end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self._fail(f"handshake refused: {head.splitlines()[0].decode(errors='replace')}")
                return
            self.upgraded = True
        while (message := self._next_message()) is not None:
            self._handle(message, received)

    def _next_message(self) -> bytes | None:
        """Take the next complete text frame off the buffer (answering pings on the way)."""
        while len(self.buffer) >= 2:
            opcode, length, offset = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F, 2
            if length == 126:
                if len(self.buffer) < 4:
                    return None
                (length,) = struct.unpack_from("!H", self.buffer, 2)
                offset = 4
            elif length == 127:
                if len(self.buffer) < 10:
                    return None
                (length,) = struct.unpack_from("!Q", self.buffer, 2)
                offset = 10
            if len(self.buffer) < offset + length:
                return None
            payload = bytes(self.buffer[offset : offset + length])  # the server never masks
            del self.buffer[: offset + length]
            if opcode == 0x9 and self.transport is not None:
                self.transport.write(_frame(0xA, payload))
            elif opcode == 0x8:
                self._fail("closed by the server")
            elif opcode in (0x1, 0x2):  # the server sends each event in one frame
                return payload
        return None

    def _handle(self, message: bytes, received: float) -> None:
        body = json.loads(message)
        if not self.snapshot.done():
            if body.get("event") == "snapshot":
                self.snapshot.set_result(None)
            else:
                self._fail(f"expected a snapshot first, got {message[:200]!r}")
            return
        data = body.get("data", {})
        number = data.get("bench_event")
        if number is not None and self.tally is not None:
            self.tally.record(self, number, received - data["sent_at"])

    def _fail(self, reason: str) -> None:
        if not self.snapshot.done():
            self.snapshot.set_exception(RuntimeError(reason))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_frame(0x8, struct.pack("!H", 1000)))
            self.transport.close()


async def connect(port: int, job_id: str, cookie: str) -> WsClient:
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws/video-jobs/{job_id}/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: http://127.0.0.1:{port}\r\nCookie: {cookie}\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: WsClient(request), "127.0.0.1", port)
    await asyncio.wait_for(client.snapshot, HANDSHAKE_TIMEOUT)
    return client


async def connect_all(
    ports: Sequence[int], job_ids: Sequence[str], cookie: str, sockets: int
) -> tuple[list[WsClient], list[str], int]:
    """`sockets` clients, job i % len(job_ids), process i % len(ports): round-robin like a balancer.
    A refused or dropped handshake is tried again, as the job page reconnects. Returns the connected
    clients, why the others failed, and how many handshakes were tried again."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    retries = 0

    async def one(i: int) -> WsClient:
        nonlocal retries
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                async with gate:
                    return await connect(ports[i % len(ports)], job_ids[i % len(job_ids)], cookie)
            except (OSError, RuntimeError, TimeoutError):
                if attempt == CONNECT_ATTEMPTS - 1:
                    raise
                retries += 1
                await asyncio.sleep(RECONNECT_PAUSE)
        raise AssertionError("unreachable")

    outcomes = await asyncio.gather(*(one(i) for i in range(sockets)), return_exceptions=True)
    clients = [o for o in outcomes if isinstance(o, WsClient)]
    failures = [f"{type(o).__name__}: {o}" for o in outcomes if not isinstance(o, WsClient)]
    return clients, failures, retries


# --- The run ------------------------------------------------------------------------------------------


@dataclass
class Result:
    layer: str
    processes: int
    scenario: str
    sockets: int
    events: int  # events published (each to one job)
    latencies_ms: list[float] = field(default_factory=list)
    missing: int = 0  # deliveries that never arrived, counting every socket that failed to connect
    refused: int = 0  # sockets that failed to connect
    retries: int = 0  # handshakes tried again (daphne drops a handshake not accepted within 5 s)
    connect_seconds: float = 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def publish_event(job_id: str, number: int) -> None:
    from jobs.events import SEGMENT_STATE
    from realtime.broadcast import publish

    payload = {
        "index": 0,
        "status": "rendering",
        "progress": float(number % 100),
        "attempts": 1,
        "provider_status": "in_progress",
        "error": "",
        "bench_event": number,
        # perf_counter is CLOCK_MONOTONIC, one clock for the machine, so receive times compare to it.
        "sent_at": time.perf_counter(),
    }
    publish(job_id, SEGMENT_STATE, payload)


def publish_round(job_ids: Sequence[str], number: int) -> None:
    for job_id in job_ids:
        publish_event(job_id, number)


async def run_scenario(
    *,
    ports: Sequence[int],
    job_ids: Sequence[str],
    cookie: str,
    sockets: int,
    rounds: int,
    pause: float,
    result: Result,
) -> Result:
    """Connect, then publish `rounds` times one event to every job in `job_ids`; every socket should
    get each round's event for its job exactly once."""
    began = time.perf_counter()
    clients, failures, result.retries = await connect_all(ports, job_ids, cookie, sockets)
    result.connect_seconds = time.perf_counter() - began
    result.refused = len(failures)
    if failures:
        print(f"  {len(failures)} sockets failed to connect, e.g. {failures[0]}", file=sys.stderr)
    tally = Tally(len(clients))
    for client in clients:
        client.tally = tally
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="publisher") as publisher:
        for number in range(rounds):
            complete = tally.expect(number)
            await loop.run_in_executor(publisher, publish_round, job_ids, number)
            result.events += len(job_ids)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(complete.wait(), DELIVERY_TIMEOUT)
            await asyncio.sleep(pause)
    await asyncio.sleep(0.2)  # stragglers of the last round
    result.latencies_ms = [seconds * 1000 for seconds in tally.latencies]
    result.missing = rounds * sockets - len(tally.latencies)  # a socket that never connected misses all
    for client in clients:
        client.close()
    await asyncio.sleep(0.5)  # let the servers see the closes before the next scenario
    return result


# --- Setup and teardown ---------------------------------------------------------------------------------


def raise_fd_limit(sockets: int) -> None:
    """Each client costs one socket here and one in a daphne process (children inherit the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = sockets + 1024
    if soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
        if new_soft < wanted:
            raise SystemExit(f"the open-file limit ({hard}) is too low for {sockets} sockets")


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def setup_django_data(jobs: int) -> tuple[list[str], str]:
    """Migrate, then make the owner, `jobs` jobs to watch and a logged-in session (in this process, on
    the same database daphne uses). Returns (job ids, cookie header value)."""
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    from jobs import services

    call_command("migrate", interactive=False, verbosity=0)
    user = get_user_model().objects.create_user(username="bench-watcher")
    job_ids = [
        str(
            services.video_job_create(
                owner=user, prompt=f"A lighthouse at night, take {n}.", duration_seconds=10, size="320x240"
            ).id
        )
        for n in range(jobs)
    ]
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return job_ids, f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


@contextlib.contextmanager
def publishing_through(layer: str):
    """This process publishes through `layer`, as daphne's processes receive through it."""
    from django.conf import settings
    from django.test import override_settings

    hosts = settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"]
    default = {
        "BACKEND": settings.CHANNEL_LAYER_BACKENDS[layer],
        "CONFIG": {"hosts": hosts, **settings.CHANNEL_LAYER_OPTIONS[layer]},
    }
    with override_settings(CHANNEL_LAYERS={"default": default}):  # channels drops its cached layer
        yield


@contextlib.contextmanager
def web_processes(count: int, env: dict[str, str], log_dir: Path):
    servers: list[Daphne] = []
    try:
        for n in range(count):
            servers.append(
                Daphne(env, log_dir / f"daphne-{env['CHANNEL_LAYER']}-{n}.log", probe="/login/").start()
            )
        yield [server.port for server in servers]
    finally:
        for server in servers:
            server.stop()


def table(results: Sequence[Result]) -> str:
    lines = [
        "| Layer | Web processes | Scenario | Sockets | Events | Deliveries | p50 (ms) | p99 (ms) | max (ms) "
        "| Missed | Failed to connect | Handshakes retried | Connect all (s) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.layer} | {r.processes} | {r.scenario} | {r.sockets:,} | {r.events:,} | "
            f"{len(r.latencies_ms):,} | {r.percentile(50):.1f} | {r.percentile(99):.1f} | "
            f"{max(r.latencies_ms, default=float('nan')):.1f} | {r.missing} | {r.refused} | "
            f"{r.retries} | {r.connect_seconds:.1f} |"
        )
    return "\n".join(lines)


def targets(
    results: Sequence[Result], default_layer: str, one_job: str, spread: str
) -> tuple[list[str], bool]:
    """The issue's targets, judged on the production default layer; returns (lines, all met)."""
    lines, met = [], True
    for r in results:
        if r.layer != default_layer:
            continue
        if r.scenario == one_job:
            ok = r.percentile(99) <= P99_TARGET_MS and r.missing == 0
            lines.append(
                f"- {one_job}, {r.processes} web process(es): p99 {r.percentile(99):.1f} ms "
                f"(target <= {P99_TARGET_MS:g} ms), {r.missing} missed: {'met' if ok else 'MISSED'}"
            )
        else:
            ok = r.missing == 0
            lines.append(
                f"- {spread}, {r.processes} web process(es): {r.missing} missed: {'met' if ok else 'MISSED'}"
            )
        met = met and ok
    return lines, met


def parse_list(text: str, convert: Callable[[str], object]) -> list:
    return [convert(item.strip()) for item in text.split(",") if item.strip()]


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", default="core,pubsub", help="channel layers to compare (CHANNEL_LAYER)")
    parser.add_argument("--processes", default="1,2", help="daphne process counts to compare")
    parser.add_argument("--one-job-sockets", type=int, default=500)
    parser.add_argument("--events", type=int, default=40, help="events in the one-job scenario")
    parser.add_argument("--spread-sockets", type=int, default=5000, help="0 skips the many-jobs scenario")
    parser.add_argument("--spread-jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="events per job in the many-jobs scenario")
    parser.add_argument("--server-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--db-name", default="sora_bench_rt")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    layers = parse_list(args.layers, str)
    process_counts = parse_list(args.processes, int)
    if not layers or not process_counts or min(process_counts) < 1:
        parser.error("--layers and --processes need at least one entry; process counts are positive")
    if args.one_job_sockets < 1 or args.events < 1 or args.spread_sockets < 0 or args.rounds < 1:
        parser.error("socket, event and round counts must be positive")
    if args.spread_sockets and not 1 <= args.spread_jobs <= args.spread_sockets:
        parser.error("--spread-jobs must be between 1 and --spread-sockets")
    raise_fd_limit(max(args.one_job_sockets, args.spread_sockets))

    data_dir = Path(tempfile.mkdtemp(prefix="sora-bench-rt-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "sora_controller.settings",
        "DATABASE_URL": f"{args.server_url}/{args.db_name}",
        "REDIS_URL": args.redis_url,
        # The same key in every process: the session's auth hash is checked with it.
        "SECRET_KEY": "bench-realtime-not-secret",
        "TASK_RUNNER": "inprocess",
        "DATA_DIR": str(data_dir),
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",  # plain HTTP on loopback
        "LOG_LEVEL": "ERROR",
    }
    recreate_database(args.server_url, args.db_name)
    flush_redis(args.redis_url)
    os.environ.update(env)
    one_job = f"1 job, {args.one_job_sockets:,} sockets"
    spread = f"{args.spread_jobs:,} jobs, {args.spread_sockets:,} sockets"
    results: list[Result] = []
    try:
        job_ids, cookie = setup_django_data(max(1, args.spread_jobs if args.spread_sockets else 1))
        from django.conf import settings

        unknown = set(layers) - set(settings.CHANNEL_LAYER_BACKENDS)
        if unknown:
            known = ", ".join(settings.CHANNEL_LAYER_BACKENDS)
            parser.error(f"unknown layer(s) {', '.join(sorted(unknown))}; known: {known}")
        default_layer = settings.CHANNEL_LAYER
        for layer in layers:
            for count in process_counts:
                flush_redis(args.redis_url)
                with (
                    publishing_through(layer),
                    web_processes(count, {**env, "CHANNEL_LAYER": layer}, data_dir) as ports,
                ):
                    scenarios = [
                        (one_job, job_ids[:1], args.one_job_sockets, args.events, PAUSE_BETWEEN_EVENTS)
                    ]
                    if args.spread_sockets:
                        scenarios.append(
                            (spread, job_ids[: args.spread_jobs], args.spread_sockets, args.rounds, 0.5)
                        )
                    for name, jobs, sockets, rounds, pause in scenarios:
                        result = asyncio.run(
                            run_scenario(
                                ports=ports,
                                job_ids=jobs,
                                cookie=cookie,
                                sockets=sockets,
                                rounds=rounds,
                                pause=pause,
                                result=Result(layer, count, name, sockets, 0),
                            )
                        )
                        print(
                            f"  {layer} x{count} {name}: p50 {result.percentile(50):.1f} ms, "
                            f"p99 {result.percentile(99):.1f} ms, missed {result.missing}, "
                            f"connect {result.connect_seconds:.1f} s",
                            file=sys.stderr,
                            flush=True,
                        )
                        results.append(result)
    finally:
        flush_redis(args.redis_url)
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            drop_database(args.server_url, args.db_name)

    print(
        f"Service broadcast (realtime.broadcast.publish from a worker thread) to WebSocket clients through "
        f"daphne and each channels_redis layer (core: RedisChannelLayer, pubsub: RedisPubSubChannelLayer); "
        f"sockets spread round-robin over the web processes; Redis and PostgreSQL on loopback; clients in "
        f"one asyncio process on the same machine; Python {platform.python_version()}, {os.cpu_count()} "
        f"CPUs. Latency = client receive - publish call. Production default: CHANNEL_LAYER={default_layer}."
    )
    print()
    print(table(results))
    print()
    lines, met = targets(results, default_layer, one_job, spread)
    print("Targets (issue 15), on the default layer:")
    print("\n".join(lines))
    print()
    print(f"Missed: deliveries that had not arrived {DELIVERY_TIMEOUT:g} s after the event was published.")
    print(f"Load average (1 min) before the run {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}.")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
