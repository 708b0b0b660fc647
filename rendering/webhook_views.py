"""POST /webhooks/sora: provider events, authenticated by their Standard Webhooks signature alone."""

from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .webhooks import WebhookError, parse_event, receive, verify


@csrf_exempt  # the provider has no CSRF token; the signature is what authenticates it
@require_POST
def sora_webhook(request: HttpRequest) -> JsonResponse:
    secret = settings.SORA_WEBHOOK_SECRET
    if not secret:
        return JsonResponse(
            {"detail": "webhooks are not enabled here (SORA_WEBHOOK_SECRET is not set)"}, status=404
        )
    body = request.body
    try:
        verify(secret, request.headers, body, tolerance=settings.WEBHOOK_TOLERANCE_SECONDS)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise WebhookError("the body is not JSON") from None
        _, kind, video_id = parse_event(payload)
    except WebhookError as exc:
        # Nothing is recorded or changed for a delivery we cannot trust.
        return JsonResponse({"detail": exc.message}, status=400)
    outcome = receive(event_id=request.headers["webhook-id"], kind=kind, video_id=video_id)
    return JsonResponse({"received": True, "outcome": outcome})
