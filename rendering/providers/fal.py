"""fal's queue (provider "fal"): Kling, Wan, Seedance, Hailuo and Veo behind one protocol.

POST {FAL_QUEUE_URL}/{endpoint id} with the model's JSON input (and `?fal_webhook=` when this
deployment is reachable), then GET {base}/{owner}/{app}/requests/{id}/status, GET .../requests/{id}
for the result (the model's own answer: {"video": {"url", ...}} or its error), PUT .../cancel. The
status, result and cancel URLs carry only the owner and app of the endpoint id, so the task id
("{endpoint id}|{request id}") is all a later poll needs. Auth: "Authorization: Key id:secret"
(settings.FAL_KEY). A failed request is COMPLETED like a good one; its result is the error: a model
error is 422 {"detail": [{loc, msg, type, url, ...}]} (invalid input, content_policy_violation), a
request error is {"detail": str, "error_type": str} (runner_disconnected, request_timeout, ...).

Why plain `requests` and not the official SDK (`fal-client`, which the tests use to prove the stand-in
in rendering.fake_api.fal speaks fal's protocol): the project prefers an official SDK where it allows
step-wise submit/poll/download and a base URL override, and fal-client 1.0 allows neither well:
- No base URL per client: it builds "https://{FAL_QUEUE_RUN_HOST}/" once, at import time, from the
  environment; settings.FAL_QUEUE_URL (with its scheme, overridable per test) could only be honoured
  by patching module globals.
- Retries it hides: every call goes through `_maybe_retry_request`, up to 10 attempts on 408/409/429,
  ingress 502-504 and connection errors, with its own backoff of up to 30 s that ignores Retry-After.
  One poll could block a worker for minutes, and the pipeline, which backs off no sooner than the
  server's retry-after and counts attempts, would never see the 429.
- `result()` is not one step: SyncClient.result() -> handle.get() polls the status until COMPLETED.
- Fixed poll timeouts (QUEUE_POLL_TIMEOUT, 120 s) where we want FAL_CONNECT/READ_TIMEOUT.
The protocol is four small HTTP calls, so this module speaks it directly with bounded timeouts and
leaves retrying to the pipeline, as rendering.providers.sora does.

Two details that cost money if missed: Veo and Seedance default `generate_audio` to true (and bill
audio at up to twice the silent price), so the flag is always sent explicitly from RenderRequest.audio;
and the video URL is a public CDN link, fetched without our Authorization header so the key never
leaves for another host. fal's queue has no idempotency key: a submit whose answer is lost may render
twice, which the pipeline's "store the task id before polling" rule keeps to that one window.

Errors: 401/403 and other 4xx are permanent and keep fal's message; 408/409/429/5xx and connection
failures are transient, carrying the Retry-After. A task that failed for its input reports
`invalid_request` (with each field's message), a content refusal `content_policy_violation` (both in
PERMANENT_FAILURE_CODES), an infrastructure failure fal's own error_type (worth another attempt).
"""

from __future__ import annotations

import math
import time
from base64 import b64encode
from pathlib import Path
from typing import Any

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
from .fal_models import MODELS, fal_model
from .http import parse_retry_after, stream_to_file
from .registry import register_provider

TRANSIENT_STATUS = {408, 409, 429}
# Where fal's webhook deliveries arrive, under settings.PUBLIC_BASE_URL (the route is wired apart).
WEBHOOK_PATH = "/webhooks/fal"
TASK_SEPARATOR = "|"
# Images go inline as data: URIs in the JSON body; refuse ones no model page would accept anyway.
MAX_INLINE_IMAGE_BYTES = 20 * 1024 * 1024


def app_of(endpoint_id: str) -> str:
    """owner/app of an endpoint id: the part fal's status, result and cancel URLs use."""
    return "/".join(endpoint_id.split("/")[:2])


def task_id_of(endpoint_id: str, request_id: str) -> str:
    return f"{endpoint_id}{TASK_SEPARATOR}{request_id}"


def split_task_id(task_id: str) -> tuple[str, str]:
    endpoint_id, sep, request_id = task_id.rpartition(TASK_SEPARATOR)
    if not sep or not endpoint_id or not request_id:
        raise ProviderError(
            f"{task_id!r} is not a fal task id (endpoint|request id)", permanent=True, code="invalid_request"
        )
    return endpoint_id, request_id


def aspect_ratio_of(size: str) -> str:
    width, height = (int(v) for v in size.lower().split("x"))
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"


def data_uri(path: Path) -> str:
    """An image file as a data: URI; its media type comes from its bytes, not its name."""
    from PIL import Image, UnidentifiedImageError

    data = Path(path).read_bytes()
    if len(data) > MAX_INLINE_IMAGE_BYTES:
        raise ProviderError(
            f"{Path(path).name} is {len(data)} bytes; images are sent inline up to {MAX_INLINE_IMAGE_BYTES}",
            permanent=True,
            code="invalid_request",
        )
    try:
        with Image.open(path) as image:
            mime = Image.MIME.get(image.format or "", "")
    except (UnidentifiedImageError, OSError):
        mime = ""
    if not mime.startswith("image/"):
        raise ProviderError(f"{Path(path).name} is not an image", permanent=True, code="invalid_request")
    return f"data:{mime};base64,{b64encode(data).decode('ascii')}"


def _invalid(message: str) -> ProviderError:
    """A request no fal model would accept: permanent, with the reason in plain words."""
    return ProviderError(message, permanent=True, code="invalid_request")


def describe_errors(detail: Any) -> tuple[str, str]:
    """(error code, plain message) for the `detail` of a fal model error."""
    if isinstance(detail, list):
        types = {str(item.get("type", "")) for item in detail if isinstance(item, dict)}
        parts = []
        for item in detail:
            if not isinstance(item, dict):
                parts.append(str(item))
                continue
            loc = [str(p) for p in item.get("loc") or [] if p != "body"]
            where = ".".join(loc)
            parts.append(f"{where}: {item.get('msg', '')}" if where else str(item.get("msg", "")))
        code = "content_policy_violation" if "content_policy_violation" in types else "invalid_request"
        return code, "; ".join(parts) or "fal refused the input"
    return "invalid_request", str(detail)[:500]


def _error_details(response: requests.Response) -> tuple[str, str]:
    """(error type, message) from any fal error body, or the raw text (an ingress page)."""
    try:
        body = response.json()
    except ValueError:
        text = " ".join(response.text.split())[:300]
        return "", text or response.reason or f"HTTP {response.status_code}"
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, list):
            return describe_errors(detail)
        error_type = str(body.get("error_type") or response.headers.get("x-fal-error-type") or "")
        message = detail if isinstance(detail, str) else body.get("status") or str(body)
        return error_type, str(message)[:500]
    return "", str(body)[:500]


# --- the provider ------------------------------------------------------------------------------------


@register_provider("fal")
class FalProvider(VideoProvider):
    def __init__(self, *, session: requests.Session | None = None) -> None:
        self.base_url = settings.FAL_QUEUE_URL.rstrip("/")
        self.key = settings.FAL_KEY
        self.session = session or requests.Session()
        self.timeout = (settings.FAL_CONNECT_TIMEOUT, settings.FAL_READ_TIMEOUT)

    # --- capabilities -------------------------------------------------------------------------------

    def catalogue(self) -> ProviderCatalogue:
        return ProviderCatalogue(
            provider=self.name,
            label="fal.ai queue (Kling, Wan, Seedance, Hailuo, Veo)",
            models=MODELS,
            default_model=MODELS[0].id,
            requires=("FAL_KEY",),
        )

    def _headers(self) -> dict[str, str]:
        if not self.key:
            raise ProviderError(
                "FAL_KEY is not set; the fal provider needs a key (id:secret)",
                permanent=True,
                code="no_api_key",
            )
        return {"Authorization": f"Key {self.key}", "User-Agent": "sora-controller/1"}

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.base_url}/{path.lstrip('/')}"
        kwargs.setdefault("timeout", self.timeout)
        headers = self._headers()
        try:
            response = self.session.request(method, url, headers=headers, **kwargs)
        except requests.Timeout as exc:
            raise ProviderError(f"{method} {path} timed out: {exc}", permanent=False, code="timeout") from exc
        except requests.ConnectionError as exc:
            raise ProviderError(
                f"could not reach {self.base_url}: {exc}", permanent=False, code="connection_error"
            ) from exc
        return response

    @staticmethod
    def _raise_for(response: requests.Response, what: str) -> None:
        """Raise the ProviderError an error answer means (nothing for 2xx)."""
        status = response.status_code
        if status < 400:
            return
        error_type, message = _error_details(response)
        transient = status in TRANSIENT_STATUS or status >= 500
        # fal marks model errors with X-Fal-Retryable; trust it over the status class where present.
        retryable = response.headers.get("x-fal-retryable", "").lower()
        if retryable in {"true", "false"}:
            transient = retryable == "true"
        code = error_type or {401: "invalid_api_key", 403: "forbidden", 404: "not_found"}.get(status, "")
        response.close()
        raise ProviderError(
            f"{what} answered {status}: {message}",
            permanent=not transient,
            code=code or f"http_{status}",
            retry_after=parse_retry_after(response.headers),
            status_code=status,
        )

    # --- protocol -----------------------------------------------------------------------------------

    def build_input(self, request: RenderRequest) -> tuple[str, dict[str, Any]]:
        """(endpoint id, JSON input) for one segment: the endpoint and field names its model uses."""
        model = fal_model(request.model)
        spec, inputs = model.spec, model.inputs
        invalid = _invalid
        resolution = spec.resolution_of(request.size)
        if not resolution:
            raise invalid(
                f"size {request.size!r} is not offered by {spec.id}: {', '.join(spec.all_sizes() or ())}"
            )
        seconds = float(request.seconds)
        if spec.clip_seconds is not None and not any(abs(seconds - s) < 1e-6 for s in spec.clip_seconds):
            allowed = ", ".join(f"{s:g}" for s in spec.clip_seconds)
            raise invalid(f"{spec.id} renders clips of {allowed} s, not {seconds:g} s")

        first, last, references = request.reference_image, request.last_frame, request.reference_images
        images: dict[str, Any] = {}
        if last is not None and first is None:
            raise invalid(f"{spec.id} takes a last frame only together with a first frame")
        if first is not None and last is not None:
            if inputs.first_last_to_video is not None:
                endpoint = inputs.first_last_to_video
            elif inputs.image_to_video is not None and inputs.image_to_video.last_frame:
                endpoint = inputs.image_to_video
            else:
                raise invalid(f"{spec.id} takes no last frame")
            images[endpoint.first_frame or ""] = data_uri(first)
            images[endpoint.last_frame or ""] = data_uri(last)
        elif first is not None:
            if inputs.image_to_video is None:
                raise invalid(f"{spec.id} takes no first frame")
            endpoint = inputs.image_to_video
            images[endpoint.first_frame or ""] = data_uri(first)
        elif references:
            endpoint = inputs.reference_to_video  # type: ignore[assignment]
            if endpoint is None or len(references) > spec.reference_images:
                raise invalid(f"{spec.id} takes at most {spec.reference_images} reference images")
            images[endpoint.references or ""] = [data_uri(path) for path in references]
        else:
            endpoint = inputs.text_to_video

        body: dict[str, Any] = {"prompt": request.prompt}
        if endpoint.duration:
            body[inputs.duration_field] = inputs.duration_format.format(seconds)
        if endpoint.aspect_ratio:
            body[inputs.aspect_ratio_field] = aspect_ratio_of(request.size)
        if endpoint.resolution:
            body[inputs.resolution_field] = resolution
        if endpoint.audio:
            # Sent either way: Veo and Seedance default to true and bill the soundtrack.
            body[inputs.audio_field] = bool(request.audio)
        if endpoint.seed and request.seed is not None:
            body[inputs.seed_field] = int(request.seed)
        body.update(images)
        return endpoint.id, body

    def webhook_url(self) -> str:
        base = (settings.PUBLIC_BASE_URL or "").rstrip("/")
        return f"{base}{WEBHOOK_PATH}" if base else ""

    def submit(self, request: RenderRequest, *, on_progress: ProgressCallback | None = None) -> ProviderTask:
        endpoint_id, body = self.build_input(request)
        params = {"fal_webhook": self.webhook_url()} if self.webhook_url() else None
        response = self._request("POST", endpoint_id, json=body, params=params)
        self._raise_for(response, f"submit to {endpoint_id}")
        try:
            request_id = str(response.json()["request_id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError(
                f"fal's answer to a submit has no request_id: {response.text[:300]}",
                permanent=False,
                code="bad_response",
            ) from exc
        return ProviderTask(id=task_id_of(endpoint_id, request_id), status=TaskState.QUEUED)

    def _requests_path(self, task_id: str) -> tuple[str, str]:
        endpoint_id, request_id = split_task_id(task_id)
        return f"{app_of(endpoint_id)}/requests/{request_id}", endpoint_id

    def poll(self, task_id: str) -> ProviderTask:
        path, _ = self._requests_path(task_id)
        response = self._request("GET", f"{path}/status")
        self._raise_for(response, f"status of {task_id}")
        try:
            body = response.json()
            status = str(body["status"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError(
                f"unexpected status answer: {response.text[:300]}", permanent=False, code="bad_response"
            ) from exc
        if status == "IN_QUEUE":
            return ProviderTask(id=task_id, status=TaskState.QUEUED)
        if status != "COMPLETED":
            # IN_PROGRESS, or a state fal adds later: keep polling. fal reports no percentage.
            return ProviderTask(id=task_id, status=TaskState.IN_PROGRESS)
        if body.get("error_type") or body.get("error"):
            # Failed outside the model (runner lost, timeout, cancelled): fal's type, worth a retry.
            code = str(body.get("error_type") or "fal_error")
            return ProviderTask(
                id=task_id,
                status=TaskState.FAILED,
                progress=100.0,
                error_code="cancelled" if code == "client_cancelled" else code,
                error_message=str(body.get("error") or code),
            )
        result = self._result(task_id)
        if isinstance(result, ProviderTask):
            return result
        return ProviderTask(id=task_id, status=TaskState.COMPLETED, progress=100.0)

    def _result(self, task_id: str) -> dict[str, Any] | ProviderTask:
        """The result of a COMPLETED request: its output, or a FAILED task for the model's refusal."""
        path, _ = self._requests_path(task_id)
        response = self._request("GET", path)
        status = response.status_code
        if status in {404, 410}:
            _, message = _error_details(response)
            raise ProviderError(
                f"the result of {task_id} is gone (fal keeps results about an hour): {message}",
                permanent=True,
                code="expired",
                status_code=status,
            )
        if status == 422 or (400 <= status < 500 and status not in TRANSIENT_STATUS | {401, 403}):
            # The model's own answer: the request is over, and failed.
            error_type, message = _error_details(response)
            if status != 422 and not error_type:
                error_type = "invalid_request"
            return ProviderTask(
                id=task_id,
                status=TaskState.FAILED,
                progress=100.0,
                error_code="cancelled" if error_type == "client_cancelled" else error_type,
                error_message=message,
            )
        self._raise_for(response, f"result of {task_id}")
        try:
            body = response.json()
            url = body["video"]["url"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError(
                f"fal's result for {task_id} has no video.url: {response.text[:300]}",
                permanent=False,
                code="bad_response",
            ) from exc
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise ProviderError(f"unexpected video url {url!r}", permanent=False, code="bad_response")
        return body

    def download(self, task_id: str, dest: Path) -> Path:
        """Stream the clip to `dest` (complete or not at all), within FAL_DOWNLOAD_TIMEOUT in total. A
        result or file that is gone is a permanent error with code `expired`: render the segment again."""
        result = self._result(task_id)
        if isinstance(result, ProviderTask):
            raise ProviderError(
                f"{task_id} failed, there is nothing to download: {result.error_message}",
                permanent=True,
                code=result.error_code or "failed",
            )
        video = result["video"]
        limit = float(settings.FAL_DOWNLOAD_TIMEOUT)
        started = time.monotonic()
        try:
            # No Authorization header: the file is on fal's public CDN, another host than the queue.
            response = self.session.get(
                video["url"], stream=True, timeout=(settings.FAL_CONNECT_TIMEOUT, limit)
            )
        except requests.Timeout as exc:
            raise ProviderError(
                f"download of {task_id} timed out: {exc}", permanent=False, code="timeout"
            ) from exc
        except requests.ConnectionError as exc:
            raise ProviderError(
                f"download of {task_id} failed: {exc}", permanent=False, code="download"
            ) from exc
        if response.status_code in {403, 404, 410}:
            response.close()
            raise ProviderError(
                f"the video of {task_id} can no longer be downloaded (HTTP {response.status_code})",
                permanent=True,
                code="expired",
                status_code=response.status_code,
            )
        self._raise_for(response, f"download of {task_id}")
        expected = video.get("file_size")
        remaining = max(1.0, limit - (time.monotonic() - started))
        return stream_to_file(
            response,
            Path(dest),
            what=f"download of {task_id}",
            expected_bytes=expected,
            deadline_seconds=remaining,
        )

    def cancel(self, task_id: str) -> None:
        """Ask fal to stop. A request already finished (400 ALREADY_COMPLETED) or unknown (404) is left
        as it is: cancelling is best effort."""
        path, _ = self._requests_path(task_id)
        response = self._request("PUT", f"{path}/cancel")
        if response.status_code in {400, 404}:
            response.close()
            return
        self._raise_for(response, f"cancel of {task_id}")
        response.close()
