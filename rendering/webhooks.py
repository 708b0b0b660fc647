"""Provider webhooks: Standard Webhooks signatures, and what a `video.completed` / `video.failed`
event does.

Signature (https://www.standardwebhooks.com, as OpenAI sends it): headers `webhook-id`,
`webhook-timestamp` (Unix seconds) and `webhook-signature`, a space-separated list of `v1,<base64>`
values. Each value is base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), where the key is the base64
part of a `whsec_...` secret. A delivery is genuine when any v1 value matches (compared in constant
time) and its timestamp is within the tolerance (300 s) of our clock, in either direction, which
bounds how long a captured delivery could be replayed; replays inside that window are stopped by the
event id, which is recorded once (WebhookEvent.event_id is unique).

An accepted event runs the segment's next pipeline step at once (the same task a poll would run; its
poll sees the final state and downloads or records the failure). The event is only a hint: the
provider's own answer to that poll decides, so a forged-but-valid-looking body could do no more than
trigger an early poll, and a webhook that never arrives is covered by the polling that continues.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction

from jobs.models import Segment, SegmentStatus, WebhookEvent

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
HANDLED_TYPES = {"video.completed", "video.failed"}


class WebhookError(Exception):
    """A delivery we refuse (bad or stale signature, malformed body). The message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (a secret without the prefix is taken as base64)."""
    encoded = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookError("the webhook secret is not valid base64 after 'whsec_'") from exc


def sign(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """The `v1,<base64>` signature of one delivery (used by the fake API and tests to send events)."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, tolerance: int = 300, now: float | None = None
) -> None:
    """Raise WebhookError unless the delivery carries a valid, fresh signature by `secret`."""
    msg_id = headers.get("webhook-id") or ""
    timestamp = headers.get("webhook-timestamp") or ""
    signatures = headers.get("webhook-signature") or ""
    if not msg_id or not timestamp or not signatures:
        raise WebhookError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise WebhookError("webhook-timestamp is not a Unix time in seconds") from None
    now = time.time() if now is None else now
    if sent_at < now - tolerance:
        raise WebhookError(f"webhook-timestamp is more than {tolerance} s old")
    if sent_at > now + tolerance:
        raise WebhookError(f"webhook-timestamp is more than {tolerance} s in the future")
    expected = sign(secret, msg_id, timestamp, body).split(",", 1)[1]
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            return
    raise WebhookError("no webhook-signature matches this body")


def parse_event(event: Any) -> tuple[str, str, str]:
    """(event id, type, video id) of an event body, or WebhookError."""
    if not isinstance(event, dict):
        raise WebhookError("the body must be a JSON object")
    event_id, kind, data = event.get("id"), event.get("type"), event.get("data")
    if not isinstance(event_id, str) or not event_id or not isinstance(kind, str) or not kind:
        raise WebhookError("the event needs a string id and type")
    video_id = data.get("id") if isinstance(data, dict) else None
    return event_id, kind, video_id if isinstance(video_id, str) else ""


def receive(*, event_id: str, kind: str, video_id: str, provider: str = "sora") -> str:
    """Record a verified event once and, for a finished video of a rendering segment, run that
    segment's next step now. Returns the outcome: "advanced", "duplicate", "unknown_video",
    "not_rendering" or "ignored_type".

    `event_id` is the delivery's `webhook-id` (Standard Webhooks' idempotency key: a retried delivery
    repeats it, and it is covered by the signature)."""
    from rendering import dispatch, tasks

    with transaction.atomic():
        if WebhookEvent.objects.filter(event_id=event_id).exists():
            return "duplicate"
        segment = None
        if video_id:
            segment = (
                Segment.objects.select_related("job")
                .filter(provider_task_id=video_id, job__provider=provider)
                .order_by("-updated_at")
                .first()
            )
        if kind not in HANDLED_TYPES:
            outcome = "ignored_type"
        elif segment is None:
            outcome = "unknown_video"
        elif segment.status != SegmentStatus.RENDERING:
            outcome = "not_rendering"
        else:
            outcome = "advanced"
        try:
            with transaction.atomic():
                WebhookEvent.objects.create(
                    event_id=event_id[:200],
                    provider=provider,
                    type=kind[:80],
                    video_id=video_id[:200],
                    segment=segment,
                    outcome=outcome,
                )
        except IntegrityError:
            return "duplicate"  # the same delivery arrived twice at the same moment
        if outcome == "advanced":
            job = segment.job
            args = (str(job.id), segment.id, job.render_generation)
            transaction.on_commit(lambda: dispatch.enqueue(tasks.render_segment, *args))
    log.info("webhook %s %s for %s: %s", event_id, kind, video_id or "-", outcome)
    return outcome
