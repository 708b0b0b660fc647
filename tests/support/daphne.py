"""Start and stop a real daphne (HTTP + WebSocket) for browser tests, fleet tests and benchmarks, alone or
as the production web role (sora_controller.web_processes: several daphne processes on one socket)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1)
    except urllib.error.HTTPError:
        return True  # it answered; the status of the page does not matter
    except OSError:
        return False
    return True


class Daphne:
    """`with Daphne(env, log) as server: server.url` — daphne on a free loopback port."""

    def __init__(
        self, env: dict[str, str], log: Path, *, probe: str = "/healthz", timeout: float = 60
    ) -> None:
        self.env, self.log_path, self.probe, self.timeout = env, log, probe, timeout
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Daphne:
        # A free port can be taken between the probe and daphne's bind; then daphne exits: try again.
        for _ in range(3):
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "daphne",
                        "-b",
                        "127.0.0.1",
                        "-p",
                        str(self.port),
                        "sora_controller.asgi:application",
                    ],
                    cwd=ROOT,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stopping it stops all it started
                )
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                if _answers(f"{self.url}{self.probe}"):
                    return self
                time.sleep(0.2)
            self.stop()
        raise RuntimeError(f"daphne did not start; see {self.log_path}")

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> Daphne:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class WebProcesses:
    """The web role as deployed: sora_controller.web_processes with `processes` daphne processes."""

    def __init__(self, env: dict[str, str], log: Path, processes: int, *, probe: str) -> None:
        self.env, self.log_path, self.processes, self.probe = env, log, processes, probe
        self.process: subprocess.Popen | None = None
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> WebProcesses:
        command = [sys.executable, "-m", "sora_controller.web_processes", "--bind", "127.0.0.1"]
        command += ["--port", str(self.port), "--processes", str(self.processes)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            # Every process must be up, not only the first: wait until all have loaded the app.
            if _answers(f"{self.url}{self.probe}") and len(self.children()) == self.processes:
                time.sleep(2.0)
                return self
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the web processes did not start; see {self.log_path}")

    def children(self) -> list[int]:
        assert self.process is not None
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.process.pid:
                    found.append(int(entry.name))
        return found

    def cpu_seconds(self) -> float:
        """User + system CPU the web processes have used so far."""
        total = 0
        for pid in self.children():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()  # the supervisor stops its daphne processes
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
