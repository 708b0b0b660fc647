"""Structured logs: every record carries the job and segment it is about, when there is one.

Tasks wrap their work in `log_context(job_id=..., segment_id=...)`; the filter copies the ids onto each
record, and the JSON formatter writes one object per line for the log pipeline to index.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("log_context", default={})  # noqa: B039

CONTEXT_KEYS = ("job_id", "segment_id", "task")


@contextlib.contextmanager
def log_context(**values: Any) -> Iterator[None]:
    token = _context.set({**_context.get(), **{k: str(v) for k, v in values.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        for key in CONTEXT_KEYS:
            if not hasattr(record, key) and key in context:
                setattr(record, key, context[key])
        present = {k: getattr(record, k) for k in CONTEXT_KEYS if getattr(record, k, None) is not None}
        record.context_suffix = "".join(f" {k}={v}" for k, v in present.items())
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)
