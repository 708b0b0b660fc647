"""Run a subprocess that can never stall a worker: a deadline proportional to its work, both pipes
drained (a tool that floods stderr while nobody reads it blocks for ever), and on overrun the whole
process group killed (ffmpeg may start helpers; a SIGTERM it ignores is no stop).
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.conf import settings

# What is kept of stderr for the error message: the tail says what went wrong.
STDERR_TAIL_BYTES = 64 * 1024


class TimedOut(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"took longer than {seconds:g} s")
        self.seconds = seconds


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: bytes
    stderr: bytes  # the tail, at most STDERR_TAIL_BYTES


def media_timeout(media_seconds: float) -> float:
    """The deadline of an ffmpeg run over `media_seconds` of video: a floor plus a multiple of the work
    (FFMPEG_TIMEOUT_BASE_SECONDS + FFMPEG_TIMEOUT_PER_MEDIA_SECOND x seconds)."""
    return settings.FFMPEG_TIMEOUT_BASE_SECONDS + settings.FFMPEG_TIMEOUT_PER_MEDIA_SECOND * max(
        0.0, media_seconds
    )


def _drain(stream, sink: Callable[[bytes], None]) -> None:
    with contextlib.suppress(ValueError, OSError):
        for chunk in iter(lambda: stream.read1(65536), b""):
            sink(chunk)


def run_bounded(
    args: Sequence[str],
    *,
    timeout: float,
    on_stdout_line: Callable[[str], None] | None = None,
    input_bytes: bytes | None = None,
) -> Finished:
    """Run `args`; stdout is collected (or handed line by line to `on_stdout_line`, in the calling
    thread, which may raise to stop the run), stderr's tail kept. Raises TimedOut after `timeout`
    seconds, with the process group killed and reaped. Any exception from `on_stdout_line` also kills it.

    The pipes are read by two threads that only move bytes; the callback runs in the caller's thread,
    because it may touch the database (a progress report), whose connections belong to one thread."""
    proc = subprocess.Popen(
        list(args),
        stdin=subprocess.PIPE if input_bytes is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, killed whole
    )
    stderr_tail: collections.deque[bytes] = collections.deque()
    kept = [0]

    def keep_stderr(chunk: bytes) -> None:
        stderr_tail.append(chunk)
        kept[0] += len(chunk)
        while kept[0] > STDERR_TAIL_BYTES and len(stderr_tail) > 1:
            kept[0] -= len(stderr_tail.popleft())

    chunks: queue.Queue[bytes | None] = queue.Queue()

    def read_stdout() -> None:
        _drain(proc.stdout, chunks.put)
        chunks.put(None)  # end of output

    readers = [
        threading.Thread(target=_drain, args=(proc.stderr, keep_stderr), daemon=True),
        threading.Thread(target=read_stdout, daemon=True),
    ]
    for reader in readers:
        reader.start()
    if input_bytes is not None and proc.stdin is not None:
        with contextlib.suppress(BrokenPipeError, OSError):
            proc.stdin.write(input_bytes)
            proc.stdin.close()
    deadline = time.monotonic() + timeout
    stdout_parts: list[bytes] = []
    pending = b""
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimedOut(timeout)
            try:
                chunk = chunks.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if chunk is None:
                break
            if on_stdout_line is None:
                stdout_parts.append(chunk)
                continue
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                on_stdout_line(line.decode("utf-8", "replace"))
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise TimedOut(timeout) from None
    except BaseException:
        _kill(proc)
        raise
    finally:
        for reader in readers:
            reader.join(timeout=5)
    return Finished(proc.returncode, b"".join(stdout_parts), b"".join(stderr_tail))


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
