"""HTTP pieces every remote provider needs the same way: how long the server asks us to wait, and a
download written to its destination whole or not at all, with its size checked and its time bounded."""

from __future__ import annotations

import email.utils
import os
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from .base import ProviderError

CHUNK_BYTES = 1024 * 1024


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait, from `retry-after-ms` (OpenAI) or `retry-after` (seconds or an HTTP date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        return max(0.0, parsed.timestamp() - time.time())


def stream_to_file(
    response: requests.Response,
    dest: Path,
    *,
    what: str,
    expected_bytes: int | str | None = None,
    deadline_seconds: float | None = None,
    retry_after: float | None = None,
) -> Path:
    """Write `response`'s body to `dest` through a temporary name, so a reader never sees half a file.
    A body cut short, a transfer slower than `deadline_seconds` or a broken connection is a transient
    ProviderError (the caller downloads again); the response is always closed."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial-{uuid.uuid4().hex[:8]}")
    started = time.monotonic()
    try:
        with response, open(partial, "wb") as out:
            for chunk in response.iter_content(chunk_size=CHUNK_BYTES):
                out.write(chunk)
                if deadline_seconds is not None and time.monotonic() - started > deadline_seconds:
                    raise ProviderError(
                        f"{what} took longer than {deadline_seconds:g} s",
                        permanent=False,
                        code="timeout",
                        retry_after=retry_after,
                    )
        size = partial.stat().st_size
        expected = expected_bytes or response.headers.get("content-length")
        # A Content-Length counts encoded bytes; only an unencoded body can be checked against it.
        encoded = response.headers.get("content-encoding", "identity") != "identity"
        if expected and not encoded and size != int(expected):
            raise ProviderError(
                f"{what} was cut short ({size} of {expected} bytes)",
                permanent=False,
                code="short_download",
                retry_after=retry_after,
            )
        os.replace(partial, dest)
    except requests.RequestException as exc:
        raise ProviderError(
            f"{what} failed: {exc}", permanent=False, code="download", retry_after=retry_after
        ) from exc
    finally:
        partial.unlink(missing_ok=True)
    return dest
