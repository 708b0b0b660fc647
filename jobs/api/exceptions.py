"""One error body for every 4xx under /api/, so a program needs one code path to read failures.

The shape (always a JSON object)::

    {
      "detail": "prompt: This field may not be blank.",      # one line for people and logs
      "code": "invalid",                                     # machine-readable, stable
      "errors": {"prompt": ["This field may not be blank."]} # 400 only: field path -> messages
    }

- `detail` and `code` are always present.
- `errors` is present on every 400 and only there. It maps a *field path* to a list of messages.
  Nested input uses dotted paths (`segments.2.prompt`: the third manual segment's prompt); problems not
  tied to one field (malformed JSON, a body that is not an object) are under `non_field_errors`.
- 409 means the object's current state does not allow the move (`code` "illegal_transition"); the
  reason is in `detail`, e.g. "job ... is rendering; only a draft or cancelled job can be rendered".
- 404 is the same for "does not exist" and "belongs to someone else" (`code` "not_found"), so ids
  cannot be probed.
- 429 carries a `Retry-After` header (DRF's throttle).

Service errors are mapped here rather than in each view: InvalidInput -> 400, IllegalTransition -> 409,
NotFound -> 404. Set as REST_FRAMEWORK["EXCEPTION_HANDLER"].
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, JsonResponse
from django.urls import Resolver404, resolve
from rest_framework import exceptions, status
from rest_framework.fields import get_error_detail
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from jobs.catalogue import CapabilityError
from jobs.errors import IllegalTransition, InvalidInput
from jobs.errors import NotFound as ServiceNotFound
from segmentation.types import SegmentationError

NON_FIELD = "non_field_errors"
# The url name of the catch-all route that serves `api_not_found` (see jobs.api.urls).
NOT_FOUND_URL_NAME = "not-found"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object's current state does not allow this."
    default_code = "illegal_transition"


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"


def _as_api_exception(exc: Exception) -> Exception:
    """Translate domain and Django errors into DRF exceptions; anything else is left alone (-> 500)."""
    if isinstance(exc, InvalidInput):
        return exceptions.ValidationError(exc.errors)
    if isinstance(exc, SegmentationError | CapabilityError):
        # Normally wrapped by the services; mapped here too so a strategy or provider called from a
        # view can never surface as a 500.
        return exceptions.ValidationError({exc.field: [exc.message]})
    if isinstance(exc, IllegalTransition):
        return Conflict(str(exc))
    if isinstance(exc, ServiceNotFound):
        return exceptions.NotFound("Not found.")
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(get_error_detail(exc))
    if isinstance(exc, RequestDataTooBig):
        # Django counts the body without its uploaded files (those have their own limits).
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return RequestTooLarge(
            f"The request body (without uploaded files) is larger than the {limit} bytes this server reads."
        )
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return exceptions.ValidationError({NON_FIELD: [str(exc) or "Too many fields in the request."]})
    return exc


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail -> {"dotted.path": ["message", ...]}."""
    out: dict[str, list[str]] = {}

    def add(path: str, message: Any) -> None:
        out.setdefault(path or NON_FIELD, []).append(str(message))

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                # A nested serializer's own non-field errors belong to the path of that serializer.
                if key == NON_FIELD:
                    walk(value, path)
                else:
                    walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list | tuple):
            for position, item in enumerate(node):
                if isinstance(item, Mapping | list | tuple):
                    # Lists of objects report one entry per item; an empty entry is a valid item.
                    if item:
                        walk(item, f"{path}.{position}" if path else str(position))
                else:
                    add(path, item)
        else:
            add(path, node)

    walk(detail, prefix)
    return out


def _code(exc: exceptions.APIException) -> str:
    detail = exc.detail
    code = getattr(detail, "code", None)
    if isinstance(code, str) and not isinstance(exc, exceptions.ValidationError):
        return code
    return exc.default_code if isinstance(exc.default_code, str) else "error"


def _summary(errors: Mapping[str, list[str]]) -> str:
    parts = [
        (message if field == NON_FIELD else f"{field}: {message}").rstrip(".")
        for field, messages in errors.items()
        for message in messages[:1]
    ]
    more = len(parts) - 3
    text = "; ".join(parts[:3])
    return f"{text} (and {more} more)" if more > 0 else text


def encodable(text: str) -> str:
    """`text` with lone surrogates (JSON allows "\\ud800"; UTF-8 does not) written as \\ud800 escapes.
    Error messages echo keys and values the client sent; one the renderer cannot encode would turn a 400
    into a 500."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_body(exc: exceptions.APIException, status_code: int) -> dict[str, Any]:
    if status_code == status.HTTP_400_BAD_REQUEST:
        if isinstance(exc, exceptions.ValidationError):
            errors = flatten_errors(exc.detail) or {NON_FIELD: ["Invalid input."]}
        else:  # ParseError and friends: a problem with the body as a whole
            errors = {NON_FIELD: [str(exc.detail)]}
        errors = {encodable(path): [encodable(m) for m in messages] for path, messages in errors.items()}
        return {"detail": _summary(errors), "code": _code(exc), "errors": errors}
    detail = exc.detail
    text = _summary(flatten_errors(detail)) if isinstance(detail, Mapping | list) else str(detail)
    return {"detail": encodable(text), "code": _code(exc)}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    exc = _as_api_exception(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # not an API error: let Django report the 500
    if not isinstance(exc, exceptions.APIException):
        # DRF turned Http404 / PermissionDenied into its own exceptions; describe them the same way.
        exc = (
            exceptions.NotFound()
            if response.status_code == status.HTTP_404_NOT_FOUND
            else exceptions.PermissionDenied()
        )
    response.data = error_body(exc, response.status_code)
    return response


def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """JSON 404 for paths under the API's prefixes that match no route (e.g. a malformed job id),
    instead of Django's HTML page. Points at the slash-terminated URL when that one exists."""
    detail = "Not found."
    if not request.path.endswith("/"):
        try:
            match = resolve(request.path + "/")
        except Resolver404:
            match = None
        if match is not None and match.url_name != NOT_FOUND_URL_NAME:
            detail = f"Not found. API URLs end with a slash: {request.path}/"
    return JsonResponse({"detail": detail, "code": "not_found"}, status=404)
