"""A real local HTTP receiver for outgoing webhooks, the settings that let it be reached, and a
recorder for queued delivery tasks (tests that make attempts themselves, in the test's thread)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from callbacks import services
from tests.api.conftest import _api_settings, api, make_job, other_api  # noqa: F401


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each POST with the next status of `statuses` (the last one repeats)."""

    url: str = ""
    statuses: list[int] = field(default_factory=lambda: [204])
    delay: float = 0.0
    location: str = ""
    requests: list[Received] = field(default_factory=list)

    def wait_for(self, count: int, timeout: float = 60) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.requests


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                state.requests.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                status = state.statuses[min(len(state.requests) - 1, len(state.statuses) - 1)]
            if state.delay:
                time.sleep(state.delay)
            self.send_response(status)
            if state.location:
                self.send_header("Location", state.location)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/sora"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _local_receivers_allowed(settings) -> None:
    # The receiver is plain http on loopback: both refused by default (see test_ssrf for that).
    settings.ALLOW_HTTP_CALLBACKS = True
    settings.ALLOW_PRIVATE_CALLBACKS = True
    settings.CALLBACK_TIMEOUT_SECONDS = 2.0
    settings.CALLBACK_MAX_ATTEMPTS = 3
    settings.CALLBACK_BACKOFF_SECONDS = 0.05


@pytest.fixture
def queued(monkeypatch) -> list[tuple[float, str, tuple]]:
    """Delivery tasks queued by the services, recorded as (delay, task name, args) instead of run."""
    calls: list[tuple[float, str, tuple]] = []
    monkeypatch.setattr(services, "enqueue", lambda name, *args: calls.append((0.0, name, args)))
    monkeypatch.setattr(services, "enqueue_in", lambda delay, name, *args: calls.append((delay, name, args)))
    return calls
