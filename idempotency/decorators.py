"""`@idempotent`: the Idempotency-Key header on an API view's POST.

    @extend_schema(...)
    @idempotent
    def post(self, request, ...): ...

Without the header the view runs as always. With it, the first request with a key runs and its answer
(status, JSON body, Location) is stored; a retry with the same key and the same request gets that
answer again, marked `Idempotent-Replayed: true`, and runs nothing. A retry while the first is still
running gets 409; the same key with a different request gets 422. Answers are stored for anything but a
5xx: a server error releases the key so the retry runs again. Keys belong to the user who sent them and
expire after IDEMPOTENCY_KEY_TTL_SECONDS.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from . import services
from .errors import HEADER
from .fingerprint import request_fingerprint

REPLAYED_HEADER = "Idempotent-Replayed"
# Response headers that belong to the answer and are sent again on a replay.
_KEPT_HEADERS = ("Location",)

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "Makes retrying this request safe: a unique value per logical request (a UUID), 1-255 printable "
        "ASCII characters. A retry with the same key and the same method, path and body gets the first "
        f"answer again (same status and body, header `{REPLAYED_HEADER}: true`) instead of acting twice. "
        "The same key with a different request: 422 (code `idempotency_key_reused`). A retry while the "
        "first request is still running: 409 (code `idempotency_key_in_progress`). Keys are per user and "
        "expire after IDEMPOTENCY_KEY_TTL_SECONDS (default 24 hours)."
    ),
)

Handler = Callable[..., Response]
Check = Callable[[Request], None]


def idempotent(handler: Handler | None = None, *, before: Check | None = None) -> Any:
    """`@idempotent`, or `@idempotent(before=check)` where `check(request)` refuses a request from its
    headers before the body is read for the fingerprint (a multipart upload's declared size)."""
    if handler is None:
        return functools.partial(idempotent, before=before)

    @functools.wraps(handler)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        raw = request.headers.get(HEADER)
        if raw is None:
            return handler(view, request, *args, **kwargs)
        key = services.check_key(raw)
        if before is not None:
            before(request)
        outcome = services.idempotency_key_claim(
            owner=request.user,
            key=key,
            fingerprint=request_fingerprint(request),
            method=request.method,
            path=request.get_full_path(),
        )
        if isinstance(outcome, services.Replay):
            return _replay(outcome.record)
        return _run_and_store(outcome.record, handler, view, request, *args, **kwargs)

    return extend_schema(parameters=[IDEMPOTENCY_KEY_PARAMETER])(wrapper)


def _run_and_store(
    record: Any, handler: Handler, view: Any, request: Request, *args: Any, **kwargs: Any
) -> Response:
    try:
        try:
            response = handler(view, request, *args, **kwargs)
        except Exception as exc:
            # The API error this becomes (400, 404, 409...) is the request's answer and is kept like any
            # other; an unexpected error re-raises from handle_exception and releases the key below.
            response = view.handle_exception(exc)
    except BaseException:
        services.idempotency_key_release(record=record)
        raise
    if response.status_code >= 500:
        services.idempotency_key_release(record=record)
        return response
    headers = {name: response[name] for name in _KEPT_HEADERS if response.has_header(name)}
    body = "" if response.data is None else json.dumps(response.data, cls=JSONEncoder)
    services.idempotency_key_complete(record=record, status=response.status_code, body=body, headers=headers)
    return response


def _replay(record: Any) -> Response:
    data = json.loads(record.response_body) if record.response_body else None
    response = Response(data, status=record.response_status, headers=dict(record.response_headers))
    response[REPLAYED_HEADER] = "true"
    return response
