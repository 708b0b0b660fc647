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
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from django.conf import settings

from .base import (
    ModelSpec,
    ProgressCallback,
    ProviderCatalogue,
    ProviderError,
    ProviderTask,
    RenderRequest,
    TaskState,
    VideoProvider,
)
from .http import parse_retry_after, stream_to_file
from .registry import register_provider

TRANSIENT_STATUS = {408, 409, 429}
# Where fal's webhook deliveries arrive, under settings.PUBLIC_BASE_URL (the route is wired apart).
WEBHOOK_PATH = "/webhooks/fal"
TASK_SEPARATOR = "|"
# Images go inline as data: URIs in the JSON body; refuse ones no model page would accept anyway.
MAX_INLINE_IMAGE_BYTES = 20 * 1024 * 1024
AS_OF = "2026-11-30"
SCHEMAS = "fal-ai/fal-js libs/types/src/video/types.gen.ts @973a3095"


# --- how each model takes its inputs -----------------------------------------------------------------


@dataclass(frozen=True)
class FalEndpoint:
    """One endpoint of a model family and the optional fields it takes (names are per FalInputs)."""

    id: str
    duration: bool = True
    aspect_ratio: bool = False
    resolution: bool = False
    audio: bool = False
    seed: bool = False
    first_frame: str | None = None  # field name of the first frame, where it takes one
    last_frame: str | None = None  # field name of the last frame
    references: str | None = None  # field name of the reference image list


@dataclass(frozen=True)
class FalInputs:
    """The input field names of one model family, and which endpoint serves which kind of segment."""

    text_to_video: FalEndpoint
    image_to_video: FalEndpoint | None = None
    # A separate endpoint for first + last frame (Veo); else the last frame rides on image_to_video.
    first_last_to_video: FalEndpoint | None = None
    reference_to_video: FalEndpoint | None = None
    duration_field: str = "duration"
    duration_format: str = "{:g}"  # Kling/Wan/Seedance: "5"; Veo: "8s"
    aspect_ratio_field: str = "aspect_ratio"
    resolution_field: str = "resolution"
    audio_field: str = "generate_audio"
    seed_field: str = "seed"

    def endpoints(self) -> tuple[FalEndpoint, ...]:
        found = (self.text_to_video, self.image_to_video, self.first_last_to_video, self.reference_to_video)
        return tuple(e for e in found if e is not None)


@dataclass(frozen=True)
class FalModel:
    spec: ModelSpec
    inputs: FalInputs


def _kling(family: str, label: str, price: str, page: str, *, tail: bool) -> FalModel:
    return FalModel(
        ModelSpec(
            provider="fal",
            id=family,
            label=label,
            clip_seconds=(5.0, 10.0),
            sizes={"1080p": ("1920x1080", "1080x1920")},
            price_per_second={"*": Decimal(price)},
            first_frame=True,
            last_frame=tail,
            max_prompt_chars=2500,
            source=f"{page}; input schema {SCHEMAS}",
            as_of=AS_OF,
        ),
        FalInputs(
            text_to_video=FalEndpoint(f"{family}/text-to-video", aspect_ratio=True),
            # No aspect_ratio on image-to-video: the clip takes the first frame's shape.
            image_to_video=FalEndpoint(
                f"{family}/image-to-video",
                first_frame="image_url",
                last_frame="tail_image_url" if tail else None,
            ),
        ),
    )


def _veo(family: str, label: str, prices: dict[str, str], *, references: bool) -> FalModel:
    def endpoint(path: str, **fields: Any) -> FalEndpoint:
        # Every Veo endpoint takes aspect_ratio, resolution and generate_audio.
        return FalEndpoint(path, aspect_ratio=True, resolution=True, audio=True, **fields)

    return FalModel(
        ModelSpec(
            provider="fal",
            id=family,
            label=label,
            clip_seconds=(4.0, 6.0, 8.0),
            sizes={
                "720p": ("1280x720", "720x1280"),
                "1080p": ("1920x1080", "1080x1920"),
                "4k": ("3840x2160", "2160x3840"),
            },
            price_per_second={key: Decimal(value) for key, value in prices.items()},
            first_frame=True,
            last_frame=True,
            reference_images=3 if references else 0,
            reference_seconds=(8.0,) if references else None,  # reference-to-video renders only 8 s
            audio=True,
            max_prompt_chars=20000,
            source=(
                f"fal.ai/models/{family}/llms.txt and .../first-last-frame-to-video/llms.txt (per-second "
                f"prices with/without audio, 720p/1080p vs 4k; 24 fps); input schema {SCHEMAS}"
            ),
            as_of=AS_OF,
        ),
        FalInputs(
            text_to_video=endpoint(family, seed=True),
            image_to_video=endpoint(f"{family}/image-to-video", seed=True, first_frame="image_url"),
            first_last_to_video=endpoint(
                f"{family}/first-last-frame-to-video",
                seed=True,
                first_frame="first_frame_url",
                last_frame="last_frame_url",
            ),
            # Reference-to-video takes no seed (and only 8 s clips).
            reference_to_video=endpoint(f"{family}/reference-to-video", references="image_urls")
            if references
            else None,
            duration_format="{:g}s",
        ),
    )


# Seedance bills video tokens: height x width x fps x seconds / 1024, at $2.4 per million with audio and
# $1.2 without (fal's page); at 24 fps a second of 720p is 21,600 tokens and of 1080p 48,600.
def _seedance_price(width: int, height: int, per_million: str) -> Decimal:
    tokens = Decimal(width * height * 24) / Decimal(1024)
    return tokens * Decimal(per_million) / Decimal(1_000_000)


FAL_MODELS: tuple[FalModel, ...] = (
    _kling(
        "fal-ai/kling-video/v2.5-turbo/pro",
        "Kling 2.5 Turbo Pro",
        "0.07",
        "fal.ai/models/fal-ai/kling-video/v2.5-turbo/pro/image-to-video/llms.txt ($0.35 per 5 s, $0.07 "
        "per extra second)",
        tail=True,
    ),
    _kling(
        "fal-ai/kling-video/v2.1/master",
        "Kling 2.1 Master",
        "0.28",
        "fal.ai/models/fal-ai/kling-video/v2.1/master/text-to-video/llms.txt ($1.40 per 5 s, $0.28 per "
        "extra second)",
        tail=False,
    ),
    FalModel(
        ModelSpec(
            provider="fal",
            id="fal-ai/wan-25-preview",
            label="Wan 2.5 (preview)",
            clip_seconds=(5.0, 10.0),
            sizes={"720p": ("1280x720", "720x1280"), "1080p": ("1920x1080", "1080x1920")},
            # Wan 2.5 always renders a soundtrack, at the same price.
            price_per_second={
                "720p": Decimal("0.10"),
                "720p+audio": Decimal("0.10"),
                "1080p": Decimal("0.15"),
                "1080p+audio": Decimal("0.15"),
            },
            first_frame=True,
            audio=True,
            max_prompt_chars=800,
            source=(
                "prices: inference.sh/apps/falai.md (fal's Wan 2.5: $0.05/$0.10/$0.15 per s at "
                "480p/720p/1080p; fal's own page is not in the stored copies); durations, 800-char "
                f"prompt and 360-2000 px first frame: input schema {SCHEMAS}"
            ),
            as_of=AS_OF,
        ),
        FalInputs(
            text_to_video=FalEndpoint(
                "fal-ai/wan-25-preview/text-to-video", aspect_ratio=True, resolution=True, seed=True
            ),
            image_to_video=FalEndpoint(
                "fal-ai/wan-25-preview/image-to-video", resolution=True, seed=True, first_frame="image_url"
            ),
        ),
    ),
    FalModel(
        ModelSpec(
            provider="fal",
            id="fal-ai/bytedance/seedance/v1.5/pro",
            label="Seedance 1.5 Pro",
            clip_seconds=tuple(float(s) for s in range(4, 13)),
            sizes={"720p": ("1280x720", "720x1280"), "1080p": ("1920x1080", "1080x1920")},
            price_per_second={
                "720p": _seedance_price(1280, 720, "1.2"),
                "720p+audio": _seedance_price(1280, 720, "2.4"),
                "1080p": _seedance_price(1920, 1080, "1.2"),
                "1080p+audio": _seedance_price(1920, 1080, "2.4"),
            },
            first_frame=True,
            last_frame=True,
            audio=True,
            source=(
                "fal.ai/models/fal-ai/bytedance/seedance/v1.5/pro/image-to-video/llms.txt ($2.4 per million "
                "video tokens with audio, $1.2 without; tokens = h*w*fps*s/1024; '720p 5 s with audio "
                f"roughly $0.26'); input schema {SCHEMAS}"
            ),
            as_of=AS_OF,
        ),
        FalInputs(
            text_to_video=FalEndpoint(
                "fal-ai/bytedance/seedance/v1.5/pro/text-to-video",
                aspect_ratio=True,
                resolution=True,
                audio=True,
                seed=True,
            ),
            # Seedance's image-to-video defaults aspect_ratio to 16:9 whatever the image: always send it.
            image_to_video=FalEndpoint(
                "fal-ai/bytedance/seedance/v1.5/pro/image-to-video",
                aspect_ratio=True,
                resolution=True,
                audio=True,
                seed=True,
                first_frame="image_url",
                last_frame="end_image_url",
            ),
        ),
    ),
    FalModel(
        ModelSpec(
            provider="fal",
            id="fal-ai/minimax/hailuo-02/pro",
            label="MiniMax Hailuo 02 Pro",
            clip_seconds=(6.0,),
            sizes={"1080p": ("1920x1080",)},
            price_per_second={"*": Decimal("0.08")},
            first_frame=True,
            last_frame=True,
            max_prompt_chars=2000,
            source=(
                "fal.ai/models/fal-ai/minimax/hailuo-02/pro/text-to-video ('$0.08/sec. A single 6 second "
                f"video will cost $0.48'; 1080p); input schema {SCHEMAS} (no duration field: 6 s)"
            ),
            as_of=AS_OF,
        ),
        FalInputs(
            text_to_video=FalEndpoint("fal-ai/minimax/hailuo-02/pro/text-to-video", duration=False),
            image_to_video=FalEndpoint(
                "fal-ai/minimax/hailuo-02/pro/image-to-video",
                duration=False,
                first_frame="image_url",
                last_frame="end_image_url",
            ),
        ),
    ),
    _veo(
        "fal-ai/veo3.1/fast",
        "Veo 3.1 Fast (fal)",
        {
            "720p": "0.10",
            "720p+audio": "0.15",
            "1080p": "0.10",
            "1080p+audio": "0.15",
            "4k": "0.30",
            "4k+audio": "0.35",
        },
        references=False,
    ),
    _veo(
        "fal-ai/veo3.1",
        "Veo 3.1 (fal)",
        {
            "720p": "0.20",
            "720p+audio": "0.40",
            "1080p": "0.20",
            "1080p+audio": "0.40",
            "4k": "0.40",
            "4k+audio": "0.60",
        },
        references=True,
    ),
)

MODELS: tuple[ModelSpec, ...] = tuple(model.spec for model in FAL_MODELS)
_BY_ID: dict[str, FalModel] = {model.spec.id: model for model in FAL_MODELS}


def fal_model(model_id: str) -> FalModel:
    try:
        return _BY_ID[model_id]
    except KeyError:
        raise ProviderError(
            f"unknown fal model {model_id!r}; this provider offers: {', '.join(_BY_ID)}",
            permanent=True,
            code="invalid_request",
        ) from None


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
