"""The web role as several daphne processes on one listening socket.

One daphne process runs Python on one core (the GIL), so one process cannot use a machine's other
cores. This supervisor binds the port once and starts `--processes` daphne processes (default: env
WEB_CONCURRENCY, else 1) that all accept on that socket (`daphne --fd N`): the kernel
hands each new connection to one of them. This is the arrangement Channels' deployment notes describe
(several daphne processes sharing a socket under a process supervisor), done in a few lines of our own
instead of a supervisord or circus dependency, with the same daphne, HTTP and WebSocket handling in
every process. A job's events reach sockets in every process through the Redis channel layer, so more
than one process needs it: with the in-memory layer (no REDIS_URL) only one process is allowed.

    python -m sora_controller.web_processes [--processes N] [--bind 0.0.0.0] [--port 8000] [-- DAPHNE ARGS]

A process that exits is started again, at most --restart-limit times a minute; beyond that something
is wrong that restarting will not fix, so the supervisor stops the rest and exits non-zero (for the
platform to notice). SIGTERM or SIGINT stops every process (SIGTERM, then SIGKILL after --stop-timeout
seconds) and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

log = logging.getLogger("sora_controller.web_processes")

APPLICATION = "sora_controller.asgi:application"
POLL_SECONDS = 0.2
IN_MEMORY_LAYER = "channels.layers.InMemoryChannelLayer"


class SupervisorError(Exception):
    """A configuration that cannot work; the message says what to change."""


def env_processes() -> int:
    raw = os.environ.get("WEB_CONCURRENCY", "").strip()
    try:
        return int(raw) if raw else 1
    except ValueError:
        raise SupervisorError(f"WEB_CONCURRENCY must be a whole number, got {raw!r}") from None


def check_processes(processes: int) -> None:
    """Refuse counts that cannot work: none at all, or several on a channel layer that does not span
    processes (a job's events would reach only the sockets of the process that sent them)."""
    if processes < 1:
        raise SupervisorError(f"the web role needs at least 1 process, got {processes}")
    if processes == 1:
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sora_controller.settings")
    from django.conf import settings

    backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    if backend == IN_MEMORY_LAYER:
        raise SupervisorError(
            f"{processes} web processes need a channel layer shared between processes: set REDIS_URL "
            "(the in-memory layer only reaches sockets in its own process), or run 1 process"
        )


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    if ":" in host:
        # daphne's fd endpoint adopts a socket as IPv4 only.
        raise SupervisorError(f"bind to an IPv4 address (daphne --fd adopts IPv4 sockets), not {host!r}")
    sock = socket.create_server((host, port), family=socket.AF_INET, backlog=backlog)
    sock.set_inheritable(True)
    return sock


def daphne_command(sock: socket.socket, daphne_args: Sequence[str], application: str) -> list[str]:
    return [sys.executable, "-m", "daphne", "--fd", str(sock.fileno()), *daphne_args, application]


@dataclass
class Supervisor:
    command: list[str]
    fd: int
    processes: int
    restart_limit: int = 10
    stop_timeout: float = 20.0
    children: list[subprocess.Popen] = field(default_factory=list)
    restarts: deque[float] = field(default_factory=deque)
    stopping: bool = False

    def spawn(self) -> subprocess.Popen:
        child = subprocess.Popen(self.command, pass_fds=(self.fd,))
        log.info("web process %s started", child.pid)
        return child

    def request_stop(self, signum: int, _frame: object) -> None:
        log.info("signal %s: stopping %s web processes", signum, len(self.children))
        self.stopping = True

    def run(self) -> int:
        self.children = [self.spawn() for _ in range(self.processes)]
        while not self.stopping:
            time.sleep(POLL_SECONDS)
            for position, child in enumerate(self.children):
                code = child.poll()
                if code is None or self.stopping:
                    continue
                if not self.may_restart():
                    log.error(
                        "web processes exited more than %s times in a minute (last: %s with %s); giving up",
                        self.restart_limit,
                        child.pid,
                        code,
                    )
                    self.stop()
                    return 1
                log.warning("web process %s exited with %s; starting another", child.pid, code)
                self.children[position] = self.spawn()
        self.stop()
        return 0

    def may_restart(self) -> bool:
        now = time.monotonic()
        while self.restarts and now - self.restarts[0] > 60:
            self.restarts.popleft()
        self.restarts.append(now)
        return len(self.restarts) <= self.restart_limit

    def stop(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + self.stop_timeout
        for child in self.children:
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("web process %s did not stop in %ss; killing it", child.pid, self.stop_timeout)
                child.kill()
                child.wait()


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    own, daphne_args = list(argv), []
    if "--" in own:
        split = own.index("--")
        own, daphne_args = own[:split], own[split + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=None, help="default: env WEB_CONCURRENCY, else 1")
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--backlog", type=int, default=2048)
    parser.add_argument("--application", default=APPLICATION)
    parser.add_argument("--restart-limit", type=int, default=10, help="restarts a minute before giving up")
    parser.add_argument("--stop-timeout", type=float, default=20.0)
    return parser.parse_args(own), daphne_args


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args, daphne_args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        processes = env_processes() if args.processes is None else args.processes
        check_processes(processes)
        sock = listening_socket(args.bind, args.port, args.backlog)
    except SupervisorError as exc:
        print(f"web_processes: {exc}", file=sys.stderr)
        return 2
    supervisor = Supervisor(
        command=daphne_command(sock, daphne_args, args.application),
        fd=sock.fileno(),
        processes=processes,
        restart_limit=args.restart_limit,
        stop_timeout=args.stop_timeout,
    )
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    log.info("serving on %s:%s with %s daphne process(es)", args.bind, args.port, processes)
    try:
        return supervisor.run()
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
