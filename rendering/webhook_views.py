"""Provider events, each authenticated by its provider's signature alone.

POST /webhooks/sora: Standard Webhooks (HMAC with SORA_WEBHOOK_SECRET).
POST /webhooks/fal: fal's ED25519 signature, checked against the keys fal publishes
(settings.FAL_WEBHOOK_JWKS_URL) by rendering.providers.fal_webhooks.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import requests
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .providers.fal_webhooks import FalWebhookError, verify_fal_webhook
from .webhooks import WebhookError, check_event_id, check_storable, parse_event, receive, verify

log = logging.getLogger(__name__)

# fal's delivery `status` -> the event kind rendering.webhooks.receive acts on. Any other status is
# recorded as "fal.<status>" and ignored.
FAL_KINDS = {"OK": "video.completed", "ERROR": "video.failed"}


def _body_too_large() -> JsonResponse:
    # Django would answer its bare HTML 400 page; a provider's delivery log should say what happened.
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    detail = f"the body is larger than the {limit} bytes this server reads"
    return JsonResponse({"detail": detail}, status=413)


@csrf_exempt  # the provider has no CSRF token; the signature is what authenticates it
@require_POST
def sora_webhook(request: HttpRequest) -> JsonResponse:
    secret = settings.SORA_WEBHOOK_SECRET
    if not secret:
        return JsonResponse(
            {"detail": "webhooks are not enabled here (SORA_WEBHOOK_SECRET is not set)"}, status=404
        )
    try:
        body = request.body
    except RequestDataTooBig:
        return _body_too_large()
    try:
        verify(secret, request.headers, body, tolerance=settings.WEBHOOK_TOLERANCE_SECONDS)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise WebhookError("the body is not JSON") from None
        except RecursionError:
            raise WebhookError("the body is JSON nested too deeply") from None
        _, kind, video_id = parse_event(payload)
        check_event_id(request.headers["webhook-id"])
        check_storable(event_id=request.headers["webhook-id"], event_type=kind, video_id=video_id)
    except WebhookError as exc:
        # Nothing is recorded or changed for a delivery we cannot trust (or could not record whole).
        return JsonResponse({"detail": exc.message}, status=400)
    outcome = receive(event_id=request.headers["webhook-id"], kind=kind, video_id=video_id)
    return JsonResponse({"received": True, "outcome": outcome})


def _keys_unavailable(exc: FalWebhookError) -> bool:
    """True when fal's key set could not be fetched at all (our side or fal's, not the sender's fault)."""
    return isinstance(exc.__cause__, requests.RequestException)


def fal_event(payload: Any, header_request_id: str) -> tuple[str, str]:
    """(request id, kind) of a verified fal delivery body, or WebhookError.

    The body's `request_id` is the queue's id, the one the submit answered and the segment stores (fal:
    "request_id will be the value used in the queue API"); it is covered by the signature through the
    body's hash. Without it, the signed X-Fal-Webhook-Request-Id header names the request."""
    if not isinstance(payload, dict):
        raise WebhookError("the body must be a JSON object")
    request_id = payload.get("request_id", header_request_id)
    if not isinstance(request_id, str) or not request_id:
        raise WebhookError("the body's request_id must be a non-empty string")
    status = payload.get("status")
    if not isinstance(status, str) or not status:
        raise WebhookError("the body needs a string status (OK or ERROR)")
    return request_id, FAL_KINDS.get(status, f"fal.{status}")


@csrf_exempt  # fal has no CSRF token; the signature is what authenticates it
@require_POST
def fal_webhook(request: HttpRequest) -> JsonResponse:
    try:
        body = request.body
    except RequestDataTooBig:
        return _body_too_large()
    try:
        header_request_id = verify_fal_webhook(request.headers, body)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise WebhookError("the body is not JSON") from None
        except RecursionError:
            raise WebhookError("the body is JSON nested too deeply") from None
        request_id, kind = fal_event(payload, header_request_id)
        check_storable(request_id=request_id, status=kind)
    except FalWebhookError as exc:
        if _keys_unavailable(exc):
            # Not the delivery's fault: ask fal to come back (it retries for two hours), poll meanwhile.
            log.warning("fal webhook not verified, keys unavailable: %s", exc.message)
            return JsonResponse({"detail": exc.message}, status=503, headers={"Retry-After": "60"})
        return JsonResponse({"detail": exc.message}, status=400)
    except WebhookError as exc:
        # Nothing is recorded or changed for a delivery we cannot trust.
        return JsonResponse({"detail": exc.message}, status=400)
    # fal sends one result per request and repeats it when a delivery fails (10 times over 2 hours; a
    # retry may carry a new timestamp and so a new signature): the request id is what makes a retry or a
    # replay a duplicate. Prefixed, so it cannot collide with another provider's event ids in the column.
    event_id = f"fal:{request_id}"
    try:
        check_event_id(request_id, prefix="fal:", what="request id")
    except WebhookError as exc:
        log.error("fal webhook request id of %d characters exceeds WebhookEvent.event_id", len(request_id))
        return JsonResponse({"detail": exc.message}, status=400)
    outcome = receive(event_id=event_id, kind=kind, video_id=request_id, provider="fal")
    return JsonResponse({"received": True, "outcome": outcome})
