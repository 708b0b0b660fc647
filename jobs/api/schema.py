"""OpenAPI pieces shared by the API's views: error responses and path parameters; and a postprocessing
hook (complete_document) that adds what drf-spectacular cannot say per view: the links between
operations, the answers every operation can give (406, 413, 415), the strict-keys rule and the input
limits from settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings
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


# --- Links: how one answer leads to the next call -----------------------------------------------------
# OpenAPI links (3.0 §4.7.13) say which ids in an answer feed which operation: a client (and the stateful
# fuzzer in tests/api/test_stateful_fuzz.py) can walk create -> render -> segments -> segment actions ->
# retrieve/delete without guessing ids. drf-spectacular has no decorator argument for links, so they are
# added to the finished document by `complete_document`, a postprocessing hook (SPECTACULAR_SETTINGS).

# Operations on one job, addressed by its id.
_JOB_OPERATIONS = (
    "video_jobs_retrieve",
    "video_jobs_plan_update",
    "video_jobs_render",
    "video_jobs_retry",
    "video_jobs_cancel",
    "video_jobs_rerender",
    "video_jobs_estimate",
    "segments_list",
    "reference_images_list",
    "reference_images_create",
    "video_jobs_destroy",
)
# Operations on one segment, addressed by the job's id and the segment's index.
_SEGMENT_OPERATIONS = ("segments_retrieve", "segments_partial_update", "segments_rerender")
_IMAGE_OPERATIONS = ("reference_images_retrieve", "reference_images_destroy")


def _links(targets: tuple[str, ...], **parameters: str) -> dict[str, dict[str, Any]]:
    return {target: {"operationId": target, "parameters": dict(parameters)} for target in targets}


def _from_job_detail(job_id: str) -> dict[str, dict[str, Any]]:
    # A job detail answer (create, retrieve, the render actions) carries the job's id and its segments.
    return {
        **_links(_JOB_OPERATIONS, job_id=job_id),
        **_links(_SEGMENT_OPERATIONS, job_id=job_id, index="$response.body#/segments/0/index"),
        **_links(_IMAGE_OPERATIONS, job_id=job_id, image_id="$response.body#/reference_images/0/id"),
    }


_BODY_ID = "$response.body#/id"
_PATH_JOB = "$request.path.job_id"
_PATH_INDEX = "$request.path.index"

# operationId -> status code -> links of that answer.
LINKS: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    "video_jobs_create": {"201": _from_job_detail(_BODY_ID)},
    "video_jobs_list": {"200": _links(_JOB_OPERATIONS, job_id="$response.body#/results/0/id")},
    "video_jobs_retrieve": {"200": _from_job_detail(_BODY_ID)},
    "video_jobs_plan_update": {"200": _from_job_detail(_BODY_ID)},
    **{
        action: {"202": _from_job_detail(_BODY_ID)}
        for action in (
            "video_jobs_render",
            "video_jobs_retry",
            "video_jobs_cancel",
            "video_jobs_rerender",
            "segments_rerender",
        )
    },
    "segments_list": {"200": _links(_SEGMENT_OPERATIONS, job_id=_PATH_JOB, index="$response.body#/0/index")},
    "segments_retrieve": {"200": _links(_SEGMENT_OPERATIONS, job_id=_PATH_JOB, index=_PATH_INDEX)},
    "segments_partial_update": {
        "200": {
            **_links(_SEGMENT_OPERATIONS, job_id=_PATH_JOB, index=_PATH_INDEX),
            **_links(("video_jobs_render", "video_jobs_retrieve"), job_id=_PATH_JOB),
        }
    },
    "reference_images_create": {"201": _links(_IMAGE_OPERATIONS, job_id=_PATH_JOB, image_id=_BODY_ID)},
    "reference_images_list": {
        "200": _links(_IMAGE_OPERATIONS, job_id=_PATH_JOB, image_id="$response.body#/0/id")
    },
    "reference_images_retrieve": {"200": _links(_IMAGE_OPERATIONS, job_id=_PATH_JOB, image_id=_BODY_ID)},
}


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        operation["operationId"]: operation
        for item in document.get("paths", {}).values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    }


# Answers any operation can give, whatever its view: (status, description, only operations with a body).
GENERIC_RESPONSES = (
    ("406", "The Accept header asks for something other than JSON.", False),
    ("413", _ERROR_TEXT[413], True),
    ("415", "The body's Content-Type is not one this operation reads.", True),
)
# Where the per-view wording of errors() does not fit the operation.
RESPONSE_TEXT = {("video_jobs_list", "404"): "No such page: past the last one."}
# Headers the views set: (operation, status) -> name -> header object.
RESPONSE_HEADERS = {
    ("video_jobs_create", "201"): {
        "Location": {"description": "The new job's URL.", "schema": {"type": "string", "format": "uri"}}
    },
    ("video_jobs_create", "429"): {
        "Retry-After": {"description": "Seconds to wait before a new create.", "schema": {"type": "integer"}}
    },
}


def complete_document(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: LINKS into the responses, the answers every operation can give
    (GENERIC_RESPONSES: 413 because jobs.api.parsers and the upload checks refuse oversized bodies, 406
    and 415 from DRF's content negotiation), and the limits the server enforces on input
    (document_input_limits)."""
    operations = _operations(result)
    document_input_limits(result.get("components", {}).get("schemas", {}))
    for operation_id, by_status in LINKS.items():
        source = operations.get(operation_id)
        if source is None:  # not in this (possibly filtered) document
            continue
        for status_code, links in by_status.items():
            present = {name: link for name, link in links.items() if link["operationId"] in operations}
            source["responses"][status_code].setdefault("links", {}).update(present)
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operation in operations.values():
        for status_code, description, needs_body in GENERIC_RESPONSES:
            if "requestBody" in operation or not needs_body:
                operation["responses"].setdefault(status_code, {"description": description, "content": error})
    for (operation_id, status_code), description in RESPONSE_TEXT.items():
        if operation_id in operations and status_code in operations[operation_id]["responses"]:
            operations[operation_id]["responses"][status_code]["description"] = description
    for (operation_id, status_code), headers in RESPONSE_HEADERS.items():
        if operation_id in operations and status_code in operations[operation_id]["responses"]:
            operations[operation_id]["responses"][status_code].setdefault("headers", {}).update(headers)
    return result


# --- What input the server accepts ----------------------------------------------------------------------
# The limits are checked once, by jobs.planning and the services (with messages that name the setting);
# here the same settings and registries are written into the document, so a client (and the fuzzer)
# knows what a valid request looks like without sending it.

# planning._check_fields: fps is a whole number from 1 to 120.
FPS_RANGE = (1, 120)


def _job_limits() -> dict[str, dict[str, Any]]:
    from jobs.catalogue import provider_names
    from jobs.models import Continuity, ReferenceFit, VideoJob
    from segmentation.registry import strategy_choices

    return {
        "title": {"maxLength": VideoJob._meta.get_field("title").max_length},
        "prompt": {"maxLength": settings.MAX_JOB_PROMPT_CHARS, "pattern": r"\S"},
        "duration_seconds": {
            "minimum": settings.MIN_DURATION_SECONDS,
            "maximum": settings.MAX_DURATION_SECONDS,
        },
        "segment_seconds": {"minimum": settings.MIN_SEGMENT_SECONDS, "maximum": settings.MAX_SEGMENT_SECONDS},
        "strategy": {"enum": [name for name, _ in strategy_choices()]},
        "continuity": {"enum": list(Continuity.values)},
        "reference_fit": {"enum": list(ReferenceFit.values)},
        "provider": {"enum": list(provider_names())},
        "fps": {"minimum": FPS_RANGE[0], "maximum": FPS_RANGE[1]},
    }


def _segment_prompt_limits() -> dict[str, dict[str, Any]]:
    return {"prompt": {"maxLength": settings.MAX_SEGMENT_PROMPT_CHARS, "pattern": r"\S"}}


def document_input_limits(schemas: dict[str, Any]) -> None:
    """Every request body refuses keys it does not know (StrictInputSerializer, multipart_job):
    `additionalProperties: false`; the job and segment fields get their bounds and choices."""
    limits = {
        "VideoJobCreateRequest": _job_limits(),
        "VideoJobEstimateRequest": _job_limits(),
        "SegmentPromptRequest": _segment_prompt_limits(),
        "PatchedSegmentUpdateRequest": _segment_prompt_limits(),
        "PlanCardRequest": _segment_prompt_limits(),
    }
    for name, component in schemas.items():
        if not name.endswith("Request") or component.get("type") != "object":
            continue
        component["additionalProperties"] = False
        for field, extra in limits.get(name, {}).items():
            if field in component.get("properties", {}):
                component["properties"][field].update(extra)
