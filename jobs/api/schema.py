"""OpenAPI pieces shared by the API's views: error responses and path parameters."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema

from .output_serializers import ErrorSerializer, VideoJobDetailSerializer

_ERROR_TEXT = {
    400: "Invalid input; `errors` maps each field path to its messages.",
    401: "Not authenticated.",
    403: "Not authenticated (session without CSRF token) or not allowed.",
    404: "No such job (or not yours).",
    409: "The current state does not allow this, or a request with the same Idempotency-Key is still "
    "running; `detail` and `code` say which.",
    413: "The request body is too large.",
    422: "The Idempotency-Key was already used with a different request (code `idempotency_key_reused`).",
    429: "Too many jobs created; see the Retry-After header.",
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """Schema entries for the error responses of an operation (401/403 apply to every one)."""
    return {
        code: OpenApiResponse(ErrorSerializer, description=_ERROR_TEXT[code])
        for code in sorted({401, 403, *codes})
    }


def job_path_parameter() -> OpenApiParameter:
    return OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The job's id.")


def index_path_parameter() -> OpenApiParameter:
    return OpenApiParameter(
        "index", OpenApiTypes.INT, OpenApiParameter.PATH, description="The segment's index (0-based)."
    )


def action_schema(operation_id: str, summary: str, *codes: int) -> Any:
    return extend_schema(
        operation_id=operation_id,
        tags=["renders"],
        summary=summary,
        request=None,
        responses={202: VideoJobDetailSerializer, **errors(404, *codes)},
    )
