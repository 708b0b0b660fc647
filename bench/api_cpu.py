"""CPU per API request, in process: the ASGI application (as daphne runs it, each request in its own
thread) driven by `--concurrency` concurrent requests on one event loop, no sockets. Measures the
process's CPU time per request (user and system, os.times) for the bare view, the job detail and the draft
create, and with --profile prints a yappi profile (cpu clock) of one scenario.

    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python bench/api_cpu.py \
        [--requests 500] [--concurrency 16] [--profile create]

Needs a migrated database named by DATABASE_URL: the user, token and 10-segment job are created on the
first run (user `bench-cpu`) and reused. The settings are bench/api.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.api import CREATE_BODY  # noqa: E402  (after the path is set)
from bench.api import SERVER_SETTINGS as SETTINGS  # noqa: E402


def fixture() -> tuple[str, str]:
    """(token key, job id) of the bench user, created once."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from jobs import services

    user, _ = get_user_model().objects.get_or_create(username="bench-cpu")
    token, _ = Token.objects.get_or_create(user=user)
    job = user.video_jobs.filter(duration_seconds=100, segment_seconds=10).first()
    if job is None:
        job = services.video_job_create(
            owner=user, prompt="A lighthouse at night. " * 10, duration_seconds=100, segment_seconds=10
        )
    return token.key, str(job.id)


async def call(app, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    status = 0

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def drive(app, request, total: int, concurrency: int) -> dict[int, int]:
    statuses: dict[int, int] = {}
    left = total

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            status = await request(app)
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


def print_profile(stats, requests: int, lines: int) -> None:
    """The top functions by total then by own time: ms per request (total, own) and calls per request."""
    for order in ("ttot", "tsub"):
        print(f"--- by {order} (ms/request total, own; calls/request)")
        stats.sort(order)
        for stat in list(stats)[:lines]:
            where = f"{stat.module.split('site-packages/')[-1]}:{stat.lineno} {stat.name}"
            total, own = stat.ttot / requests * 1000, stat.tsub / requests * 1000
            print(f"{total:8.3f} {own:8.3f} {stat.ncall / requests:7.1f}  {where}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--scenarios", default="bare,detail,create")
    parser.add_argument("--profile", help="a scenario to profile with yappi (cpu clock)")
    parser.add_argument("--profile-lines", type=int, default=60)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        parser.error("set DATABASE_URL (and REDIS_URL) to the database to run against")
    for name, value in SETTINGS.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="sora-api-cpu-"))

    import django

    django.setup()
    from sora_controller.asgi import application

    token, job_id = fixture()
    auth = [(b"authorization", f"Token {token}".encode())]
    body = json.dumps(CREATE_BODY).encode()
    json_headers = [
        *auth,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    scenarios = {
        "bare": (lambda app: call(app, "GET", "/api/_bench/json/", [], b""), 200),
        "detail": (lambda app: call(app, "GET", f"/api/video-jobs/{job_id}/", auth, b""), 200),
        "create": (lambda app: call(app, "POST", "/api/video-jobs/", json_headers, body), 201),
    }
    loop = asyncio.new_event_loop()
    for name in args.scenarios.split(","):
        request, expect = scenarios[name]
        loop.run_until_complete(drive(application, request, args.warmup, args.concurrency))
        if args.profile == name:
            import yappi

            yappi.set_clock_type("cpu")
            yappi.start(builtins=True)
        began = os.times()
        statuses = loop.run_until_complete(drive(application, request, args.requests, args.concurrency))
        ended = os.times()
        user_ms = (ended.user - began.user) / args.requests * 1000
        system_ms = (ended.system - began.system) / args.requests * 1000
        cpu_ms = user_ms + system_ms
        if args.profile == name:
            yappi.stop()
        bad = {s: n for s, n in statuses.items() if s != expect}
        print(
            f"{name}: {cpu_ms:.2f} ms CPU/request (user {user_ms:.2f}, system {system_ms:.2f}; "
            f"concurrency {args.concurrency})" + (f" unexpected {bad}" if bad else "")
        )
        if args.profile == name:
            print_profile(yappi.get_func_stats(), args.requests, args.profile_lines)
            yappi.clear_stats()
    return 0


if __name__ == "__main__":
    sys.exit(main())
