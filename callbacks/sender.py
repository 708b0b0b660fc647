"""One signed POST of an event to an endpoint, bounded in time and size, no redirects followed.

The connection goes to the address addresses.resolve_target checked, while the Host header and the TLS
server name (and certificate check) use the URL's host name, so what was checked is what is reached.
"""

from __future__ import annotations

import json
import ssl
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import urllib3
from django.conf import settings
from standardwebhooks.webhooks import Webhook

from .addresses import Target, UnsafeAddress, resolve_target

USER_AGENT = "SoraController-Webhooks/1.0"
# Enough of the receiver's answer to see what it said; the rest is not read.
EXCERPT_BYTES = 1024


@dataclass(frozen=True)
class SendResult:
    status_code: int | None
    latency_ms: int
    error: str = ""
    excerpt: str = ""
    # True when retrying cannot help (the address is refused): the delivery is given up at once.
    permanent: bool = False

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def event_body(payload: dict[str, Any]) -> bytes:
    """The exact bytes signed and sent; the same for every attempt of one event."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def signed_headers(*, secret: str, event_id: str, body: bytes, sent_at: datetime) -> dict[str, str]:
    signature = Webhook(secret).sign(msg_id=event_id, timestamp=sent_at, data=body.decode())
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def post_event(*, url: str, headers: dict[str, str], body: bytes) -> SendResult:
    started = time.monotonic()
    try:
        target = resolve_target(url)
    except UnsafeAddress as exc:
        return SendResult(None, _ms(started), error=str(exc), permanent=True)
    try:
        response = _post(target, headers, body)
    except urllib3.exceptions.HTTPError as exc:
        return SendResult(None, _ms(started), error=f"{type(exc).__name__}: {exc}"[:2000])
    except OSError as exc:
        return SendResult(None, _ms(started), error=f"{type(exc).__name__}: {exc}"[:2000])
    return SendResult(response.status_code, _ms(started), error=response.error, excerpt=response.excerpt)


def _post(target: Target, headers: dict[str, str], body: bytes) -> SendResult:
    timeout = urllib3.Timeout(
        connect=settings.CALLBACK_TIMEOUT_SECONDS, read=settings.CALLBACK_TIMEOUT_SECONDS
    )
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if ":" not in target.host else f"[{target.host}]"
    if target.port != default_port:
        host_header += f":{target.port}"
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            target.address,
            target.port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            server_hostname=target.host,
            assert_hostname=target.host,
            ssl_context=ssl.create_default_context(),
        )
    else:
        pool = urllib3.HTTPConnectionPool(
            target.address, target.port, timeout=timeout, retries=False, maxsize=1
        )
    with pool:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers={**headers, "host": host_header},
            redirect=False,
            retries=False,
            preload_content=False,
        )
        try:
            excerpt = response.read(EXCERPT_BYTES, decode_content=False).decode("utf-8", "replace")
        finally:
            response.release_conn()
    error = "" if 200 <= response.status < 300 else f"HTTP {response.status}"
    if 300 <= response.status < 400:
        error += " (redirects are not followed)"
    return SendResult(response.status, 0, error=error, excerpt=excerpt)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
