"""The OpenAI Videos protocol (Sora 2 and any gateway that speaks it, such as LiteLLM's proxy).

POST {base}/videos, GET {base}/videos/{id}, GET {base}/videos/{id}/content?variant=..., POST
{base}/videos/{id}/remix, DELETE {base}/videos/{id}. Base URL, key, models, lengths and prices are
configuration (settings.SORA_*), never constants: the same code talks to OpenAI, Azure or a gateway.

Errors: 400/401/403/404 (and other 4xx) are permanent and keep the server's message; 408, 409, 429,
5xx and connection failures are transient and carry the server's retry-after-ms / retry-after.
"""

from __future__ import annotations

import dataclasses
import mimetypes
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from django.conf import settings

from jobs.catalogue import model_spec
from sora_controller.env import env_str

from .base import (
    CapabilityError,
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
# Separates a gateway model's name from the video id in our task ids ("gemini/veo-3.1|video_123").
GATEWAY_SEPARATOR = "|"


@dataclass(frozen=True)
class Gateway:
    base_url: str
    key: str
    key_name: str  # the setting or environment variable the key comes from, for messages
    model: str  # the catalogue model with its own gateway; "" for SORA_BASE_URL


KNOWN_STATES = {TaskState.QUEUED, TaskState.IN_PROGRESS, TaskState.COMPLETED, TaskState.FAILED}


def _error_details(response: requests.Response) -> tuple[str, str]:
    """(code, message) from an OpenAI-style error body, or the raw text."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()[:500]
        return "", text or response.reason or f"HTTP {response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or body)
        # The field at fault travels apart from the message (`param`); a person needs to see both.
        param = error.get("param")
        if isinstance(param, str) and param and param not in message:
            message = f"{param}: {message}"
        return str(error.get("code") or error.get("type") or ""), message
    if isinstance(error, str):
        return "", error
    return "", str(body)[:500]


def _seconds_param(seconds: float) -> str:
    # The protocol takes seconds as a string from a fixed set ("4", "8", "12", ...).
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


@register_provider("openai-videos", aliases=("sora",))
class SoraProvider(VideoProvider):
    def __init__(self, *, session: requests.Session | None = None) -> None:
        self.base_url = settings.SORA_BASE_URL.rstrip("/")
        self.api_key = settings.SORA_API_KEY
        self.session = session or requests.Session()
        self.timeout = (settings.SORA_CONNECT_TIMEOUT, settings.SORA_READ_TIMEOUT)

    # --- capabilities -------------------------------------------------------------------------------

    def catalogue(self) -> ProviderCatalogue:
        """The models of SORA_MODELS with SORA_* lengths, sizes and prices; a gateway's other models (with
        their own lengths, prices, endpoint and key) come from PROVIDER_CATALOG_FILE."""
        prices = {key: Decimal(str(value)) for key, value in settings.SORA_PRICES.items()}
        lengths = tuple(sorted(float(s) for s in settings.SORA_ALLOWED_SECONDS))
        models = []
        for model in settings.SORA_MODELS:
            sizes = tuple(settings.SORA_SIZES_BY_MODEL.get(model) or settings.SORA_SIZES)
            # Each size is its own "resolution", so a price per model@size maps onto it.
            price = {"*": prices.get(model, Decimal("0"))}
            price.update({size: prices[f"{model}@{size}"] for size in sizes if f"{model}@{size}" in prices})
            models.append(
                ModelSpec(
                    provider=self.name,
                    id=model,
                    clip_seconds=lengths,
                    sizes={size: (size,) for size in sizes},
                    price_per_second=price,
                    first_frame=True,  # input_reference
                    reference_must_match_size=True,
                    max_prompt_chars=settings.MAX_SEGMENT_PROMPT_CHARS,
                    source="SORA_MODELS, SORA_SIZES, SORA_ALLOWED_SECONDS and SORA_PRICES settings",
                )
            )
        return ProviderCatalogue(
            provider=self.name,
            label="OpenAI Videos protocol (/v1/videos gateways)",
            models=tuple(models),
            default_model=settings.SORA_MODEL,
            requires=("SORA_API_KEY",),
            aliases=("sora",),
        )

    # --- HTTP ---------------------------------------------------------------------------------------

    def _gateway(self, model: str) -> Gateway:
        """Where `model` is served: its own gateway when the catalogue file names one (a model behind
        LiteLLM in a deployment whose SORA_BASE_URL is Azure), else SORA_BASE_URL with SORA_API_KEY."""
        spec = None
        if model:
            try:
                spec = model_spec(self.name, model)
            except CapabilityError:
                spec = None
        if spec is not None and spec.endpoint:
            key_name = spec.api_key_env or "SORA_API_KEY"
            key = env_str(spec.api_key_env) if spec.api_key_env else self.api_key
            return Gateway(spec.endpoint.rstrip("/"), key, key_name, model)
        return Gateway(self.base_url, self.api_key, "SORA_API_KEY", "")

    def _task_gateway(self, task_id: str) -> tuple[Gateway, str]:
        """A task id names its model when it renders on a model's own gateway ("model|video_id")."""
        model, _, video_id = task_id.rpartition(GATEWAY_SEPARATOR)
        return self._gateway(model), video_id

    @staticmethod
    def _headers(gateway: Gateway, extra: dict[str, str] | None = None) -> dict[str, str]:
        if not gateway.key:
            raise ProviderError(
                f"{gateway.key_name} is not set; the Videos protocol gateway needs an API key",
                permanent=True,
                code="no_api_key",
            )
        headers = {"Authorization": f"Bearer {gateway.key}", "User-Agent": "sora-controller/1"}
        headers.update(extra or {})
        return headers

    def _request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        gateway: Gateway | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        gateway = gateway or self._gateway("")
        url = f"{gateway.base_url}{path}"
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self.session.request(method, url, headers=self._headers(gateway, headers), **kwargs)
        except requests.Timeout as exc:
            raise ProviderError(f"{method} {path} timed out: {exc}", permanent=False, code="timeout") from exc
        except requests.ConnectionError as exc:
            raise ProviderError(
                f"could not reach {gateway.base_url}: {exc}", permanent=False, code="connection_error"
            ) from exc
        if response.status_code < 400:
            return response
        code, message = _error_details(response)
        status = response.status_code
        transient = status in TRANSIENT_STATUS or status >= 500
        response.close()
        raise ProviderError(
            f"{method} {path} answered {status}: {message}",
            permanent=not transient,
            code=code or f"http_{status}",
            retry_after=parse_retry_after(response.headers),
            status_code=status,
        )

    @staticmethod
    def _task(body: dict[str, Any], headers: Any = None) -> ProviderTask:
        if not isinstance(body, dict) or "id" not in body:
            raise ProviderError(
                f"unexpected response: {str(body)[:300]}", permanent=False, code="bad_response"
            )
        status = body.get("status") or TaskState.QUEUED
        if status not in KNOWN_STATES:
            status = TaskState.IN_PROGRESS  # an unknown interim state: keep polling
        error = body.get("error") or {}
        poll_after = None
        if headers is not None and headers.get("openai-poll-after-ms"):
            try:
                poll_after = float(headers["openai-poll-after-ms"]) / 1000
            except ValueError:
                poll_after = None
        try:
            progress = float(body.get("progress") or 0)
        except (TypeError, ValueError):
            progress = 0.0
        return ProviderTask(
            id=str(body["id"]),
            status=status,
            progress=max(0.0, min(100.0, progress)),
            error_code=str(error.get("code") or "") if isinstance(error, dict) else "",
            error_message=str(error.get("message") or "") if isinstance(error, dict) else str(error),
            poll_after=poll_after,
        )

    # --- protocol -----------------------------------------------------------------------------------

    def create_fields(self, request: RenderRequest) -> dict[str, str]:
        return {
            "prompt": request.prompt,
            "model": request.model,
            "seconds": _seconds_param(request.seconds),
            "size": request.size,
        }

    def submit(self, request: RenderRequest, *, on_progress: ProgressCallback | None = None) -> ProviderTask:
        fields = self.create_fields(request)
        headers = {"Idempotency-Key": request.idempotency_key} if request.idempotency_key else {}
        gateway = self._gateway(request.model)
        if request.reference_image is not None:
            path = Path(request.reference_image)
            mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            with open(path, "rb") as image:
                response = self._request(
                    "POST",
                    "/videos",
                    headers=headers,
                    gateway=gateway,
                    data=fields,
                    files={"input_reference": (path.name, image, mime)},
                )
        else:
            response = self._request("POST", "/videos", headers=headers, gateway=gateway, json=fields)
        return self._named(self._task(response.json(), response.headers), gateway)

    @staticmethod
    def _named(task: ProviderTask, gateway: Gateway) -> ProviderTask:
        if not gateway.model:
            return task
        return dataclasses.replace(task, id=f"{gateway.model}{GATEWAY_SEPARATOR}{task.id}")

    def poll(self, task_id: str) -> ProviderTask:
        gateway, video_id = self._task_gateway(task_id)
        response = self._request("GET", f"/videos/{video_id}", gateway=gateway)
        return self._named(self._task(response.json(), response.headers), gateway)

    def download(self, task_id: str, dest: Path, variant: str = "video") -> Path:
        """Stream the asset to `dest` (complete or not at all). An expired or missing asset is a
        permanent error with code `expired`, so the caller knows to render the segment again."""
        gateway, video_id = self._task_gateway(task_id)
        try:
            response = self._request(
                "GET",
                f"/videos/{video_id}/content",
                gateway=gateway,
                params={"variant": variant},
                stream=True,
                timeout=(settings.SORA_CONNECT_TIMEOUT, settings.SORA_DOWNLOAD_TIMEOUT),
            )
        except ProviderError as exc:
            if exc.status_code in {404, 410}:
                raise ProviderError(
                    f"the {variant} of {task_id} can no longer be downloaded: {exc.message}",
                    permanent=True,
                    code="expired",
                    status_code=exc.status_code,
                ) from exc
            raise
        return stream_to_file(response, dest, what=f"download of {task_id}")

    def remix(self, task_id: str, prompt: str, *, idempotency_key: str = "") -> ProviderTask:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        gateway, video_id = self._task_gateway(task_id)
        response = self._request(
            "POST", f"/videos/{video_id}/remix", headers=headers, gateway=gateway, json={"prompt": prompt}
        )
        return self._named(self._task(response.json(), response.headers), gateway)

    def delete(self, task_id: str) -> None:
        gateway, video_id = self._task_gateway(task_id)
        self._request("DELETE", f"/videos/{video_id}", gateway=gateway)
