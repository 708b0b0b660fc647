"""Verifying fal's webhook deliveries (ED25519 signatures checked against fal's published JWKS).

fal signs each delivery (docs.fal.ai/model-apis/model-endpoints/webhooks, "Verifying Your Webhook"):
headers X-Fal-Webhook-Request-Id, X-Fal-Webhook-User-Id, X-Fal-Webhook-Timestamp (Unix seconds) and
X-Fal-Webhook-Signature, the hex ED25519 signature of the four lines

    {request_id}\\n{user_id}\\n{timestamp}\\n{sha256(raw body) as hex}

by one of the keys fal publishes as a JSON Web Key Set (OKP / Ed25519, base64url `x`) at
settings.FAL_WEBHOOK_JWKS_URL (https://rest.alpha.fal.ai/.well-known/jwks.json). A delivery is genuine
when any published key verifies the signature and the timestamp is within
settings.WEBHOOK_TOLERANCE_SECONDS of our clock in either direction (fal's examples use 300 s), which
bounds how long a captured delivery could be replayed; replays inside that window are the receiver's to
stop, by the request id (the lead wires the route and the WebhookEvent record, as for Sora).

The JWKS is fetched with a bounded timeout and cached (fal: cache it for up to 24 hours). When no
cached key verifies a signature, the set is fetched once more before refusing, at most once a minute,
so a key rotation is picked up without letting forged deliveries make us hammer fal.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
import time
from collections.abc import Mapping
from typing import Any

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings

from rendering.webhooks import WebhookError

REQUEST_ID = "x-fal-webhook-request-id"
USER_ID = "x-fal-webhook-user-id"
TIMESTAMP = "x-fal-webhook-timestamp"
SIGNATURE = "x-fal-webhook-signature"
JWKS_TTL_SECONDS = 24 * 3600
JWKS_REFRESH_MIN_INTERVAL = 60.0
JWKS_MAX_BYTES = 256 * 1024


class FalWebhookError(WebhookError):
    """A fal delivery we refuse (missing headers, stale timestamp, no key verifies it)."""


def _header(headers: Mapping[str, str], name: str) -> str:
    # Django's request.headers is case-insensitive; a plain dict from a test or a WSGI environ may not be.
    value = headers.get(name)
    if value is None:
        for key, candidate in headers.items():
            if key.lower() == name:
                value = candidate
                break
    return (value or "").strip()


def signed_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    return "\n".join([request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()]).encode("utf-8")


def public_keys(jwks: Mapping[str, Any]) -> list[Ed25519PublicKey]:
    """The ED25519 keys of a JWKS; keys of other types are skipped, malformed ones too."""
    keys: list[Ed25519PublicKey] = []
    for jwk in jwks.get("keys") or []:
        if not isinstance(jwk, Mapping) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        x = str(jwk.get("x") or "")
        try:
            raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
            keys.append(Ed25519PublicKey.from_public_bytes(raw))
        except (binascii.Error, ValueError):
            continue
    return keys


def verify_fal_webhook(
    headers: Mapping[str, str],
    body: bytes,
    jwks: Mapping[str, Any] | None = None,
    *,
    tolerance: int | None = None,
    now: float | None = None,
) -> str:
    """Return the delivery's request id, or raise FalWebhookError. `jwks` defaults to fal's published
    set (fetched from settings.FAL_WEBHOOK_JWKS_URL and cached)."""
    request_id = _header(headers, REQUEST_ID)
    user_id = _header(headers, USER_ID)
    timestamp = _header(headers, TIMESTAMP)
    signature_hex = _header(headers, SIGNATURE)
    if not (request_id and user_id and timestamp and signature_hex):
        raise FalWebhookError("missing X-Fal-Webhook-Request-Id, -User-Id, -Timestamp or -Signature header")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise FalWebhookError("X-Fal-Webhook-Timestamp is not a Unix time in seconds") from None
    tolerance = settings.WEBHOOK_TOLERANCE_SECONDS if tolerance is None else tolerance
    now = time.time() if now is None else now
    if abs(now - sent_at) > tolerance:
        raise FalWebhookError(f"X-Fal-Webhook-Timestamp is more than {tolerance} s away from our clock")
    try:
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        raise FalWebhookError("X-Fal-Webhook-Signature is not hex") from None
    message = signed_message(request_id, user_id, timestamp, body)

    if jwks is not None:
        if _verifies(public_keys(jwks), signature, message):
            return request_id
        raise FalWebhookError("no key of the given JWKS verifies the signature")
    if _verifies(public_keys(_CACHE.get()), signature, message):
        return request_id
    # Perhaps fal rotated its keys since we cached them: look once more (rate-limited).
    refreshed = _CACHE.refresh()
    if refreshed is not None and _verifies(public_keys(refreshed), signature, message):
        return request_id
    raise FalWebhookError("no key fal publishes verifies the signature")


def _verifies(keys: list[Ed25519PublicKey], signature: bytes, message: bytes) -> bool:
    for key in keys:
        try:
            key.verify(signature, message)
            return True
        except InvalidSignature:
            continue
    return False


def fetch_jwks(url: str | None = None, *, timeout: float | None = None) -> dict[str, Any]:
    """fal's JWKS, fetched with bounded connect/read timeouts; FalWebhookError when unavailable."""
    url = url or settings.FAL_WEBHOOK_JWKS_URL
    limit = timeout if timeout is not None else float(settings.FAL_CONNECT_TIMEOUT)
    try:
        response = requests.get(url, timeout=(limit, limit), stream=True)
        with response:
            response.raise_for_status()
            raw = response.raw.read(JWKS_MAX_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        raise FalWebhookError(f"could not fetch fal's webhook keys from {url}: {exc}") from exc
    if len(raw) > JWKS_MAX_BYTES:
        raise FalWebhookError(f"fal's webhook key set at {url} is larger than {JWKS_MAX_BYTES} bytes")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise FalWebhookError(f"fal's webhook key set at {url} is not JSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise FalWebhookError(f"fal's webhook key set at {url} has no 'keys' list")
    return data


class _JWKSCache:
    """The JWKS per URL, kept for JWKS_TTL_SECONDS; refreshed on a miss no more than once a minute."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, dict[str, Any]]] = {}
        self._last_refresh: dict[str, float] = {}

    def get(self) -> dict[str, Any]:
        url = settings.FAL_WEBHOOK_JWKS_URL
        with self._lock:
            entry = self._entries.get(url)
            if entry and time.monotonic() - entry[0] < JWKS_TTL_SECONDS:
                return entry[1]
        data = fetch_jwks(url)
        with self._lock:
            self._entries[url] = (time.monotonic(), data)
            self._last_refresh[url] = time.monotonic()
        return data

    def refresh(self) -> dict[str, Any] | None:
        url = settings.FAL_WEBHOOK_JWKS_URL
        with self._lock:
            last = self._last_refresh.get(url)
            if last is not None and time.monotonic() - last < JWKS_REFRESH_MIN_INTERVAL:
                return None
            self._last_refresh[url] = time.monotonic()
        data = fetch_jwks(url)
        with self._lock:
            self._entries[url] = (time.monotonic(), data)
        return data

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._last_refresh.clear()


_CACHE = _JWKSCache()


def clear_jwks_cache() -> None:
    """Forget the cached key sets (tests, or an operator after fal announces a rotation)."""
    _CACHE.clear()
