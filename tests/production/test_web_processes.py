"""The web role's supervisor (sora_controller.web_processes): several daphne processes on one port, each
serving HTTP and WebSockets; a process that dies is replaced; SIGTERM stops them all; configurations
that cannot work are refused with a message that says what to change."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.support.daphne import free_port

ROOT = Path(__file__).resolve().parents[2]


def supervisor_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "TASK_RUNNER", "WEB_CONCURRENCY"}
    }
    return {
        **clean,
        "SECRET_KEY": "test-only-secret",
        "DATA_DIR": str(tmp_path),
        "SECURE_SSL_REDIRECT": "0",
        "TASK_RUNNER": "inprocess",
        **extra,
    }


def run_supervisor(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sora_controller.web_processes", "--bind", "127.0.0.1", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def wait_until(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class TestRefusals:
    def test_several_processes_need_a_shared_channel_layer(self, tmp_path):
        result = run_supervisor("--processes", "2", "--port", str(free_port()), env=supervisor_env(tmp_path))
        assert result.returncode == 2 and "REDIS_URL" in result.stderr

    def test_the_count_must_be_a_whole_number_of_at_least_one(self, tmp_path):
        bad = run_supervisor("--port", str(free_port()), env=supervisor_env(tmp_path, WEB_CONCURRENCY="two"))
        assert bad.returncode == 2 and "WEB_CONCURRENCY" in bad.stderr
        none = run_supervisor("--processes", "0", "--port", str(free_port()), env=supervisor_env(tmp_path))
        assert none.returncode == 2 and "at least 1" in none.stderr

    def test_ipv6_binds_are_refused_with_the_reason(self, tmp_path):
        result = subprocess.run(
            [sys.executable, "-m", "sora_controller.web_processes", "--bind", "::1", "--port", "0"],
            cwd=ROOT,
            env=supervisor_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2 and "IPv4" in result.stderr


def test_several_processes_serve_http_and_sockets_and_are_replaced_and_stopped(tmp_path):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    port = free_port()
    # The Redis channel layer is what makes several processes valid; nothing here publishes, so the
    # layer is never contacted and no Redis server is needed.
    env = supervisor_env(tmp_path, REDIS_URL="redis://127.0.0.1:6379/1", WEB_CONCURRENCY="2")
    log = (tmp_path / "web.log").open("wb")
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "sora_controller.web_processes", "--bind", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{base}/healthz"))

        def two_processes(without: int | None = None) -> set[int]:
            found = children_of(supervisor.pid)
            return found if len(found) == 2 and without not in found else set()

        first = wait_until(two_processes)

        # WebSockets through the shared socket: each connection reaches a consumer (an anonymous
        # visitor is accepted, then closed with 4401), whichever process accepted it.
        for _ in range(6):
            with connect(f"ws://127.0.0.1:{port}/ws/video-jobs/{uuid.uuid4()}/", origin=base) as socket_:
                with pytest.raises(ConnectionClosed):
                    socket_.recv(timeout=10)
                assert socket_.close_code == 4401

        # A process that dies is replaced, and the port keeps answering.
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        replaced = wait_until(lambda: two_processes(without=victim))
        assert len(replaced & first) == 1
        wait_until(lambda: answers(f"{base}/healthz"))

        # SIGTERM stops everything and the supervisor exits cleanly.
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=40) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in replaced)
        assert not answers(f"{base}/healthz")
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
            supervisor.wait()
        log.close()
