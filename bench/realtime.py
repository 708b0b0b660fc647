"""Realtime fan-out latency: from a service broadcast to N connected WebSocket clients, through daphne and
channels_redis, the production path.

Each event is published the way services publish it (`realtime.broadcast.publish` from synchronous code,
here a worker thread of this process, with REDIS_URL set so the layer is channels_redis), and carries its
send time; N logged-in clients on /ws/video-jobs/<id>/ (session cookie, Origin header, the real
AuthMiddlewareStack) record when it arrives. One event at a time: the next is sent once every client has
the previous one (or after a timeout), so the figures are latency, not queueing under overload.

    .venv/bin/python bench/realtime.py [--clients 1,100,500] [--events 40] [--time-limit 120]

Needs PostgreSQL (default postgres://postgres@127.0.0.1:5432; the benchmark creates the database
sora_bench_rt, migrates it and drops it afterwards unless --keep-db) and Redis (redis://127.0.0.1:6379/14,
flushed before and after). Loopback only. Prints a markdown table.
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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.daphne import Daphne  # noqa: E402
from tests.support.databases import drop_database, recreate_database  # noqa: E402

CONNECT_CONCURRENCY = 50  # handshakes in flight at once: daphne's accept backlog is 50 by default
DELIVERY_TIMEOUT = 10.0  # give up on an event that has not reached every client by then
PAUSE_BETWEEN_EVENTS = 0.02


# --- A minimal WebSocket client (RFC 6455) ----------------------------------------------------------
# Enough for this benchmark and nothing else: text frames, ping/pong, close. Small and predictable, so
# the client side adds as little as possible to what is measured.


@dataclass
class Client:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    latencies: dict[int, float] = field(default_factory=dict)  # event number -> seconds
    task: asyncio.Task | None = None


def _mask(payload: bytes) -> bytes:
    key = os.urandom(4)
    return key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def _frame(opcode: int, payload: bytes) -> bytes:
    # Client frames must be masked; control payloads here are short (< 126 bytes).
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + _mask(payload)


async def read_message(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes | None:
    """The next text/binary message (None on close); answers pings on the way."""
    parts: list[bytes] = []
    while True:
        head = await reader.readexactly(2)
        fin, opcode, length = head[0] & 0x80, head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await reader.readexactly(8))
        payload = await reader.readexactly(length)  # the server never masks
        if opcode == 0x8:
            return None
        if opcode == 0x9:
            writer.write(_frame(0xA, payload))
            continue
        if opcode == 0xA:
            continue
        parts.append(payload)
        if fin:
            return b"".join(parts)


async def connect(port: int, path: str, cookie: str) -> Client:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n"
        f"Cookie: {cookie}\r\n\r\n"
    )
    writer.write(request.encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"handshake refused: {head.splitlines()[0].decode(errors='replace')}")
    first = await read_message(reader, writer)
    if first is None or json.loads(first).get("event") != "snapshot":
        raise RuntimeError(f"expected a snapshot first, got {first!r} (closed: not logged in?)")
    return Client(reader, writer)


async def listen(
    client: Client, arrivals: dict[int, int], done: dict[int, asyncio.Event], total: int
) -> None:
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        while True:
            message = await read_message(client.reader, client.writer)
            received = time.perf_counter()
            if message is None:
                return
            data = json.loads(message).get("data", {})
            number = data.get("bench_event")
            if number is None:
                continue
            client.latencies[number] = received - data["sent_at"]
            arrivals[number] = arrivals.get(number, 0) + 1
            if arrivals[number] == total:
                done[number].set()


async def close(client: Client) -> None:
    if client.task is not None:
        client.task.cancel()
    with contextlib.suppress(Exception):
        client.writer.write(_frame(0x8, struct.pack("!H", 1000)))
        client.writer.close()
        await asyncio.wait_for(client.writer.wait_closed(), 2)


# --- The run ------------------------------------------------------------------------------------------


@dataclass
class Result:
    clients: int
    events: int
    latencies_ms: list[float]
    missing: int
    connect_seconds: float

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
        # perf_counter is one clock for the whole process, so the clients' receive times compare to it.
        "sent_at": time.perf_counter(),
    }
    publish(job_id, SEGMENT_STATE, payload)


async def measure(port: int, job_id: str, cookie: str, clients: int, events: int, limit: float) -> Result:
    path = f"/ws/video-jobs/{job_id}/"
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one() -> Client:
        async with gate:
            return await connect(port, path, cookie)

    began = time.perf_counter()
    connected = await asyncio.gather(*(one() for _ in range(clients)))
    connect_seconds = time.perf_counter() - began
    arrivals: dict[int, int] = {}
    done = {n: asyncio.Event() for n in range(events)}
    for client in connected:
        client.task = asyncio.create_task(listen(client, arrivals, done, clients))
    loop = asyncio.get_running_loop()
    stop_at = time.monotonic() + limit
    sent = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="publisher") as publisher:
        for number in range(events):
            if time.monotonic() > stop_at:
                break
            await loop.run_in_executor(publisher, publish_event, job_id, number)
            sent += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done[number].wait(), DELIVERY_TIMEOUT)
            await asyncio.sleep(PAUSE_BETWEEN_EVENTS)
    await asyncio.sleep(0.2)  # stragglers of the last event
    latencies = [seconds * 1000 for client in connected for seconds in client.latencies.values()]
    await asyncio.gather(*(close(client) for client in connected))
    return Result(clients, sent, latencies, sent * clients - len(latencies), connect_seconds)


# --- Setup and teardown ---------------------------------------------------------------------------------


def raise_fd_limit(clients: int) -> None:
    """Each client costs one socket here (and one in daphne, a separate process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = clients + 256
    if soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
        if new_soft < wanted:
            raise SystemExit(f"the open-file limit ({hard}) is too low for {clients} clients")


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def setup_django_data() -> tuple[str, str]:
    """Migrate, then make the owner, a job to watch and a logged-in session (in this process, on the
    same database daphne uses). Returns (job id, cookie header value)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    from jobs import services

    call_command("migrate", interactive=False, verbosity=0)
    user = get_user_model().objects.create_user(username="bench-watcher")
    job = services.video_job_create(
        owner=user, prompt="A lighthouse at night. A storm rolls in.", duration_seconds=20, size="320x240"
    )
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return str(job.id), f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def table(results: Sequence[Result]) -> str:
    lines = [
        "| Clients | Events | Deliveries | p50 (ms) | p99 (ms) | max (ms) | Missed | Connect all (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.clients} | {r.events} | {len(r.latencies_ms)} | {r.percentile(50):.1f} | "
            f"{r.percentile(99):.1f} | {max(r.latencies_ms, default=float('nan')):.1f} | {r.missing} | "
            f"{r.connect_seconds:.2f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,100,500", help="comma-separated client counts")
    parser.add_argument("--events", type=int, default=40, help="events per client count")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per client count at most")
    parser.add_argument("--server-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--db-name", default="sora_bench_rt")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.clients.split(",") if n.strip()]
    if not counts or min(counts) < 1 or args.events < 1:
        parser.error("--clients and --events must be positive")
    raise_fd_limit(max(counts))

    data_dir = Path(tempfile.mkdtemp(prefix="sora-bench-rt-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "sora_controller.settings",
        "DATABASE_URL": f"{args.server_url}/{args.db_name}",
        "REDIS_URL": args.redis_url,
        # The same key in both processes: the session's auth hash is checked with it.
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
    process = None
    try:
        job_id, cookie = setup_django_data()
        process = Daphne(env, data_dir / "daphne.log", probe="/login/").start()
        port = process.port
        results = []
        for clients in counts:
            result = asyncio.run(measure(port, job_id, cookie, clients, args.events, args.time_limit))
            p50, p99 = result.percentile(50), result.percentile(99)
            print(f"  {clients} clients: p50 {p50:.1f} ms, p99 {p99:.1f} ms", file=sys.stderr)
            results.append(result)
    finally:
        if process is not None:
            process.stop()
        flush_redis(args.redis_url)
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            drop_database(args.server_url, args.db_name)

    cpus = os.cpu_count()
    print(
        f"Service broadcast (realtime.broadcast.publish from a worker thread) to N WebSocket clients through "
        f"daphne + channels_redis; one daphne process, Redis and PostgreSQL on loopback; clients in one "
        f"asyncio process; Python {platform.python_version()}, {cpus} CPUs. Latency = client receive - "
        f"publish call."
    )
    print()
    print(table(results))
    print()
    print(f"Missed: deliveries that had not arrived {DELIVERY_TIMEOUT:g} s after the event was published.")
    return 1 if any(r.missing for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
