"""Provider webhooks: Standard Webhooks signatures, and what a `video.completed` / `video.failed`
event does.

Signatures (https://www.standardwebhooks.com, as OpenAI sends them) are made by the `standardwebhooks`
package, the specification's own implementation: headers `webhook-id`, `webhook-timestamp` (Unix
seconds) and `webhook-signature`, a space-separated list of `v1,<base64>` values, each
base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")) with the key from a `whsec_...` secret. We compare
against its signature ourselves (in constant time) instead of calling its `verify`, because that one
hard-codes a 5-minute window on the wall clock, and ours is WEBHOOK_TOLERANCE_SECONDS in either
direction, which bounds how long a captured delivery could be replayed; replays inside that window are
stopped by the event id, which is recorded once (WebhookEvent.event_id is unique).

An accepted event runs the segment's next pipeline step at once (the same task a poll would run; its
poll sees the final state and downloads or records the failure). It takes the segment over from the
run waiting between polls (jobs.leases), so that run's next poll stops at once: duplicates and late
deliveries start no second poll chain and no second download. The event is only a hint: the
provider's own answer to that poll decides, so a forged-but-valid-looking body could do no more than
trigger an early poll, and a webhook that never arrives is covered by the polling that continues.
"""

from __future__ import annotations

import binascii
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from standardwebhooks.webhooks import Webhook

from jobs import leases
from jobs.models import Segment, SegmentStatus, WebhookEvent

log = logging.getLogger(__name__)

HANDLED_TYPES = {"video.completed", "video.failed"}


class WebhookError(Exception):
    """A delivery we refuse (bad or stale signature, malformed body). The message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _signer(secret: str) -> Webhook:
    try:
        return Webhook(secret)
    except (binascii.Error, ValueError, RuntimeError) as exc:
        raise WebhookError("the webhook secret is not valid base64 after 'whsec_'") from exc


def sign(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """The `v1,<base64>` signature of one delivery (used by the fake API and tests to send events)."""
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise WebhookError("the body is not UTF-8 text") from exc
    sent_at = datetime.fromtimestamp(int(timestamp), tz=UTC)
    return _signer(secret).sign(msg_id=msg_id, timestamp=sent_at, data=text)


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
    expected = sign(secret, msg_id, sent_at, body).split(",", 1)[1]
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            return
    raise WebhookError("no webhook-signature matches this body")


def check_event_id(event_id: str, *, prefix: str = "", what: str = "delivery id") -> None:
    """Refuse an id too long for WebhookEvent.event_id: cut short it would no longer be the delivery's own
    key (two deliveries could collide), so it is refused rather than recorded wrongly."""
    limit = WebhookEvent._meta.get_field("event_id").max_length or 0
    if len(prefix) + len(event_id) > limit:
        raise WebhookError(f"the {what} is longer than the {limit - len(prefix)} characters we can record")


def check_storable(**texts: str) -> None:
    """Refuse text no provider id contains and the database cannot hold: a NUL (PostgreSQL text refuses
    it) or a lone surrogate (JSON allows "\\ud800", UTF-8 does not). A signed body can carry either; it
    would otherwise fail in the query that looks the video up, as a 500."""
    for what, text in texts.items():
        if "\x00" in text or any("\ud800" <= char <= "\udfff" for char in text):
            name = what.replace("_", " ")
            raise WebhookError(f"the {name} contains a NUL or a lone surrogate, which no provider sends")


def parse_event(event: Any) -> tuple[str, str, str]:
    """(event id, type, video id) of an event body, or WebhookError."""
    if not isinstance(event, dict):
        raise WebhookError("the body must be a JSON object")
    event_id, kind, data = event.get("id"), event.get("type"), event.get("data")
    if not isinstance(event_id, str) or not event_id or not isinstance(kind, str) or not kind:
        raise WebhookError("the event needs a string id and type")
    video_id = data.get("id") if isinstance(data, dict) else None
    return event_id, kind, video_id if isinstance(video_id, str) else ""


def _fal_task_ids(request_id: str) -> Q:
    # fal's task id is "{endpoint id}|{request id}" (rendering.providers.fal.task_id_of); a delivery
    # names only the request.
    from .providers.fal import TASK_SEPARATOR

    return Q(provider_task_id__endswith=f"{TASK_SEPARATOR}{request_id}")


# provider -> the segments whose stored provider_task_id belongs to the id a delivery names. A provider
# not listed stores that id itself as the task id (Sora's video id).
TASK_ID_MATCHERS: dict[str, Callable[[str], Q]] = {"fal": _fal_task_ids}


def find_segment(provider: str, video_id: str) -> Segment | None:
    """The latest segment of a `provider` job whose provider task is the one a delivery names."""
    matcher = TASK_ID_MATCHERS.get(provider)
    lookup = matcher(video_id) if matcher is not None else Q(provider_task_id=video_id)
    return (
        Segment.objects.select_related("job")
        .filter(lookup, job__provider=provider)
        .order_by("-updated_at")
        .first()
    )


def receive(*, event_id: str, kind: str, video_id: str, provider: str = "sora") -> str:
    """Record a verified event once and, for a finished video of a rendering segment, run that
    segment's next step now. Returns the outcome: "advanced", "duplicate", "unknown_video",
    "not_rendering", "in_progress" (a step is already running) or "ignored_type".

    `event_id` is the delivery's idempotency key, covered by its signature: for Sora the `webhook-id`
    (Standard Webhooks': a retried delivery repeats it), for fal "fal:{request id}" (fal sends one result
    per request and repeats it on a retry). `video_id` is the task the delivery names, matched against
    the segments' provider task ids by find_segment."""
    from .transport import RENDER_SEGMENT, enqueue

    token: str | None = None
    with transaction.atomic():
        if WebhookEvent.objects.filter(event_id=event_id).exists():
            return "duplicate"
        segment = find_segment(provider, video_id) if video_id else None
        if kind not in HANDLED_TYPES:
            outcome = "ignored_type"
        elif segment is None:
            outcome = "unknown_video"
        elif segment.status != SegmentStatus.RENDERING:
            outcome = "not_rendering"
        else:
            # Only a segment waiting between polls on this very task is taken over (jobs.leases): with a
            # step running, or a step an earlier delivery started, the next poll will see the result.
            token = leases.segment_take_over_waiting(segment.id, segment.provider_task_id)
            outcome = "advanced" if token else "in_progress"
        try:
            with transaction.atomic():
                WebhookEvent.objects.create(
                    event_id=event_id,
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
            transaction.on_commit(lambda: enqueue(RENDER_SEGMENT, *args, lease=token))
    log.info("webhook %s %s for %s: %s", event_id, kind, video_id or "-", outcome)
    return outcome
