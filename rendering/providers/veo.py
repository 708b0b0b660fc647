"""Veo 3.1 on Vertex AI (provider "veo").

Protocol (Vertex AI Veo reference, cloud.google.com/vertex-ai/generative-ai/docs/model-reference/
veo-video-generation): `POST {base}/v1/projects/{p}/locations/{l}/publishers/google/models/{model}
:predictLongRunning` with `instances[0]` (prompt, `image` first frame, `lastFrame`, `referenceImages`) and
`parameters` (durationSeconds, aspectRatio, resolution, generateAudio, sampleCount, seed, storageUri) answers
an operation name, which is the task id; `POST .../models/{model}:fetchPredictOperation {"operationName"}`
answers `done` and then `response.videos[]` (inline `bytesBase64Encoded`, or `gcsUri` when storageUri was
given), or `raiMediaFilteredCount` / `raiMediaFilteredReasons` when the safety filter ate the clip, or
`error` (a google.rpc.Status).

Why google-auth + requests and not google-genai's `models.generate_videos` / `operations.get`:
- errors: the retry policy lives in the Celery tasks and needs the HTTP status, Google's `status` and the
  server's wait (Retry-After or google.rpc.RetryInfo); the SDK folds these into its own exception and has a
  tenacity retry loop of its own, which would double every retry budget;
- bounded calls: every call here carries (connect, read) timeouts from settings, the token refresh included
  (google-auth's AuthorizedSession hands the same timeout to the refresh); the SDK's httpx client defaults
  to no timeout;
- footprint: the SDK brings httpx, pydantic models and an event-loop layer to send two JSON POSTs; it stays
  a dev dependency that the tests use to prove the stand-in (rendering.fake_api.vertex) speaks Google's
  protocol, so the stand-in and this client are checked against the same thing.
The SDK talks v1beta1; this client uses v1, the version Google's REST reference documents.

Credentials: a service-account key file (GOOGLE_APPLICATION_CREDENTIALS) loaded with the cloud-platform
scope (without it Google's token endpoint answers `invalid_scope`); its `token_uri` is used as given, so a
stand-in token endpoint works. A 401 refreshes the token once and retries (AuthorizedSession).

Errors: 400 INVALID_ARGUMENT, 401, 403, 404 and other 4xx are permanent and keep Google's message; 408,
409, 429 and 5xx, timeouts and connection failures are transient and carry a retry_after (Google's, else a
default). Vertex has no idempotency key: a create whose answer is lost is billed again if retried.
Vertex offers no cancel for publisher-model operations, so `cancel` stays the base class's no-op.

Outputs written to GCS (VERTEX_OUTPUT_GCS_URI) are downloaded through the GCS JSON API
(`GET {VERTEX_GCS_BASE_URL}/storage/v1/b/{bucket}/o/{object}?alt=media`) with the same token; the
cloud-platform scope covers Cloud Storage. VERTEX_GCS_BASE_URL defaults to https://storage.googleapis.com.

Longer than 400 lines on purpose: one protocol client (request shape, errors, tokens, operations,
downloads), read top to bottom beside Google's reference; its models are in veo_models.py.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import io
import os
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings

from .base import (
    ProgressCallback,
    ProviderCatalogue,
    ProviderError,
    ProviderTask,
    RenderRequest,
    TaskState,
    VideoProvider,
)
from .http import stream_to_file
from .registry import register_provider
from .veo_models import ASPECT_RATIOS, DEFAULT_MODEL, MODEL_BY_ID, MODELS

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_GCS_BASE_URL = "https://storage.googleapis.com"
# The cheapest model that takes every input Veo offers (first/last frame, three reference images).

# --- errors -----------------------------------------------------------------------------------------

TRANSIENT_HTTP = {408, 409, 429}
# google.rpc.Code names whose failure another attempt can cure (AIP-194).
TRANSIENT_RPC = {"UNKNOWN", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "INTERNAL", "UNAVAILABLE"}
RPC_NAMES = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}
# Waits when Google names none: Vertex quotas are per minute, so a 429 is worth half a minute; a 5xx
# or a dropped connection is usually gone within seconds.
DEFAULT_RATE_LIMIT_WAIT = 30.0
DEFAULT_TRANSIENT_WAIT = 5.0

OPERATION_NAME = re.compile(
    r"^(?P<resource>projects/[^/]+/locations/[^/]+/publishers/google/models/(?P<model>[^/]+))"
    r"/operations/[^/]+$"
)


def _retry_after(response: requests.Response, error: dict[str, Any]) -> float | None:
    """Google's wait: a Retry-After header (seconds or an HTTP date), else a google.rpc.RetryInfo detail."""
    raw = response.headers.get("retry-after")
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(raw)
            except (TypeError, ValueError):
                parsed = None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - time.time())
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = str(detail.get("retryDelay") or "")
            try:
                return max(0.0, float(delay.removesuffix("s")))
            except ValueError:
                continue
    return None


def _error_of(response: requests.Response) -> dict[str, Any]:
    """Google's {"error": {code, message, status, details}}, or what can be made of a non-Google body."""
    try:
        body = response.json()
    except ValueError:
        return {"message": response.text.strip()[:500] or response.reason or f"HTTP {response.status_code}"}
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return error
    return {"message": str(body)[:500]}


def _http_error(what: str, response: requests.Response) -> ProviderError:
    status = response.status_code
    error = _error_of(response)
    google_status = str(error.get("status") or "")
    message = str(error.get("message") or response.reason or "")
    transient = status in TRANSIENT_HTTP or status >= 500
    retry_after = _retry_after(response, error) if transient else None
    if transient and retry_after is None:
        retry_after = DEFAULT_RATE_LIMIT_WAIT if status == 429 else DEFAULT_TRANSIENT_WAIT
    if google_status == "INVALID_ARGUMENT" or (status == 400 and not google_status):
        code = "invalid_request"
    else:
        code = google_status.lower() or f"http_{status}"
    label = f"{status} {google_status}".strip()
    return ProviderError(
        f"Vertex AI refused {what} ({label}): {message}",
        permanent=not transient,
        code=code,
        retry_after=retry_after,
        status_code=status,
    )


def _operation_failure(error: dict[str, Any]) -> tuple[str, str]:
    """(error_code, message) of an operation that ended with a google.rpc.Status. Permanent failures get
    a code the pipeline treats as final; transient ones keep Google's status name, which it retries."""
    try:
        number = int(error.get("code") or 2)
    except (TypeError, ValueError):
        number = 2
    name = RPC_NAMES.get(number, "UNKNOWN")
    message = f"Veo failed ({name}): {error.get('message') or 'no message'}"
    if name in TRANSIENT_RPC:
        return name.lower(), message
    return "invalid_request", message


# --- credentials --------------------------------------------------------------------------------------

_credentials_lock = threading.Lock()
_credentials_cache: dict[tuple[str, int], Any] = {}


def _service_account_credentials(path: str) -> Any:
    """google-auth service-account credentials with the cloud-platform scope, one per key file (and its
    mtime, so a rotated key is picked up), shared by every provider instance so a token is fetched once
    an hour, not once a call."""
    from google.oauth2 import service_account

    try:
        mtime = Path(path).stat().st_mtime_ns
    except OSError as exc:
        raise ProviderError(
            f"GOOGLE_APPLICATION_CREDENTIALS names {path}, which cannot be read: {exc}",
            permanent=True,
            code="not_configured",
        ) from exc
    key = (path, mtime)
    with _credentials_lock:
        credentials = _credentials_cache.get(key)
        if credentials is None:
            try:
                credentials = service_account.Credentials.from_service_account_file(
                    path, scopes=[CLOUD_PLATFORM_SCOPE]
                )
            except (ValueError, KeyError, OSError) as exc:
                raise ProviderError(
                    f"GOOGLE_APPLICATION_CREDENTIALS ({path}) is not a usable service-account key: {exc}",
                    permanent=True,
                    code="not_configured",
                ) from exc
            # Drop the entries of older versions of the same file.
            for stale in [k for k in _credentials_cache if k[0] == path]:
                del _credentials_cache[stale]
            _credentials_cache[key] = credentials
        return credentials


# --- the provider -------------------------------------------------------------------------------------


def _image_part(path: Path) -> dict[str, str]:
    """An image as Veo takes it inline: base64 bytes and a mime type it accepts (JPEG or PNG)."""
    data = Path(path).read_bytes()
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        mime = "image/png"
    elif data[:3] == b"\xff\xd8\xff":
        mime = "image/jpeg"
    else:
        # Veo takes only JPEG and PNG; anything else (WebP, GIF, ...) is re-encoded as PNG.
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as image:
                buffer = io.BytesIO()
                image.convert("RGB").save(buffer, format="PNG")
        except (UnidentifiedImageError, OSError) as exc:
            raise ProviderError(
                f"{path.name} is not an image Veo can take: {exc}", permanent=True, code="invalid_request"
            ) from exc
        data, mime = buffer.getvalue(), "image/png"
    return {"bytesBase64Encoded": base64.b64encode(data).decode("ascii"), "mimeType": mime}


@register_provider("veo")
class VeoProvider(VideoProvider):
    def __init__(self) -> None:
        self.project = settings.VERTEX_PROJECT
        self.location = settings.VERTEX_LOCATION or "us-central1"
        default_base = (
            "https://aiplatform.googleapis.com"
            if self.location == "global"
            else f"https://{self.location}-aiplatform.googleapis.com"
        )
        self.base_url = (settings.VERTEX_BASE_URL or default_base).rstrip("/")
        self.credentials_path = settings.GOOGLE_APPLICATION_CREDENTIALS
        self.output_gcs_uri = settings.VERTEX_OUTPUT_GCS_URI
        self.gcs_base_url = (settings.VERTEX_GCS_BASE_URL or DEFAULT_GCS_BASE_URL).rstrip("/")
        self.timeout = (settings.VERTEX_CONNECT_TIMEOUT, settings.VERTEX_READ_TIMEOUT)
        # An AuthorizedSession, made on first use once the configuration has been checked (so that
        # capabilities() works on a deployment without Vertex settings).
        self._session: requests.Session | None = None

    # --- capabilities -------------------------------------------------------------------------------

    def catalogue(self) -> ProviderCatalogue:
        # Needs no configuration to read, so the catalogue lists Veo even where it cannot render yet.
        return ProviderCatalogue(
            provider=self.name,
            label="Veo 3.1 on Vertex AI",
            models=MODELS,
            default_model=DEFAULT_MODEL,
            requires=("VERTEX_PROJECT", "GOOGLE_APPLICATION_CREDENTIALS"),
        )

    def _require_config(self) -> None:
        if not self.project:
            raise ProviderError(
                "VERTEX_PROJECT is not set; the veo provider needs the Google Cloud project that runs Veo",
                permanent=True,
                code="not_configured",
            )
        if not self.credentials_path:
            raise ProviderError(
                "GOOGLE_APPLICATION_CREDENTIALS is not set; the veo provider needs a service-account key",
                permanent=True,
                code="not_configured",
            )
        if not Path(self.credentials_path).is_file():
            raise ProviderError(
                f"GOOGLE_APPLICATION_CREDENTIALS names {self.credentials_path}, which is not a file",
                permanent=True,
                code="not_configured",
            )

    def _authorized_session(self) -> requests.Session:
        self._require_config()
        if self._session is None:
            from google.auth.transport.requests import AuthorizedSession, Request

            credentials = _service_account_credentials(self.credentials_path)
            # A plain session for the token endpoint: the refresh gets each call's (connect, read)
            # timeout from AuthorizedSession.request, and no hidden adapter retries stretch it.
            self._session = AuthorizedSession(credentials, auth_request=Request(requests.Session()))
        return self._session

    def _call(self, what: str, method: str, url: str, **kwargs: Any) -> requests.Response:
        from google.auth import exceptions as auth_exceptions

        session = self._authorized_session()
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = session.request(method, url, **kwargs)
        except auth_exceptions.RefreshError as exc:
            # invalid_grant / invalid_scope: a wrong key or scope, which no retry mends; google-auth marks
            # the rare retryable refresh failure (a 5xx from the token endpoint) as such.
            retryable = bool(getattr(exc, "retryable", False))
            raise ProviderError(
                f"could not get a Google access token for {what}: {exc}",
                permanent=not retryable,
                code="auth_failed",
                retry_after=DEFAULT_TRANSIENT_WAIT if retryable else None,
            ) from exc
        except auth_exceptions.TransportError as exc:
            raise ProviderError(
                f"could not reach Google's token endpoint for {what}: {exc}",
                permanent=False,
                code="connection_error",
                retry_after=DEFAULT_TRANSIENT_WAIT,
            ) from exc
        except requests.Timeout as exc:
            raise ProviderError(
                f"{what} timed out: {exc}",
                permanent=False,
                code="timeout",
                retry_after=DEFAULT_TRANSIENT_WAIT,
            ) from exc
        except requests.ConnectionError as exc:
            raise ProviderError(
                f"could not reach Vertex AI for {what}: {exc}",
                permanent=False,
                code="connection_error",
                retry_after=DEFAULT_TRANSIENT_WAIT,
            ) from exc
        if response.status_code >= 400:
            try:
                raise _http_error(what, response)
            finally:
                response.close()
        return response

    def _post_json(self, what: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._call(what, "POST", f"{self.base_url}/v1/{path}", json=body)
        try:
            data = response.json()
        except ValueError as exc:
            raise ProviderError(
                f"Vertex AI answered {what} with something that is not JSON: {response.text[:300]!r}",
                permanent=False,
                code="bad_response",
                retry_after=DEFAULT_TRANSIENT_WAIT,
            ) from exc
        if not isinstance(data, dict):
            raise ProviderError(
                f"Vertex AI answered {what} with {str(data)[:300]}",
                permanent=False,
                code="bad_response",
                retry_after=DEFAULT_TRANSIENT_WAIT,
            )
        return data

    def _resource(self, model: str) -> str:
        return f"projects/{self.project}/locations/{self.location}/publishers/google/models/{model}"

    # --- protocol -----------------------------------------------------------------------------------

    def request_body(self, request: RenderRequest) -> tuple[str, dict[str, Any]]:
        """(model, predictLongRunning body) for one clip. Google is the judge of combinations (1080p at
        8 s only, reference images on lite, ...): its refusal comes back as a permanent error with its
        message. Only what cannot even be expressed is refused here."""
        model = request.model or DEFAULT_MODEL
        spec = MODEL_BY_ID.get(model)
        if spec is None:
            raise ProviderError(
                f"unknown Veo model {model!r}; choose one of: {', '.join(MODEL_BY_ID)}",
                permanent=True,
                code="invalid_request",
            )
        resolution = spec.resolution_of(request.size)
        if not resolution:
            raise ProviderError(
                f"Veo renders {', '.join(spec.all_sizes() or ())}; not {request.size}",
                permanent=True,
                code="invalid_request",
            )
        seconds = float(request.seconds)
        if not seconds.is_integer():
            raise ProviderError(
                f"Veo renders whole seconds (4, 6 or 8); not {seconds:g}",
                permanent=True,
                code="invalid_request",
            )
        instance: dict[str, Any] = {"prompt": request.prompt}
        if request.reference_image is not None:
            instance["image"] = _image_part(Path(request.reference_image))
        if request.last_frame is not None:
            instance["lastFrame"] = _image_part(Path(request.last_frame))
        if request.reference_images:
            instance["referenceImages"] = [
                {"image": _image_part(Path(path)), "referenceType": "asset"}
                for path in request.reference_images
            ]
        parameters: dict[str, Any] = {
            "durationSeconds": int(seconds),
            "aspectRatio": ASPECT_RATIOS[request.size],
            "resolution": resolution,
            "generateAudio": bool(request.audio),
            "sampleCount": 1,
        }
        if request.seed is not None:
            parameters["seed"] = int(request.seed)
        if self.output_gcs_uri:
            parameters["storageUri"] = self.output_gcs_uri
        return model, {"instances": [instance], "parameters": parameters}

    def submit(self, request: RenderRequest, *, on_progress: ProgressCallback | None = None) -> ProviderTask:
        self._require_config()
        model, body = self.request_body(request)
        answer = self._post_json("the video request", f"{self._resource(model)}:predictLongRunning", body)
        name = answer.get("name")
        if not isinstance(name, str) or not OPERATION_NAME.match(name):
            raise ProviderError(
                f"Vertex AI accepted the video request but named no operation: {str(answer)[:300]}",
                permanent=False,
                code="bad_response",
                retry_after=DEFAULT_TRANSIENT_WAIT,
            )
        return ProviderTask(id=name, status=TaskState.QUEUED)

    def _fetch(self, task_id: str) -> dict[str, Any]:
        match = OPERATION_NAME.match(task_id or "")
        if match is None:
            raise ProviderError(
                f"{task_id!r} is not a Veo operation name", permanent=True, code="invalid_request"
            )
        return self._post_json(
            f"the status of {task_id}",
            f"{match['resource']}:fetchPredictOperation",
            {"operationName": task_id},
        )

    @staticmethod
    def _task(task_id: str, operation: dict[str, Any]) -> ProviderTask:
        if not operation.get("done"):
            # Vertex reports no progress for Veo; "running" is all there is to say.
            return ProviderTask(id=task_id, status=TaskState.IN_PROGRESS)
        error = operation.get("error")
        if isinstance(error, dict):
            code, message = _operation_failure(error)
            return ProviderTask(
                id=task_id, status=TaskState.FAILED, progress=100.0, error_code=code, error_message=message
            )
        response = operation.get("response") or {}
        if response.get("videos"):
            return ProviderTask(id=task_id, status=TaskState.COMPLETED, progress=100.0)
        filtered = response.get("raiMediaFilteredCount") or 0
        if filtered:
            reasons = (
                "; ".join(str(r) for r in response.get("raiMediaFilteredReasons") or ()) or "no reason given"
            )
            return ProviderTask(
                id=task_id,
                status=TaskState.FAILED,
                progress=100.0,
                error_code="content_policy_violation",
                error_message=f"Veo's safety filter blocked the video: {reasons}",
            )
        return ProviderTask(
            id=task_id,
            status=TaskState.FAILED,
            progress=100.0,
            error_code="no_video",
            error_message="Veo finished without a video and without saying why",
        )

    def poll(self, task_id: str) -> ProviderTask:
        self._require_config()
        return self._task(task_id, self._fetch(task_id))

    def download(self, task_id: str, dest: Path) -> Path:
        """Write the clip to `dest` (complete or not at all). The inline bytes come from the operation
        itself, fetched again here rather than kept from the poll, so workers hold no video in memory
        between steps; a gcsUri is downloaded from Cloud Storage."""
        self._require_config()
        operation = self._fetch(task_id)
        task = self._task(task_id, operation)
        if task.status != TaskState.COMPLETED:
            finished = task.status == TaskState.FAILED
            raise ProviderError(
                f"{task_id} has no video to download: {task.error_message or 'it is still rendering'}",
                permanent=finished,
                code=task.error_code or "not_ready",
                retry_after=None if finished else DEFAULT_TRANSIENT_WAIT,
            )
        video = operation["response"]["videos"][0]
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(f".{dest.name}.partial-{uuid.uuid4().hex[:8]}")
        try:
            if video.get("bytesBase64Encoded"):
                try:
                    data = base64.b64decode(video["bytesBase64Encoded"], validate=True)
                except (binascii.Error, ValueError) as exc:
                    raise ProviderError(
                        f"the video of {task_id} is not valid base64: {exc}",
                        permanent=False,
                        code="bad_response",
                        retry_after=DEFAULT_TRANSIENT_WAIT,
                    ) from exc
                partial.write_bytes(data)
            elif video.get("gcsUri"):
                self._download_gcs(task_id, str(video["gcsUri"]), partial)
            else:
                raise ProviderError(
                    f"the video of {task_id} has neither bytes nor a gcsUri: {str(video)[:300]}",
                    permanent=False,
                    code="bad_response",
                    retry_after=DEFAULT_TRANSIENT_WAIT,
                )
            if partial.stat().st_size == 0:
                raise ProviderError(
                    f"the video of {task_id} is empty",
                    permanent=False,
                    code="short_download",
                    retry_after=DEFAULT_TRANSIENT_WAIT,
                )
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)
        return dest

    def _download_gcs(self, task_id: str, uri: str, target: Path) -> None:
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        if not uri.startswith("gs://") or not bucket or not name:
            raise ProviderError(
                f"the video of {task_id} names {uri!r}, which is not a gs://bucket/object URI",
                permanent=True,
                code="invalid_request",
            )
        url = f"{self.gcs_base_url}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"
        try:
            response = self._call(f"the download of {uri}", "GET", url, params={"alt": "media"}, stream=True)
        except ProviderError as exc:
            if exc.status_code in {404, 410}:
                raise ProviderError(
                    f"{uri} can no longer be downloaded: {exc.message}",
                    permanent=True,
                    code="expired",
                    status_code=exc.status_code,
                ) from exc
            raise
        stream_to_file(response, target, what=f"download of {uri}", retry_after=DEFAULT_TRANSIENT_WAIT)
