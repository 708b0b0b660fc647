"""A strict stand-in for fal's queue (queue.fal.run), for tests, benchmarks and offline demos.

It speaks the protocol that fal's official SDK (`fal-client`) and rendering.providers.fal use, and it
refuses what fal refuses. Everything below is written from fal's own material (stored copies read
2026-11): the queue reference (fal.ai/docs/api-reference/inference-api, .../inference-api/queue/*),
the model-errors and request-errors pages (fal.ai/docs/errors, .../model-apis/request-errors), the
webhooks page (docs.fal.ai/model-apis/model-endpoints/webhooks), fal-client's source
(github.com/fal-ai/fal, projects/fal_client/src/fal_client/client.py) and the per-endpoint input
schemas that fal generates from its OpenAPI files (github.com/fal-ai/fal-js, libs/types/src/video/
types.gen.ts and zod.gen.ts at 973a3095, Feb 2026) together with the model pages
(fal.ai/models/<endpoint>/llms.txt).

Protocol
- Auth: `Authorization: Key <id>:<secret>` on every queue call, else 401 with a `detail` string.
- Submit: POST /{endpoint id} (e.g. /fal-ai/kling-video/v2.1/master/text-to-video), JSON body = the
  model's input, optional `?fal_webhook=URL`. Answers 200 with request_id, gateway_request_id, status
  IN_QUEUE, queue_position and the response/status/cancel URLs, which use only the owner and the app
  (/fal-ai/kling-video/requests/{id}...): "The status, result, and cancel URLs use only the owner and
  the app" (inference-api page). The queue accepts any JSON object at submit: the model validates the
  input when a runner picks the request up, so bad input surfaces at the result (TanStack/ai #396:
  "invalid jobs go IN_PROGRESS -> COMPLETED, and the real error (e.g. 422 validation) only surfaces
  when calling result").
- Status: GET .../requests/{id}/status[?logs=1]: 202 while IN_QUEUE (with queue_position) or
  IN_PROGRESS, 200 once COMPLETED ("The API returns 202 while the request is in the queue or in
  progress, and 200 when it is complete"). `logs` is always present (null unless asked for), because
  fal-client reads data["logs"] for IN_PROGRESS and COMPLETED. There is no FAILED state: a failed
  request is COMPLETED; an infrastructure failure also carries `error` and `error_type` on the status
  (fal-client's Completed(error, error_type); fal_client tests use "Runner disconnected" /
  "runner_disconnected").
- Result: GET .../requests/{id} answers what the model answered: 200 {"video": {...}} or the model's
  error, e.g. 422 {"detail": [{loc, msg, type, url, input, ctx}]} (model-errors page: a `detail`
  array with required loc/msg/type/url, header X-Fal-Retryable). Request errors are a flat
  {"detail": str, "error_type": str} with an X-Fal-Error-Type header (request-errors page). Before
  completion it answers 400 "Request is still in progress" (wording unconfirmed). fal keeps a result
  for an hour after completion (queue/result page); after that the fake answers 404.
- Cancel: PUT .../requests/{id}/cancel: 202 {"status": "CANCELLATION_REQUESTED"} while queued or in
  progress, 400 {"status": "ALREADY_COMPLETED"} after, 404 {"status": "NOT_FOUND"} for an unknown id
  (queue/cancel page lists OK, CANCELLATION_REQUESTED, ALREADY_COMPLETED, NOT_FOUND). A cancelled
  request completes with error_type client_cancelled (status 499 on the request-errors page).
- Files: the video URL points at /files/{token}/{name} on this same server, public like fal's CDN
  (v3.fal.media needs no key); it expires `cdn_ttl` seconds after completion (404 afterwards).
- Webhooks: with ?fal_webhook=URL the result is POSTed there once the request completes:
  {"request_id", "gateway_request_id", "status": "OK" | "ERROR", "payload", "error"} and headers
  X-Fal-Webhook-Request-Id, -User-Id, -Timestamp (Unix seconds) and -Signature: the hex ED25519
  signature of "{request_id}\\n{user_id}\\n{timestamp}\\n{sha256(body) hex}" (webhooks page,
  "Verifying Your Webhook"). The public key is served as a JWKS (OKP / Ed25519, base64url `x`) at
  /.well-known/jwks.json, as fal serves its keys at rest.alpha.fal.ai/.well-known/jwks.json.
  One delivery per request: real fal retries 10 times over 2 hours; polling covers a lost one here.

Input validation follows the generated schemas field by field, with pydantic's error shapes (fal's
apps are pydantic models): `missing`, `literal_error` ("Input should be '5' or '10'"), `string_type`,
`string_too_long`, `less_than_equal`, ... One deliberate difference: a field the schema does not list
is refused (`extra_forbidden`), where pydantic's default would silently drop it. A misspelt
`tail_image` would otherwise render (and bill) a clip without its last frame, and a fake that hides
such a bug is worse than one stricter than the real thing; `reject_unknown_fields=False` turns it off.

Knobs (FalFakeConfig, also POST /_fake/config): latency, 429 + Retry-After on the next N submits,
ingress-style 5xx on the next N queue calls, runner failures, content refusal for a marker word,
result and file expiry. Counters: `stats` (also GET /_fake/stats).

Longer than 400 lines on purpose: one protocol's stand-in (queue routes, every endpoint's input schema,
request lifecycle, CDN files, signed webhooks, knobs and counters), read whole beside fal's documentation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import math
import shutil
import ssl
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib import error as urlerror
from urllib import request as urlrequest
from urllib.parse import parse_qs, unquote, urlparse

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from . import content
from .http import JsonHandler, Ticker
from .tls import TLSMaterial, make_tls_material

ERRORS_URL = "https://docs.fal.ai/errors/#"
INGRESS_BODY = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}"
    "</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)

# --- the endpoints: input schemas ------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One input field, as the generated schema states it."""

    kind: str  # "string", "boolean", "integer", "number", "image", "images"
    required: bool = False
    choices: tuple[str, ...] = ()
    max_length: int | None = None
    min_length: int | None = None
    ge: float | None = None
    le: float | None = None
    # Image fields: the pixel bounds the model page states (Wan: 360..2000 px per side).
    min_side: int | None = None
    max_side: int | None = None


@dataclass(frozen=True)
class Output:
    """How the endpoint decides the clip it returns: length, resolution tier and aspect ratio."""

    seconds_field: str | None  # None: a fixed length
    default_seconds: float
    resolution_field: str | None  # None: a fixed tier
    default_resolution: str
    aspect_field: str | None  # None: landscape for text-to-video, the image's shape for image-to-video
    default_aspect: str  # "auto": follow the first image
    image_field: str | None = None  # the image whose shape "auto" follows
    ratios: tuple[str, ...] = ("16:9", "9:16", "1:1")  # what "auto" may pick from


def _prompt(max_length: int | None, min_length: int | None = None) -> Field:
    return Field("string", required=True, max_length=max_length, min_length=min_length)


KLING_RATIOS = ("16:9", "9:16", "1:1")
KLING_BASE = {
    "prompt": _prompt(2500),
    "duration": Field("string", choices=("5", "10")),
    "negative_prompt": Field("string", max_length=2500),
    "cfg_scale": Field("number", ge=0, le=1),
}
KLING_T2V = {**KLING_BASE, "aspect_ratio": Field("string", choices=KLING_RATIOS)}
KLING_I2V = {**KLING_BASE, "image_url": Field("image", required=True)}
KLING_OUT_T2V = Output("duration", 5, None, "1080p", "aspect_ratio", "16:9")
KLING_OUT_I2V = Output("duration", 5, None, "1080p", None, "auto", "image_url", KLING_RATIOS)

HAILUO02_T2V = {"prompt": _prompt(2000, 1), "prompt_optimizer": Field("boolean")}
HAILUO02_I2V = {
    "prompt": _prompt(2000),
    "prompt_optimizer": Field("boolean"),
    "image_url": Field("image", required=True),
    "end_image_url": Field("image"),
}

WAN_COMMON = {
    "prompt": _prompt(800),
    "duration": Field("string", choices=("5", "10")),
    "resolution": Field("string", choices=("480p", "720p", "1080p")),
    "audio_url": Field("string"),
    "seed": Field("integer"),
    "enable_prompt_expansion": Field("boolean"),
    "negative_prompt": Field("string", max_length=500),
    "enable_safety_checker": Field("boolean"),
}

SEEDANCE_RATIOS = ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16")
SEEDANCE_COMMON = {
    "prompt": _prompt(None),
    "resolution": Field("string", choices=("480p", "720p", "1080p")),
    "generate_audio": Field("boolean"),
    "duration": Field("string", choices=tuple(str(s) for s in range(4, 13))),
    "enable_safety_checker": Field("boolean"),
    "camera_fixed": Field("boolean"),
    "seed": Field("integer"),
}

VEO_COMMON = {
    "prompt": _prompt(20000),
    "duration": Field("string", choices=("4s", "6s", "8s")),
    "generate_audio": Field("boolean"),
    "auto_fix": Field("boolean"),
    "resolution": Field("string", choices=("720p", "1080p", "4k")),
    "seed": Field("integer"),
    "negative_prompt": Field("string"),
    # On the current model pages (not yet in the Feb 2026 generated types).
    "safety_tolerance": Field("string", choices=("1", "2", "3", "4", "5", "6")),
}
VEO_T2V = {**VEO_COMMON, "aspect_ratio": Field("string", choices=("16:9", "9:16"))}
VEO_I2V = {
    **VEO_COMMON,
    "aspect_ratio": Field("string", choices=("auto", "16:9", "9:16")),
    "image_url": Field("image", required=True),
}
VEO_FLF = {
    **VEO_COMMON,
    "aspect_ratio": Field("string", choices=("auto", "16:9", "9:16")),
    "first_frame_url": Field("image", required=True),
    "last_frame_url": Field("image", required=True),
}
VEO_REF = {
    "prompt": _prompt(20000),
    "duration": Field("string", choices=("8s",)),
    "aspect_ratio": Field("string", choices=("16:9", "9:16")),
    "generate_audio": Field("boolean"),
    "resolution": Field("string", choices=("720p", "1080p", "4k")),
    "auto_fix": Field("boolean"),
    "safety_tolerance": Field("string", choices=("1", "2", "3", "4", "5", "6")),
    "image_urls": Field("images", required=True),
}
VEO_RATIOS = ("16:9", "9:16")


@dataclass(frozen=True)
class Endpoint:
    id: str
    fields: dict[str, Field]
    output: Output
    # Wan and Seedance answer {"video": ..., "seed": n}; Kling, Hailuo and Veo only {"video": ...}.
    returns_seed: bool = False

    @property
    def app(self) -> str:
        """owner/alias: the part of the id the status, result and cancel URLs use."""
        return "/".join(self.id.split("/")[:2])


def _endpoints() -> dict[str, Endpoint]:
    table: list[Endpoint] = []
    for family in ("fal-ai/kling-video/v2.1/master", "fal-ai/kling-video/v2.5-turbo/pro"):
        i2v = dict(KLING_I2V)
        if "v2.5-turbo" in family:
            # Only 2.5 Turbo Pro's image-to-video takes an end frame (types.gen.ts).
            i2v["tail_image_url"] = Field("image")
        table.append(Endpoint(f"{family}/text-to-video", KLING_T2V, KLING_OUT_T2V))
        table.append(Endpoint(f"{family}/image-to-video", i2v, KLING_OUT_I2V))
    table += [
        # Hailuo 02 Pro: 1080p, 6 s, no duration field ("A single 6 second video will cost $0.48").
        Endpoint(
            "fal-ai/minimax/hailuo-02/pro/text-to-video",
            HAILUO02_T2V,
            Output(None, 6, None, "1080p", None, "16:9"),
        ),
        Endpoint(
            "fal-ai/minimax/hailuo-02/pro/image-to-video",
            HAILUO02_I2V,
            Output(None, 6, None, "1080p", None, "auto", "image_url", ("16:9", "9:16", "1:1")),
        ),
        Endpoint(
            "fal-ai/wan-25-preview/text-to-video",
            {**WAN_COMMON, "aspect_ratio": Field("string", choices=("16:9", "9:16", "1:1"))},
            Output("duration", 5, "resolution", "1080p", "aspect_ratio", "16:9"),
            returns_seed=True,
        ),
        Endpoint(
            "fal-ai/wan-25-preview/image-to-video",
            {**WAN_COMMON, "image_url": Field("image", required=True, min_side=360, max_side=2000)},
            Output("duration", 5, "resolution", "1080p", None, "auto", "image_url"),
            returns_seed=True,
        ),
        Endpoint(
            "fal-ai/bytedance/seedance/v1.5/pro/text-to-video",
            {**SEEDANCE_COMMON, "aspect_ratio": Field("string", choices=SEEDANCE_RATIOS)},
            Output("duration", 5, "resolution", "720p", "aspect_ratio", "16:9"),
            returns_seed=True,
        ),
        Endpoint(
            "fal-ai/bytedance/seedance/v1.5/pro/image-to-video",
            {
                **SEEDANCE_COMMON,
                "aspect_ratio": Field("string", choices=(*SEEDANCE_RATIOS, "auto")),
                "image_url": Field("image", required=True),
                "end_image_url": Field("image"),
            },
            Output("duration", 5, "resolution", "720p", "aspect_ratio", "16:9", "image_url", SEEDANCE_RATIOS),
            returns_seed=True,
        ),
    ]
    for prefix in ("fal-ai/veo3.1", "fal-ai/veo3.1/fast"):
        table += [
            Endpoint(prefix, VEO_T2V, Output("duration", 8, "resolution", "720p", "aspect_ratio", "16:9")),
            Endpoint(
                f"{prefix}/image-to-video",
                VEO_I2V,
                Output("duration", 8, "resolution", "720p", "aspect_ratio", "auto", "image_url", VEO_RATIOS),
            ),
            Endpoint(
                f"{prefix}/first-last-frame-to-video",
                VEO_FLF,
                Output(
                    "duration", 8, "resolution", "720p", "aspect_ratio", "auto", "first_frame_url", VEO_RATIOS
                ),
            ),
        ]
    # Reference-to-video exists for the standard tier only.
    table.append(
        Endpoint(
            "fal-ai/veo3.1/reference-to-video",
            VEO_REF,
            Output("duration", 8, "resolution", "720p", "aspect_ratio", "16:9"),
        )
    )
    return {endpoint.id: endpoint for endpoint in table}


ENDPOINTS: dict[str, Endpoint] = _endpoints()


def nominal_size(resolution: str, ratio: str) -> str:
    """WIDTHxHEIGHT of a resolution tier at an aspect ratio: the tier names the short side
    ("720p" at 16:9 is 1280x720, at 9:16 720x1280); both sides are even, as H.264 wants."""
    short = 2160.0 if resolution.lower() == "4k" else float(resolution.rstrip("p"))
    w_ratio, h_ratio = (int(part) for part in ratio.split(":"))
    if w_ratio >= h_ratio:
        height, width = short, short * w_ratio / h_ratio
    else:
        width, height = short, short * h_ratio / w_ratio
    return f"{int(round(width / 2) * 2)}x{int(round(height / 2) * 2)}"


def _nearest_ratio(width: int, height: int, ratios: tuple[str, ...]) -> str:
    shape = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = (int(p) for p in ratio.split(":"))
        return abs(math.log(w / h) - shape)

    return min(ratios, key=distance)


# --- configuration, state, counters -----------------------------------------------------------------


@dataclass
class FalFakeConfig:
    # The one key accepted, sent as "Authorization: Key <id>:<secret>".
    key: str = "fake-key-id:fake-key-secret"
    user_id: str = "fake-fal-user"  # sent in X-Fal-Webhook-User-Id
    queue_latency: float = 0.2  # seconds a request waits IN_QUEUE
    latency: float = 0.8  # seconds it then spends IN_PROGRESS
    fps: int = 24  # Veo, Kling, Seedance and Wan all deliver 24 fps
    moderation_word: str = "FORBIDDEN"  # a prompt containing it is refused by the "content checker"
    rate_limit_next: int = 0  # the next N submits answer 429
    retry_after: float = 1.0  # seconds, sent as Retry-After on a 429
    transient_errors_next: int = 0  # the next N queue calls answer an nginx-style 5xx
    transient_status: int = 503
    runner_failures_next: int = 0  # the next N submitted requests end with runner_disconnected
    result_ttl: float = 3600.0  # seconds a result stays readable at the response_url (fal: 1 h)
    cdn_ttl: float = 7 * 24 * 3600.0  # seconds a video file stays downloadable after completion
    expire_next_downloads: int = 0  # the next N file downloads answer 404 as if expired
    reject_unknown_fields: bool = True  # see the module docstring
    webhook_timeout: float = 5.0
    image_fetch_timeout: float = 5.0  # for image fields given as http(s) URLs
    image_fetch_max_bytes: int = 25 * 1024 * 1024


@dataclass
class FalRequest:
    id: str
    endpoint: Endpoint
    input: Any
    created: float
    webhook_url: str = ""
    # Decided at submit time, so every later answer is consistent.
    size: str = ""
    seconds: float = 0.0
    seed: int | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)  # a model error (422)
    request_error: tuple[int, str, str] | None = None  # (status, detail, error_type)
    cancelled_at: float | None = None
    file_token: str = ""
    notified: bool = False

    @property
    def failed_fast(self) -> bool:
        return bool(self.errors) or self.request_error is not None

    def completed_at(self, config: FalFakeConfig) -> float:
        if self.cancelled_at is not None:
            return self.cancelled_at
        start = self.created + max(config.queue_latency, 0.0)
        if self.failed_fast:
            # Validation and the content checker run before any generation starts.
            return start + min(0.05, max(config.latency, 0.0))
        return start + max(config.latency, 0.0)

    def state(self, config: FalFakeConfig, now: float) -> str:
        if now >= self.completed_at(config):
            return "COMPLETED"
        if now < self.created + max(config.queue_latency, 0.0):
            return "IN_QUEUE"
        return "IN_PROGRESS"


@dataclass
class FalStats:
    submits: int = 0
    submits_by_endpoint: Counter = field(default_factory=Counter)
    submits_by_model: Counter = field(default_factory=Counter)  # by owner/alias
    rejected_401: int = 0
    rejected_429: int = 0
    transient_errors: int = 0
    status_polls: int = 0
    result_fetches: int = 0
    downloads: int = 0
    expired_downloads: int = 0
    cancels: int = 0
    webhooks_sent: int = 0
    webhook_failures: int = 0
    webhook_statuses: list[int] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["submits_by_endpoint"] = dict(self.submits_by_endpoint)
        data["submits_by_model"] = dict(self.submits_by_model)
        return data


class FalState:
    def __init__(self, config: FalFakeConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.requests: dict[str, FalRequest] = {}
        self.files: dict[str, str] = {}  # file token -> request id
        self.stats = FalStats()
        self.base_url = ""  # set once the server has its port
        self.signing_key = Ed25519PrivateKey.generate()
        self.key_id = uuid.uuid4().hex[:16]

    def reset(self, config: FalFakeConfig | None = None) -> None:
        with self.lock:
            self.requests.clear()
            self.files.clear()
            self.stats = FalStats()
            if config is not None:
                self.config = config

    def queue_position(self, request: FalRequest, now: float) -> int:
        return sum(
            1
            for other in self.requests.values()
            if other.created < request.created and other.state(self.config, now) == "IN_QUEUE"
        )

    def jwks(self) -> dict[str, Any]:
        raw = self.signing_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
        return {
            "keys": [
                {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": self.key_id, "use": "sig", "alg": "EdDSA"}
            ]
        }


def webhook_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    """What fal signs: request id, user id, timestamp and the body's SHA-256 (hex), one per line."""
    return "\n".join([request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()]).encode()


def sign_fal_webhook(
    key: Ed25519PrivateKey, request_id: str, user_id: str, timestamp: str, body: bytes
) -> str:
    """The hex X-Fal-Webhook-Signature of one delivery (written independently of the verifier in
    rendering.providers.fal_webhooks, so each checks the other)."""
    return key.sign(webhook_message(request_id, user_id, timestamp, body)).hex()


# --- validation -------------------------------------------------------------------------------------


def _error(type_: str, loc: list[Any], msg: str, value: Any, ctx: dict[str, Any] | None = None) -> dict:
    item: dict[str, Any] = {"loc": loc, "msg": msg, "type": type_, "url": ERRORS_URL + type_, "input": value}
    if ctx:
        item["ctx"] = ctx
    return item


def _literal_message(choices: tuple[str, ...]) -> str:
    quoted = [f"'{c}'" for c in choices]
    if len(quoted) == 1:
        return f"Input should be {quoted[0]}"
    return f"Input should be {', '.join(quoted[:-1])} or {quoted[-1]}"


def _load_image(value: str, config: FalFakeConfig) -> tuple[int, int]:
    """(width, height) of an image given as a data: URI or an http(s) URL; raises ValueError(type, msg)."""
    from PIL import Image, UnidentifiedImageError

    if value.startswith("data:"):
        header, _, payload = value.partition(",")
        if ";base64" not in header:
            raise ValueError("image_load_error", "Only base64 data URIs are supported.")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("image_load_error", "The data URI is not valid base64.") from None
    elif value.startswith(("http://", "https://")):
        try:
            with urlrequest.urlopen(value, timeout=config.image_fetch_timeout) as response:
                data = response.read(config.image_fetch_max_bytes + 1)
        except (urlerror.URLError, OSError, ValueError):
            raise ValueError(
                "file_download_error", "Failed to download the file. Please check if the URL is accessible."
            ) from None
        if len(data) > config.image_fetch_max_bytes:
            raise ValueError("file_too_large", "The file is too large.")
    else:
        raise ValueError(
            "file_download_error", "Failed to download the file. Please check if the URL is accessible."
        )
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.width, image.height
    except (UnidentifiedImageError, OSError):
        raise ValueError(
            "image_load_error",
            "Failed to load the image. Please ensure the image file is not corrupted and is in a "
            "supported format.",
        ) from None


def validate(
    endpoint: Endpoint, body: Any, config: FalFakeConfig
) -> tuple[list[dict[str, Any]], dict[str, tuple[int, int]]]:
    """Pydantic-style errors for `body` against the endpoint's schema, and the decoded image sizes."""
    if not isinstance(body, dict):
        return [_error("model_attributes_type", ["body"], "Input should be a valid dictionary", body)], {}
    errors: list[dict[str, Any]] = []
    images: dict[str, tuple[int, int]] = {}
    for name, spec in endpoint.fields.items():
        loc: list[Any] = ["body", name]
        if name not in body:
            if spec.required:
                errors.append(_error("missing", loc, "Field required", body))
            continue
        value = body[name]
        if spec.kind in {"string", "image"}:
            # A fixed set is checked first, whatever the type: Kling's duration 5 (a number) is refused
            # as "Input should be '5' or '10'", as pydantic does for a Literal/enum of strings.
            if spec.choices and value not in spec.choices:
                errors.append(
                    _error(
                        "literal_error",
                        loc,
                        _literal_message(spec.choices),
                        value,
                        {"expected": _literal_message(spec.choices).removeprefix("Input should be ")},
                    )
                )
                continue
            if not isinstance(value, str):
                errors.append(_error("string_type", loc, "Input should be a valid string", value))
                continue
            if spec.max_length is not None and len(value) > spec.max_length:
                errors.append(
                    _error(
                        "string_too_long",
                        loc,
                        f"String should have at most {spec.max_length} characters",
                        value,
                        {"max_length": spec.max_length},
                    )
                )
                continue
            if spec.min_length is not None and len(value) < spec.min_length:
                plural = "character" if spec.min_length == 1 else "characters"
                errors.append(
                    _error(
                        "string_too_short",
                        loc,
                        f"String should have at least {spec.min_length} {plural}",
                        value,
                        {"min_length": spec.min_length},
                    )
                )
                continue
            if spec.kind == "image":
                try:
                    width, height = _load_image(value, config)
                except ValueError as exc:
                    type_, msg = exc.args
                    errors.append(_error(type_, loc, msg, value[:120]))
                    continue
                if spec.min_side and min(width, height) < spec.min_side:
                    errors.append(
                        _error(
                            "image_too_small",
                            loc,
                            f"Image dimensions are too small. Minimum is {spec.min_side}px per side.",
                            f"{width}x{height}",
                            {"min_height": spec.min_side, "min_width": spec.min_side},
                        )
                    )
                    continue
                if spec.max_side and max(width, height) > spec.max_side:
                    errors.append(
                        _error(
                            "image_too_large",
                            loc,
                            f"Image dimensions are too large. Maximum is {spec.max_side}px per side.",
                            f"{width}x{height}",
                            {"max_height": spec.max_side, "max_width": spec.max_side},
                        )
                    )
                    continue
                images[name] = (width, height)
        elif spec.kind == "images":
            if not isinstance(value, list):
                errors.append(_error("list_type", loc, "Input should be a valid list", value))
                continue
            for index, item in enumerate(value):
                if not isinstance(item, str):
                    errors.append(
                        _error("string_type", [*loc, index], "Input should be a valid string", item)
                    )
                    continue
                try:
                    images[f"{name}[{index}]"] = _load_image(item, config)
                except ValueError as exc:
                    type_, msg = exc.args
                    errors.append(_error(type_, [*loc, index], msg, item[:120]))
        elif spec.kind == "boolean":
            if not isinstance(value, bool):
                errors.append(_error("bool_type", loc, "Input should be a valid boolean", value))
        elif spec.kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                errors.append(_error("int_type", loc, "Input should be a valid integer", value))
        elif spec.kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                errors.append(_error("float_type", loc, "Input should be a valid number", value))
                continue
            if spec.le is not None and value > spec.le:
                errors.append(
                    _error(
                        "less_than_equal",
                        loc,
                        f"Input should be less than or equal to {spec.le:g}",
                        value,
                        {"le": spec.le},
                    )
                )
            elif spec.ge is not None and value < spec.ge:
                errors.append(
                    _error(
                        "greater_than_equal",
                        loc,
                        f"Input should be greater than or equal to {spec.ge:g}",
                        value,
                        {"ge": spec.ge},
                    )
                )
    if config.reject_unknown_fields:
        for name in body:
            if name not in endpoint.fields:
                errors.append(
                    _error("extra_forbidden", ["body", name], "Extra inputs are not permitted", body[name])
                )
    return errors, images


def _decide_clip(
    endpoint: Endpoint, body: dict[str, Any], images: dict[str, tuple[int, int]]
) -> tuple[str, float]:
    """(size, seconds) of the clip a valid request yields."""
    out = endpoint.output
    seconds = out.default_seconds
    if out.seconds_field and out.seconds_field in body:
        seconds = float(str(body[out.seconds_field]).rstrip("s"))
    resolution = out.default_resolution
    if out.resolution_field and out.resolution_field in body:
        resolution = body[out.resolution_field]
    ratio = out.default_aspect
    if out.aspect_field and out.aspect_field in body:
        ratio = body[out.aspect_field]
    if ratio == "auto":
        shape = images.get(out.image_field or "")
        ratio = _nearest_ratio(*shape, out.ratios) if shape else out.ratios[0]
    return nominal_size(resolution, ratio), seconds


def request_failure(request: FalRequest) -> tuple[int, str, str] | None:
    """(status, detail, error_type) of a request that failed outside the model, else None."""
    if request.cancelled_at is not None:
        return 499, "Request cancelled by the client", "client_cancelled"
    return request.request_error


def result_answer(state: FalState, request: FalRequest) -> tuple[int, Any, dict[str, str]]:
    """The HTTP answer a completed request's result gets (also the webhook's payload)."""
    headers = {"x-fal-request-id": request.id}
    failure = request_failure(request)
    if failure is not None:
        status, detail, error_type = failure
        headers["X-Fal-Error-Type"] = error_type
        return status, {"detail": detail, "error_type": error_type}, headers
    if request.errors:
        headers["X-Fal-Retryable"] = "false"
        return 422, {"detail": request.errors}, headers
    data = content.video_bytes(request.size, request.seconds, state.config.fps)
    with state.lock:
        if not request.file_token:
            request.file_token = uuid.uuid4().hex
            state.files[request.file_token] = request.id
    name = f"{request.id[:8]}_output.mp4"
    video = {
        "url": f"{state.base_url}/files/{request.file_token}/{name}",
        "content_type": "video/mp4",
        "file_name": name,
        "file_size": len(data),
    }
    body: dict[str, Any] = {"video": video}
    if request.seed is not None:
        body["seed"] = request.seed
    return 200, body, headers


# --- HTTP -------------------------------------------------------------------------------------------


class Handler(JsonHandler):
    server_version = "FakeFalQueue/1"

    @property
    def state(self) -> FalState:
        return self.server.state  # type: ignore[attr-defined]

    # --- plumbing -----------------------------------------------------------------------------------

    def _route(self) -> tuple[list[str], dict[str, list[str]]]:
        parsed = urlparse(self.path)
        return [unquote(p) for p in parsed.path.split("/") if p], parse_qs(parsed.query)

    def _authorised(self) -> bool:
        auth = self.headers.get("Authorization", "")
        detail = ""
        if not auth:
            detail = "Missing authorization header"
        elif not auth.startswith("Key ") or ":" not in auth[4:]:
            detail = "Invalid authorization header format: expected 'Key <key_id>:<key_secret>'"
        elif auth[4:] != self.state.config.key:
            detail = "No user found for Key ID and Secret"
        if detail:
            with self.state.lock:
                self.state.stats.rejected_401 += 1
            self._send(401, {"detail": detail})
            return False
        return True

    def _transient(self) -> bool:
        """An ingress error (nginx page, no x-fal-request-id) on the next N queue calls."""
        with self.state.lock:
            config = self.state.config
            if config.transient_errors_next <= 0:
                return False
            config.transient_errors_next -= 1
            self.state.stats.transient_errors += 1
            status = config.transient_status
        reason = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}
        text = INGRESS_BODY.format(code=status, reason=reason.get(status, "Error"))
        self._send(status, raw=text.encode(), content_type="text/html")
        return True

    def _urls(self, request: FalRequest) -> dict[str, str]:
        base = f"{self.state.base_url}/{request.endpoint.app}/requests/{request.id}"
        return {"response_url": base, "status_url": f"{base}/status", "cancel_url": f"{base}/cancel"}

    # --- verbs --------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        parts, query = self._route()
        if parts[:1] == ["_fake"]:
            return self._fake_admin(parts, None)
        if parts == [".well-known", "jwks.json"]:
            return self._send(200, self.state.jwks(), headers={"Cache-Control": "max-age=86400"})
        if len(parts) == 3 and parts[0] == "files":
            return self._file(parts[1])
        if len(parts) in {4, 5} and parts[2] == "requests":
            if not self._authorised() or self._transient():
                return None
            request = self._find("/".join(parts[:2]), parts[3])
            if request is None:
                return self._send(404, {"detail": "Request not found"})
            if len(parts) == 5 and parts[4] == "status":
                logs = (query.get("logs") or ["0"])[0].lower() in {"1", "true"}
                return self._status(request, logs)
            if len(parts) == 4:
                return self._result(request)
        return self._send(404, {"detail": "Not Found"})

    do_HEAD = do_GET

    def do_PUT(self) -> None:
        parts, _ = self._route()
        if len(parts) == 5 and parts[2] == "requests" and parts[4] == "cancel":
            if not self._authorised() or self._transient():
                return None
            return self._cancel("/".join(parts[:2]), parts[3])
        return self._send(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        parts, query = self._route()
        body = self._body()
        if parts[:1] == ["_fake"]:
            return self._fake_admin(parts, body)
        endpoint = ENDPOINTS.get("/".join(parts))
        if endpoint is None:
            return self._send(404, {"detail": f"Application '{'/'.join(parts[:2])}' not found"})
        if not self._authorised() or self._transient():
            return None
        return self._submit(endpoint, body, (query.get("fal_webhook") or [""])[0])

    # --- behaviour ----------------------------------------------------------------------------------

    def _find(self, app: str, request_id: str) -> FalRequest | None:
        with self.state.lock:
            request = self.state.requests.get(request_id)
        # A request is reached only under its own owner/alias, as fal's URLs are built.
        if request is None or request.endpoint.app != app:
            return None
        return request

    def _submit(self, endpoint: Endpoint, raw: bytes, webhook_url: str) -> None:
        state = self.state
        try:
            body = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            return self._send(
                422, {"detail": [_error("json_invalid", ["body", 0], f"JSON decode error: {exc}", None)]}
            )
        with state.lock:
            config = state.config
            if config.rate_limit_next > 0:
                config.rate_limit_next -= 1
                state.stats.rejected_429 += 1
                retry = config.retry_after
                return self._send(
                    429,
                    {"detail": "Rate limit exceeded. Please retry later.", "error_type": "rate_limited"},
                    headers={
                        "Retry-After": f"{max(1, math.ceil(retry))}",
                        "X-Fal-Error-Type": "rate_limited",
                    },
                )
        # Validate now (outside the lock: an image URL may be fetched) but answer only at the result.
        errors, images = validate(endpoint, body, config)
        request = FalRequest(id=str(uuid.uuid4()), endpoint=endpoint, input=body, created=time.time())
        request.webhook_url = webhook_url
        if errors:
            request.errors = errors
        else:
            prompt = str(body.get("prompt", ""))
            if config.moderation_word and config.moderation_word.lower() in prompt.lower():
                request.errors = [
                    _error(
                        "content_policy_violation",
                        ["body", "prompt"],
                        "The content could not be processed because it contained material flagged by a "
                        "content checker.",
                        prompt,
                    )
                ]
            else:
                request.size, request.seconds = _decide_clip(endpoint, body, images)
                if endpoint.returns_seed:
                    seed = body.get("seed")
                    request.seed = (
                        seed if isinstance(seed, int) and seed >= 0 else int(uuid.uuid4().int % 2**31)
                    )
        with state.lock:
            if not request.failed_fast and config.runner_failures_next > 0:
                config.runner_failures_next -= 1
                request.request_error = (503, "Runner disconnected", "runner_disconnected")
            state.requests[request.id] = request
            state.stats.submits += 1
            state.stats.submits_by_endpoint[endpoint.id] += 1
            state.stats.submits_by_model[endpoint.app] += 1
            state.stats.requests.append(
                {"request_id": request.id, "endpoint": endpoint.id, "input": body, "webhook_url": webhook_url}
            )
            position = state.queue_position(request, time.time())
        return self._send(
            200,
            {
                "status": "IN_QUEUE",
                "request_id": request.id,
                "gateway_request_id": request.id,
                "queue_position": position,
                **self._urls(request),
            },
            headers={"x-fal-request-id": request.id},
        )

    def _logs(self, request: FalRequest, state_name: str, now: float) -> list[dict[str, Any]]:
        def entry(message: str, at: float) -> dict[str, Any]:
            stamp = datetime.fromtimestamp(at, UTC).isoformat()
            return {"message": message, "level": "INFO", "source": "user", "timestamp": stamp}

        config = self.state.config
        started = request.created + config.queue_latency
        logs = [entry(f"Starting {request.endpoint.id}", started)]
        if state_name == "IN_PROGRESS" and config.latency > 0:
            done = int(min(99, (now - started) / config.latency * 100))
            logs.append(entry(f"Generating video: {done}%", now))
        elif state_name == "COMPLETED" and not request.failed_fast and request.cancelled_at is None:
            logs.append(entry("Video generated", request.completed_at(config)))
        return logs

    def _status(self, request: FalRequest, with_logs: bool) -> None:
        now = time.time()
        with self.state.lock:
            self.state.stats.status_polls += 1
            config = self.state.config
            name = request.state(config, now)
            body: dict[str, Any] = {"status": name, "request_id": request.id, **self._urls(request)}
            if name == "IN_QUEUE":
                body["queue_position"] = self.state.queue_position(request, now)
            body["logs"] = self._logs(request, name, now) if with_logs and name != "IN_QUEUE" else None
            if name == "COMPLETED":
                body["metrics"] = {"inference_time": round(request.completed_at(config) - request.created, 3)}
                failure = request_failure(request)
                if failure is not None:
                    body["error"], body["error_type"] = failure[1], failure[2]
        return self._send(200 if name == "COMPLETED" else 202, body, headers={"x-fal-request-id": request.id})

    def _result(self, request: FalRequest) -> None:
        now = time.time()
        config = self.state.config
        with self.state.lock:
            self.state.stats.result_fetches += 1
        if request.state(config, now) != "COMPLETED":
            return self._send(400, {"detail": "Request is still in progress"})
        if now > request.completed_at(config) + config.result_ttl:
            return self._send(404, {"detail": "Request not found"})
        status, body, headers = result_answer(self.state, request)
        return self._send(status, body, headers=headers)

    def _cancel(self, app: str, request_id: str) -> None:
        request = self._find(app, request_id)
        if request is None:
            return self._send(404, {"status": "NOT_FOUND"})
        now = time.time()
        with self.state.lock:
            self.state.stats.cancels += 1
            if request.state(self.state.config, now) == "COMPLETED":
                return self._send(400, {"status": "ALREADY_COMPLETED"})
            request.cancelled_at = now
        return self._send(202, {"status": "CANCELLATION_REQUESTED"})

    def _file(self, token: str) -> None:
        config = self.state.config
        with self.state.lock:
            request_id = self.state.files.get(token)
            request = self.state.requests.get(request_id or "")
            expired = request is None or time.time() > request.completed_at(config) + config.cdn_ttl
            if config.expire_next_downloads > 0:
                config.expire_next_downloads -= 1
                expired = True
            if expired:
                self.state.stats.expired_downloads += 1
        if expired or request is None:
            # What a CDN says for an object that is gone: a plain 404, no JSON.
            return self._send(404, raw=b"Not Found", content_type="text/plain")
        data = content.video_bytes(request.size, request.seconds, config.fps)
        with self.state.lock:
            if self.command == "GET":
                self.state.stats.downloads += 1
        return self._send(200, raw=data, content_type="video/mp4")

    def _fake_admin(self, parts: list[str], body: bytes | None) -> None:
        state = self.state
        if parts == ["_fake", "stats"]:
            with state.lock:
                return self._send(200, state.stats.as_dict())
        if parts == ["_fake", "config"] and body is not None:
            updates = json.loads(body or b"{}")
            with state.lock:
                for name, value in updates.items():
                    if not hasattr(state.config, name):
                        return self._send(400, {"detail": f"unknown setting {name}"})
                    setattr(state.config, name, value)
                return self._send(200, asdict(state.config))
        if parts == ["_fake", "reset"] and body is not None:
            state.reset()
            return self._send(200, {"reset": True})
        return self._send(404, {"detail": "unknown admin path"})


# --- webhooks ---------------------------------------------------------------------------------------


class WebhookNotifier(Ticker):
    """Finds requests that completed with a fal_webhook and POSTs each one signed result, once."""

    thread_name = "fake-fal-webhooks"

    def __init__(self, state: FalState, interval: float = 0.05) -> None:
        super().__init__(interval)
        self.state = state

    def tick(self) -> int:
        return self.deliver_due()

    def deliver_due(self) -> int:
        now = time.time()
        due: list[FalRequest] = []
        with self.state.lock:
            for request in self.state.requests.values():
                if (
                    request.webhook_url
                    and not request.notified
                    and request.state(self.state.config, now) == "COMPLETED"
                ):
                    request.notified = True
                    due.append(request)
        for request in due:
            self._deliver(request)
        return len(due)

    def _deliver(self, request: FalRequest) -> None:
        config = self.state.config
        status, payload, _ = result_answer(self.state, request)
        body_json: dict[str, Any] = {
            "request_id": request.id,
            "gateway_request_id": request.id,
            "status": "OK" if status == 200 else "ERROR",
            "payload": payload,
        }
        if status != 200:
            body_json["error"] = f"Invalid status code: {status}"
        body = json.dumps(body_json).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Fal-Webhook-Request-Id": request.id,
            "X-Fal-Webhook-User-Id": config.user_id,
            "X-Fal-Webhook-Timestamp": timestamp,
            "X-Fal-Webhook-Signature": sign_fal_webhook(
                self.state.signing_key, request.id, config.user_id, timestamp, body
            ),
        }
        outgoing = urlrequest.Request(request.webhook_url, data=body, method="POST", headers=headers)
        try:
            with urlrequest.urlopen(outgoing, timeout=config.webhook_timeout) as response:
                code = response.status
        except urlerror.HTTPError as exc:
            code = exc.code
        except (urlerror.URLError, OSError):
            code = 0
        with self.state.lock:
            self.state.stats.webhook_statuses.append(code)
            if 200 <= code < 300:
                self.state.stats.webhooks_sent += 1
            else:
                self.state.stats.webhook_failures += 1


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes


class WebhookRecorder:
    """The other end of a webhook: a local HTTP server that keeps every POST it gets and answers 200
    (tests and demos point `fal_webhook` / PUBLIC_BASE_URL at it)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.deliveries: list[Delivery] = []
        self.arrived = threading.Event()
        recorder = self

        class _Receive(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorder.deliveries.append(Delivery(self.path, dict(self.headers.items()), body))
                recorder.arrived.set()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._host = host
        self.httpd = ThreadingHTTPServer((host, 0), _Receive)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="webhook-recorder", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.httpd.server_address[1]}"

    def wait(self, count: int = 1, timeout: float = 10.0) -> list[Delivery]:
        """Block (at most `timeout` s) until `count` deliveries arrived; return them."""
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count and time.monotonic() < deadline:
            self.arrived.wait(0.05)
            self.arrived.clear()
        return list(self.deliveries)

    def __enter__(self) -> WebhookRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- the server -------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The TLS handshake runs in each request's own thread (finish_request), never in the accept loop,
    # so one stalled client cannot block everyone else; and it is bounded by this timeout.
    handshake_timeout = 10.0
    ssl_context: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(self.handshake_timeout)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            tls.settimeout(None)  # from here the handler's own timeout applies
            super().finish_request(tls, client_address)
        finally:
            tls.close()


class FakeFalServer:
    """fal's queue on a background thread, over HTTPS by default:

    with FakeFalServer(FalFakeConfig(latency=0.3)) as fal:
        fal.url        # https://127.0.0.1:PORT  (FAL_QUEUE_URL)
        fal.host       # 127.0.0.1:PORT          (fal-client's FAL_QUEUE_RUN_HOST)
        fal.ca_file    # the CA to trust         (SSL_CERT_FILE / REQUESTS_CA_BUNDLE)
    """

    def __init__(
        self,
        config: FalFakeConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = True,
        verbose: bool = False,
    ) -> None:
        self.state = FalState(config or FalFakeConfig())
        self.httpd = _Server((host, port), Handler)
        self.httpd.state = self.state  # type: ignore[attr-defined]
        self.httpd.verbose = verbose  # type: ignore[attr-defined]
        self._folder = Path(tempfile.mkdtemp(prefix="fake-fal-"))
        self.tls: TLSMaterial | None = None
        self.ca_file: Path | None = None
        if tls:
            self.tls = make_tls_material((host, "localhost") if host != "localhost" else (host,))
            self.httpd.ssl_context = self.tls.server_context()
            self.ca_file = self.tls.write_ca(self._folder / "fake-fal-ca.pem")
        self.state.base_url = f"{'https' if tls else 'http'}://{host}:{self.httpd.server_address[1]}"
        self._thread: threading.Thread | None = None
        self.notifier = WebhookNotifier(self.state)

    @property
    def config(self) -> FalFakeConfig:
        return self.state.config

    @property
    def stats(self) -> FalStats:
        return self.state.stats

    @property
    def url(self) -> str:
        """The queue's base URL with its scheme (settings.FAL_QUEUE_URL)."""
        return self.state.base_url

    @property
    def host(self) -> str:
        """host:port, for fal-client's FAL_QUEUE_RUN_HOST (it adds https:// itself)."""
        return self.state.base_url.split("://", 1)[1]

    @property
    def jwks_url(self) -> str:
        return f"{self.state.base_url}/.well-known/jwks.json"

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        return self.state.signing_key

    def sign_webhook(
        self, request_id: str, timestamp: str, body: bytes, *, user_id: str | None = None
    ) -> str:
        return sign_fal_webhook(
            self.state.signing_key, request_id, user_id or self.state.config.user_id, timestamp, body
        )

    def reset(self, config: FalFakeConfig | None = None) -> None:
        """Forget every request and count, and take a fresh configuration (tests share one server)."""
        self.state.reset(config)

    def start(self) -> FakeFalServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="fake-fal", daemon=True)
        self._thread.start()
        self.notifier.start()
        return self

    def stop(self) -> None:
        self.notifier.stop()
        self.httpd.shutdown()
        self.httpd.server_close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> FakeFalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
