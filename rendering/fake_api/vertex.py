"""A strict stand-in for Veo 3.1 on Vertex AI, Google's OAuth token endpoint and GCS object downloads.

It speaks the wire protocol that the official `google-genai` SDK (Vertex mode) and rendering.providers.veo
use, over real HTTPS, and refuses what Google refuses, in Google's error shape:

- `POST /token`: the service-account JWT-bearer grant (RFC 7523) that google-auth sends to the key file's
  `token_uri`. The assertion is verified RS256 against the key pair this stand-in made (`iss` must be its
  service account, `aud` Google's token URI or this endpoint, `exp - iat` at most an hour). A grant whose
  `scope` claim is empty or not a Google scope is answered `400 {"error": "invalid_scope"}`, as Google does;
  a token for other Google scopes is issued but the Vertex calls answer it `403 PERMISSION_DENIED`
  (`ACCESS_TOKEN_SCOPE_INSUFFICIENT`), so only a cloud-platform token renders.
- `POST /{v1|v1beta1}/projects/{p}/locations/{l}/publishers/google/models/{model}:predictLongRunning`
  -> `{"name": ".../operations/{uuid}"}` (the SDK calls v1beta1, the REST reference v1).
- `POST .../models/{model}:fetchPredictOperation {"operationName": ...}` -> `{name, done: false}` until
  `latency` has passed, then `done: true` with `response` (`@type` GenerateVideoResponse,
  `raiMediaFilteredCount`, `videos: [{bytesBase64Encoded | gcsUri, mimeType}]`) or `error`
  (a google.rpc.Status).
- `GET /storage/v1/b/{bucket}/o/{object}?alt=media` (also under `/download/`): the GCS JSON API download of
  objects Veo wrote to `storageUri`, with the same bearer tokens.

What it enforces, and where that comes from (stored copies of the Vertex AI Veo reference,
cloud.google.com/vertex-ai/generative-ai/docs/model-reference/veo-video-generation, the Veo 3.1 model pages
and "Extend a Veo video", read 2026-11; figures marked (3p) come from third-party copies only):

- models: only the GA `veo-3.1-generate-001`, `veo-3.1-fast-generate-001`, `veo-3.1-lite-generate-001`
  (404 NOT_FOUND for anything else, e.g. the retired veo-3.0 and the 3.1 previews);
- body fields: `instances[0]` {prompt, image, lastFrame, video, referenceImages} and `parameters`
  {aspectRatio, compressionQuality, durationSeconds, enhancePrompt, generateAudio, negativePrompt,
  personGeneration, resizeMode, resolution, sampleCount, seed, storageUri}, plus top-level `labels`; any
  other field is a 400 INVALID_ARGUMENT "Unknown name";
- media: exactly one of bytesBase64Encoded / gcsUri, plus mimeType (image/jpeg or image/png for images,
  video/mp4 for video); inline bytes must be valid base64 of a real image;
- durationSeconds 4, 6 or 8 (8 when absent, as Veo 3 does; the docs call it required); 1080p and
  referenceImages only at 8 s; aspectRatio 16:9 or 9:16; resolution 720p or 1080p (default 720p);
  sampleCount 1-4; seed 0..2^32-1;
- referenceImages: at most 3, referenceType "asset" (style images were veo-2.0-exp only), none on lite, and
  not together with a first/last frame (3p: Scenario's Veo 3.1 schema; Google's own pages are silent);
- lastFrame only with an image (the first frame): Veo interpolates between the two;
- extension (`video`): 720p only ("1080p, except for video extension" on the Veo 3.1 model page); the
  stand-in returns the extension as its own clip of durationSeconds (3p: Google appends ~7 s);
- generateAudio defaults to true when absent (the docs call it required for Veo 3, but Google's own Veo 3
  samples omit it and get audio).

Outputs are real H.264 MP4s from rendering.fake_api.content: 1280x720 / 720x1280 at 720p, 1920x1080 /
1080x1920 at 1080p, 24 fps, of the asked length, with an AAC track only when generateAudio is true.

Knobs (`VertexConfig`, changeable between calls): latency, a safety-filter marker word (the operation ends
done with raiMediaFilteredCount and raiMediaFilteredReasons and no videos, as Veo does), 429
RESOURCE_EXHAUSTED on the next N creates (a google.rpc.RetryInfo detail and a Retry-After header only when
asked: the docs promise neither, so clients must cope without), transient 500/503 on the next N API calls,
operations that end with an error, token lifetime. `stats` counts creates per model, fetches, tokens,
downloads and refusals, and keeps every create body so tests can check the image / lastFrame /
referenceImages bytes.

Longer than 400 lines on purpose: one protocol's stand-in (OAuth token endpoint, Vertex routes, strict
validation, operation lifecycle, GCS downloads, knobs and counters), read whole beside Google's reference.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import io
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from rendering.ffmpeg_binary import ffmpeg_exe

from . import content
from .http import JsonHandler
from .tls import make_tls_material

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
RESPONSE_TYPE = "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"

# model id -> how many asset reference images it takes
GA_MODELS: dict[str, int] = {
    "veo-3.1-generate-001": 3,
    "veo-3.1-fast-generate-001": 3,
    "veo-3.1-lite-generate-001": 0,
}
DURATIONS = (4, 6, 8)
FULL_LENGTH_ONLY = 8  # seconds required at 1080p and with reference images
OUTPUT_SIZES = {
    ("720p", "16:9"): "1280x720",
    ("720p", "9:16"): "720x1280",
    ("1080p", "16:9"): "1920x1080",
    ("1080p", "9:16"): "1080x1920",
}
FPS = 24

BODY_FIELDS = frozenset({"instances", "parameters", "labels"})
INSTANCE_FIELDS = frozenset({"prompt", "image", "lastFrame", "video", "referenceImages"})
PARAMETER_FIELDS = frozenset(
    {
        "aspectRatio",
        "compressionQuality",
        "durationSeconds",
        "enhancePrompt",
        "generateAudio",
        "negativePrompt",
        "personGeneration",
        "resizeMode",
        "resolution",
        "sampleCount",
        "seed",
        "storageUri",
    }
)
MEDIA_FIELDS = frozenset({"bytesBase64Encoded", "gcsUri", "mimeType"})
REFERENCE_FIELDS = frozenset({"image", "referenceType"})
IMAGE_MIME_TYPES = ("image/jpeg", "image/png")
VIDEO_MIME_TYPES = ("video/mp4",)
PERSON_GENERATION = ("allow_adult", "dont_allow", "allow_all")
COMPRESSION_QUALITY = ("optimized", "lossless")
RESIZE_MODES = ("pad", "crop")

VERTEX_PATH = re.compile(
    r"^/(?P<version>v1|v1beta1)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/google/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$"
)
OPERATION_NAME = re.compile(
    r"^projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/publishers/google/models/"
    r"(?P<model>[^/]+)/operations/(?P<id>[^/]+)$"
)
# Matched against the raw (still percent-encoded) path: GCS object names carry encoded slashes.
GCS_URI = re.compile(r"^gs://[a-z0-9][a-z0-9._-]{1,221}[a-z0-9](/|$)")
GCS_PATH = re.compile(r"^/(?:download/)?storage/v1/b/(?P<bucket>[^/]+)/o/(?P<object>[^/?]+)$")

RAI_REASON = (
    "Unable to show generated videos. All videos were filtered out because they violated Vertex AI's "
    "usage guidelines. You will not be charged for blocked videos. Try rephrasing the prompt. If you "
    "think this was an error, send feedback. Support codes: 58061214"
)


@dataclass
class VertexConfig:
    latency: float = 0.5  # seconds from create until the operation is done
    safety_word: str = "FORBIDDEN"  # a prompt containing it is filtered (case-insensitive)
    rate_limit_next_creates: int = 0  # the next N creates answer 429 RESOURCE_EXHAUSTED
    retry_delay: float | None = None  # when set: a google.rpc.RetryInfo detail on those 429s
    retry_after_header: float | None = None  # when set: a Retry-After header on those 429s
    fail_next_calls: int = 0  # the next N Vertex / GCS calls answer `fail_status`
    fail_status: int = 503  # 500 INTERNAL or 503 UNAVAILABLE (any 5xx works)
    fail_next_operations: int = 0  # the next N created operations end done with `operation_error`
    operation_error: tuple[int, str] = (13, "Internal error encountered while generating the video.")
    token_lifetime: int = 3599  # seconds, as Google issues them


@dataclass
class VertexStats:
    creates_by_model: Counter = field(default_factory=Counter)
    fetches: int = 0
    tokens_issued: int = 0
    token_refusals: Counter = field(default_factory=Counter)  # by OAuth error code
    downloads: int = 0
    refusals: Counter = field(default_factory=Counter)  # by HTTP status of the Vertex / GCS API
    api_versions: Counter = field(default_factory=Counter)  # "v1" / "v1beta1" of each Vertex call
    create_bodies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def creates(self) -> int:
        return sum(self.creates_by_model.values())


@dataclass
class _Operation:
    name: str
    model: str
    created: float
    size: str
    seconds: int
    audio: bool
    sample_count: int
    storage_uri: str | None
    filtered: bool
    error: tuple[int, str] | None
    published: bool = False  # its outputs were written to GCS (once, as Veo does)


@dataclass
class _Token:
    expires: float
    scopes: frozenset[str]
    revoked: bool = False


@dataclass(frozen=True)
class _StoredObject:
    size: str
    seconds: int
    audio: bool


class ApiError(Exception):
    """A refusal in Google's JSON error shape: {"error": {"code", "message", "status", "details"?}}."""

    def __init__(
        self,
        http_status: int,
        status: str,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.status = status
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.http_status, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def _invalid(message: str, field_path: str | None = None) -> ApiError:
    details = None
    if field_path:
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": field_path, "description": message}],
            }
        ]
    return ApiError(400, "INVALID_ARGUMENT", message, details=details)


def _unknown_field(name: str, where: str) -> ApiError:
    at = f" at '{where}'" if where else ""
    return _invalid(f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.', where)


class _OAuthError(Exception):
    """A refusal from the token endpoint: {"error": code, "error_description": ...} (RFC 6749 5.2)."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- content -----------------------------------------------------------------------------------------

_silent_lock = threading.Lock()
_silent_dir = Path(tempfile.gettempdir()) / "sora-controller-fake-vertex"


def veo_video_bytes(size: str, seconds: int, *, audio: bool) -> bytes:
    """A real MP4 like Veo's: H.264 at 24 fps, with an AAC track only when audio was asked for.

    content.video_bytes always muxes a tone; a silent clip is that one with the audio stream dropped by
    stream copy (cached), so both come from the same renderer."""
    data = content.video_bytes(size, float(seconds), FPS)
    if audio:
        return data
    path = _silent_dir / f"silent-{size}-{seconds}s-{FPS}fps.mp4"
    with _silent_lock:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            source = path.with_name(f".source-{uuid.uuid4().hex}.mp4")
            partial = path.with_name(f".{path.name}.partial")
            source.write_bytes(data)
            try:
                cmd = [
                    ffmpeg_exe(),
                    "-hide_banner",
                    "-nostdin",
                    "-loglevel",
                    "error",
                    "-y",
                    "-i",
                    str(source),
                    "-map",
                    "0:v",
                    "-c",
                    "copy",
                    "-movflags",
                    "+faststart",
                    "-f",
                    "mp4",
                    str(partial),
                ]
                result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
                if result.returncode != 0:
                    raise RuntimeError(f"fake Vertex could not drop the audio track: {result.stderr[-500:]}")
                os.replace(partial, path)
            finally:
                source.unlink(missing_ok=True)
                partial.unlink(missing_ok=True)
    return path.read_bytes()


# --- state -------------------------------------------------------------------------------------------


class _State:
    def __init__(self, config: VertexConfig, project: str, location: str) -> None:
        self.config = config
        self.project = project
        self.location = location
        self.lock = threading.Lock()
        self.stats = VertexStats()
        self.operations: dict[str, _Operation] = {}
        self.tokens: dict[str, _Token] = {}
        self.objects: dict[tuple[str, str], _StoredObject] = {}
        # The service account whose key file tests hand to google-auth.
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = secrets.token_hex(20)
        self.client_email = f"veo-renderer@{project}.iam.gserviceaccount.com"
        self.token_uri = ""  # set once the server knows its address


class _Handler(JsonHandler):
    server_version = "FakeVertexAI/1"
    timeout = 30  # a stalled client cannot hold a handler thread for ever
    json_content_type = "application/json; charset=UTF-8"

    @property
    def state(self) -> _State:
        return self.server.state  # type: ignore[attr-defined]

    def setup(self) -> None:
        # TLS handshake here, in the handler's own thread, so one slow client never blocks accept().
        context = getattr(self.server, "ssl_context", None)
        if context is not None:
            self.request.settimeout(self.timeout)
            self.request = context.wrap_socket(self.request, server_side=True)
        super().setup()

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        if getattr(self.server, "ssl_context", None) is not None:
            with contextlib.suppress(OSError):
                self.request.close()

    # --- plumbing -----------------------------------------------------------------------------------

    def _refuse(self, error: ApiError) -> None:
        with self.state.lock:
            self.state.stats.refusals[error.http_status] += 1
        self._send(error.http_status, error.body(), headers=error.headers)

    def _authorise(self) -> None:
        """Raise 401 unless the bearer token is one this stand-in issued, unexpired, unrevoked; 403 unless
        it carries the cloud-platform scope."""
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        with self.state.lock:
            record = self.state.tokens.get(token)
        if record is None or record.revoked or record.expires <= time.time():
            raise ApiError(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                "or other valid authentication credential. See "
                "https://developers.google.com/identity/sign-in/web/devconsole-project.",
                headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
        if CLOUD_PLATFORM_SCOPE not in record.scopes:
            raise ApiError(
                403,
                "PERMISSION_DENIED",
                "Request had insufficient authentication scopes.",
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                        "domain": "googleapis.com",
                    }
                ],
                headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
            )

    def _maybe_fail(self) -> None:
        config = self.state.config
        with self.state.lock:
            if config.fail_next_calls <= 0:
                return
            config.fail_next_calls -= 1
            status = config.fail_status
        if status == 503:
            raise ApiError(503, "UNAVAILABLE", "The service is currently unavailable.")
        if status == 504:
            raise ApiError(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete.")
        raise ApiError(status, "INTERNAL", "Internal error encountered.")

    # --- verbs --------------------------------------------------------------------------------------

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        body = self._body()
        if path == "/token":
            return self._token(body)
        match = VERTEX_PATH.match(path)
        try:
            if match is None:
                raise ApiError(404, "NOT_FOUND", f"The requested URL {path} was not found on this server.")
            with self.state.lock:
                self.state.stats.api_versions[match["version"]] += 1
            self._authorise()
            self._maybe_fail()
            resource = self._resource(match)
            method = match["method"]
            if method == "predictLongRunning":
                return self._send(200, self._create(match["model"], resource, body))
            if method == "fetchPredictOperation":
                return self._send(200, self._fetch(resource, body))
            raise ApiError(404, "NOT_FOUND", f"Method {method} is not served for publisher models here.")
        except ApiError as error:
            return self._refuse(error)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        match = GCS_PATH.match(parts.path)
        try:
            if match is None:
                raise ApiError(
                    404, "NOT_FOUND", f"The requested URL {parts.path} was not found on this server."
                )
            self._authorise()
            self._maybe_fail()
            return self._gcs_object(unquote(match["bucket"]), unquote(match["object"]), parse_qs(parts.query))
        except ApiError as error:
            return self._refuse(error)

    # --- OAuth --------------------------------------------------------------------------------------

    def _token(self, body: bytes) -> None:
        state = self.state
        try:
            if not self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                raise _OAuthError("invalid_request", "Request must be application/x-www-form-urlencoded.")
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
            grant = form.get("grant_type", "")
            if grant != JWT_BEARER_GRANT:
                raise _OAuthError("unsupported_grant_type", f"Invalid grant_type: {grant}")
            if not form.get("assertion"):
                raise _OAuthError("invalid_request", "Missing required parameter: assertion")
            claims = self._verify_assertion(form["assertion"])
            scopes = frozenset(str(claims.get("scope") or "").split())
            # Google refuses a grant without a valid scope outright; it does not issue an unusable token.
            if not scopes or not all(s.startswith("https://www.googleapis.com/auth/") for s in scopes):
                raise _OAuthError("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        except _OAuthError as error:
            with state.lock:
                state.stats.token_refusals[error.code] += 1
            return self._send(400, {"error": error.code, "error_description": error.description})
        token = f"ya29.fake-{secrets.token_urlsafe(48)}"
        lifetime = state.config.token_lifetime
        with state.lock:
            state.tokens[token] = _Token(expires=time.time() + lifetime, scopes=scopes)
            state.stats.tokens_issued += 1
        return self._send(200, {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"})

    def _verify_assertion(self, assertion: str) -> dict[str, Any]:
        state = self.state
        try:
            header_b64, claims_b64, signature_b64 = assertion.split(".")
            header = json.loads(_b64url_decode(header_b64))
            claims = json.loads(_b64url_decode(claims_b64))
            signature = _b64url_decode(signature_b64)
        except (ValueError, binascii.Error):
            raise _OAuthError("invalid_grant", "Invalid JWT: could not decode the assertion.") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise _OAuthError("invalid_grant", "Invalid JWT: could not decode the assertion.")
        if header.get("alg") != "RS256":
            raise _OAuthError("invalid_grant", "Invalid JWT: the signing algorithm must be RS256.")
        if header.get("kid") not in (None, state.key_id):
            raise _OAuthError("invalid_grant", "Invalid JWT Signature.")
        try:
            state.private_key.public_key().verify(
                signature, f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            raise _OAuthError("invalid_grant", "Invalid JWT Signature.") from None
        if claims.get("iss") != state.client_email:
            raise _OAuthError("invalid_grant", "Invalid grant: account not found")
        # google-auth always puts Google's token URI in `aud`, whatever token_uri the key file names.
        if claims.get("aud") not in (GOOGLE_TOKEN_URI, state.token_uri):
            raise _OAuthError(
                "invalid_grant",
                f"Invalid JWT: Failed audience check. The right audience is {GOOGLE_TOKEN_URI}",
            )
        now = time.time()
        try:
            issued, expires = float(claims["iat"]), float(claims["exp"])
        except (KeyError, TypeError, ValueError):
            raise _OAuthError("invalid_grant", "Invalid JWT: iat and exp are required.") from None
        if expires <= now or issued > now + 300 or expires - issued > 3600:
            raise _OAuthError(
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
                "Check your iat and exp values in the JWT claim.",
            )
        return claims

    # --- Vertex -------------------------------------------------------------------------------------

    def _resource(self, match: re.Match[str]) -> str:
        state = self.state
        project, location, model = match["project"], match["location"], match["model"]
        resource = f"projects/{project}/locations/{location}/publishers/google/models/{model}"
        if project != state.project or location != state.location:
            raise ApiError(
                403,
                "PERMISSION_DENIED",
                f"Permission 'aiplatform.endpoints.predict' denied on resource "
                f"'//aiplatform.googleapis.com/{resource}' (or it may not exist).",
            )
        if model not in GA_MODELS:
            raise ApiError(
                404,
                "NOT_FOUND",
                f"Publisher Model `{resource}` was not found or your project does not have access to it. "
                "Please ensure you are using a valid model version.",
            )
        return resource

    def _create(self, model: str, resource: str, raw: bytes) -> dict[str, Any]:
        state = self.state
        config = state.config
        with state.lock:
            limited = config.rate_limit_next_creates > 0
            if limited:
                config.rate_limit_next_creates -= 1
        if limited:
            base = model.removesuffix("-001")
            details = []
            headers = {}
            if config.retry_delay is not None:
                details.append(
                    {
                        "@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": f"{config.retry_delay:g}s",
                    }
                )
            if config.retry_after_header is not None:
                headers["Retry-After"] = f"{config.retry_after_header:g}"
            raise ApiError(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model with "
                f"base model: {base}. Please submit a quota increase request. "
                "https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai.",
                details=details,
                headers=headers,
            )
        try:
            body = json.loads(raw or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _invalid(f"Invalid JSON payload received. {exc}") from None
        if not isinstance(body, dict):
            raise _invalid("Invalid JSON payload received. Expected an object.")
        spec = self._validate(model, body)
        with state.lock:
            error = None
            if config.fail_next_operations > 0:
                config.fail_next_operations -= 1
                error = config.operation_error
            prompt = str(spec["prompt"] or "")
            name = f"{resource}/operations/{uuid.uuid4()}"
            state.operations[name] = _Operation(
                name=name,
                model=model,
                created=time.time(),
                size=spec["size"],
                seconds=spec["seconds"],
                audio=spec["audio"],
                sample_count=spec["sample_count"],
                storage_uri=spec["storage_uri"],
                filtered=bool(config.safety_word) and config.safety_word.lower() in prompt.lower(),
                error=error,
            )
            state.stats.creates_by_model[model] += 1
            state.stats.create_bodies.append(copy.deepcopy(body))
        return {"name": name}

    def _validate(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        for key in body:
            if key not in BODY_FIELDS:
                raise _unknown_field(key, "")
        instances = body.get("instances")
        if not isinstance(instances, list) or not instances:
            raise _invalid("instances must be a non-empty list.", "instances")
        if len(instances) != 1:
            raise _invalid("Only one instance per request is supported for video generation.", "instances")
        instance = instances[0]
        if not isinstance(instance, dict):
            raise _invalid("instances[0] must be an object.", "instances[0]")
        for key in instance:
            if key not in INSTANCE_FIELDS:
                raise _unknown_field(key, "instances[0]")
        parameters = body.get("parameters", {})
        if not isinstance(parameters, dict):
            raise _invalid("parameters must be an object.", "parameters")
        for key in parameters:
            if key not in PARAMETER_FIELDS:
                raise _unknown_field(key, "parameters")
        labels = body.get("labels", {})
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise _invalid("labels must map strings to strings.", "labels")

        prompt = instance.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise _invalid("prompt must be a string.", "instances[0].prompt")
        image = instance.get("image")
        last_frame = instance.get("lastFrame")
        video = instance.get("video")
        references = instance.get("referenceImages")
        if image is not None:
            self._media(image, "instances[0].image", IMAGE_MIME_TYPES)
        if last_frame is not None:
            self._media(last_frame, "instances[0].lastFrame", IMAGE_MIME_TYPES)
        if video is not None:
            self._media(video, "instances[0].video", VIDEO_MIME_TYPES)
        if not (prompt or "").strip() and image is None and video is None:
            raise _invalid("A text prompt is required for text-to-video generation.", "instances[0].prompt")
        if last_frame is not None and image is None:
            raise _invalid("lastFrame requires an image (the first frame) as well.", "instances[0].lastFrame")

        duration = parameters.get("durationSeconds", FULL_LENGTH_ONLY)
        if isinstance(duration, bool) or not isinstance(duration, int | float) or duration != int(duration):
            raise _invalid(
                f"durationSeconds must be an integer; got {json.dumps(duration)}.",
                "parameters.durationSeconds",
            )
        seconds = int(duration)
        if seconds not in DURATIONS:
            raise _invalid(
                f"Unsupported durationSeconds {seconds} for model {model}. Supported values: 4, 6, 8.",
                "parameters.durationSeconds",
            )
        resolution = parameters.get("resolution", "720p")
        if resolution not in ("720p", "1080p"):
            raise _invalid(
                f"Unsupported resolution {json.dumps(resolution)}. Supported values: 720p, 1080p.",
                "parameters.resolution",
            )
        aspect = parameters.get("aspectRatio", "16:9")
        if aspect not in ("16:9", "9:16"):
            raise _invalid(
                f"Unsupported aspectRatio {json.dumps(aspect)}. Supported values: 16:9, 9:16.",
                "parameters.aspectRatio",
            )
        if resolution == "1080p" and seconds != FULL_LENGTH_ONLY:
            raise _invalid(
                f"1080p videos must be {FULL_LENGTH_ONLY} seconds long; got durationSeconds {seconds}.",
                "parameters.durationSeconds",
            )

        if references is not None:
            slots = GA_MODELS[model]
            if not isinstance(references, list) or not references:
                raise _invalid("referenceImages must be a non-empty list.", "instances[0].referenceImages")
            if slots == 0:
                raise _invalid(
                    f"referenceImages is not supported by {model}.", "instances[0].referenceImages"
                )
            if len(references) > slots:
                raise _invalid(
                    f"At most {slots} asset reference images are supported; got {len(references)}.",
                    "instances[0].referenceImages",
                )
            if image is not None or last_frame is not None or video is not None:
                raise _invalid(
                    "referenceImages cannot be combined with image, lastFrame or video.",
                    "instances[0].referenceImages",
                )
            if seconds != FULL_LENGTH_ONLY:
                raise _invalid(
                    f"Reference image to video only supports {FULL_LENGTH_ONLY} second videos; "
                    f"got durationSeconds {seconds}.",
                    "parameters.durationSeconds",
                )
            for index, reference in enumerate(references):
                where = f"instances[0].referenceImages[{index}]"
                if not isinstance(reference, dict):
                    raise _invalid("each reference image must be an object.", where)
                for key in reference:
                    if key not in REFERENCE_FIELDS:
                        raise _unknown_field(key, where)
                if "image" not in reference:
                    raise _invalid("image is required.", f"{where}.image")
                self._media(reference["image"], f"{where}.image", IMAGE_MIME_TYPES)
                kind = str(reference.get("referenceType") or "")
                if kind.lower() != "asset":
                    raise _invalid(
                        f"Unsupported referenceType {json.dumps(kind)} for {model}; only asset is supported.",
                        f"{where}.referenceType",
                    )
        if video is not None:
            if image is not None or last_frame is not None:
                raise _invalid("video cannot be combined with image or lastFrame.", "instances[0].video")
            if resolution != "720p":
                raise _invalid("Video extension only supports 720p.", "parameters.resolution")

        sample_count = parameters.get("sampleCount", 1)
        if isinstance(sample_count, bool) or not isinstance(sample_count, int) or not 1 <= sample_count <= 4:
            raise _invalid("sampleCount must be an integer from 1 to 4.", "parameters.sampleCount")
        seed = parameters.get("seed")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 4294967295
        ):
            raise _invalid("seed must be an integer from 0 to 4294967295.", "parameters.seed")
        audio = parameters.get("generateAudio", True)
        if not isinstance(audio, bool):
            raise _invalid("generateAudio must be a boolean.", "parameters.generateAudio")
        enhance = parameters.get("enhancePrompt", True)
        if not isinstance(enhance, bool):
            raise _invalid("enhancePrompt must be a boolean.", "parameters.enhancePrompt")
        negative = parameters.get("negativePrompt", "")
        if not isinstance(negative, str):
            raise _invalid("negativePrompt must be a string.", "parameters.negativePrompt")
        for key, allowed in (
            ("personGeneration", PERSON_GENERATION),
            ("compressionQuality", COMPRESSION_QUALITY),
            ("resizeMode", RESIZE_MODES),
        ):
            if key in parameters and parameters[key] not in allowed:
                raise _invalid(
                    f"Unsupported {key} {json.dumps(parameters[key])}. "
                    f"Supported values: {', '.join(allowed)}.",
                    f"parameters.{key}",
                )
        storage_uri = parameters.get("storageUri")
        if storage_uri is not None and not (isinstance(storage_uri, str) and GCS_URI.match(storage_uri)):
            raise _invalid(
                "storageUri must be a Cloud Storage URI like gs://bucket/prefix; "
                f"got {json.dumps(storage_uri)}.",
                "parameters.storageUri",
            )
        return {
            "prompt": prompt,
            "size": OUTPUT_SIZES[(resolution, aspect)],
            "seconds": seconds,
            "audio": audio,
            "sample_count": sample_count,
            "storage_uri": storage_uri,
        }

    def _media(self, media: Any, where: str, mime_types: tuple[str, ...]) -> None:
        if not isinstance(media, dict):
            raise _invalid("must be an object with bytesBase64Encoded or gcsUri, and mimeType.", where)
        for key in media:
            if key not in MEDIA_FIELDS:
                raise _unknown_field(key, where)
        inline, uri = media.get("bytesBase64Encoded"), media.get("gcsUri")
        if (inline is None) == (uri is None):
            raise _invalid("Exactly one of bytesBase64Encoded or gcsUri must be set.", where)
        mime = media.get("mimeType")
        if mime not in mime_types:
            raise _invalid(
                f"Unsupported mimeType {json.dumps(mime)}. Supported values: {', '.join(mime_types)}.",
                f"{where}.mimeType",
            )
        if uri is not None:
            bucket, _, name = str(uri).removeprefix("gs://").partition("/")
            if not str(uri).startswith("gs://") or (bucket, name) not in self.state.objects:
                raise _invalid(f"Cannot read {uri}: the object does not exist or is not readable.", where)
            return
        if not isinstance(inline, str):
            raise _invalid("bytesBase64Encoded must be a base64 string.", f"{where}.bytesBase64Encoded")
        try:
            data = base64.b64decode(inline, validate=True)
        except (binascii.Error, ValueError):
            raise _invalid("bytesBase64Encoded is not valid base64.", f"{where}.bytesBase64Encoded") from None
        if mime.startswith("image/"):
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(io.BytesIO(data)) as decoded:
                    decoded.verify()
            except (UnidentifiedImageError, OSError, SyntaxError):
                raise _invalid("The image could not be decoded.", f"{where}.bytesBase64Encoded") from None
        elif data[4:8] != b"ftyp":
            raise _invalid("The video could not be decoded as MP4.", f"{where}.bytesBase64Encoded")

    def _fetch(self, resource: str, raw: bytes) -> dict[str, Any]:
        state = self.state
        try:
            body = json.loads(raw or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _invalid(f"Invalid JSON payload received. {exc}") from None
        if not isinstance(body, dict):
            raise _invalid("Invalid JSON payload received. Expected an object.")
        for key in body:
            if key != "operationName":
                raise _unknown_field(key, "")
        name = body.get("operationName")
        if not isinstance(name, str) or not OPERATION_NAME.match(name):
            raise _invalid(f"Invalid operationName: {json.dumps(name)}.", "operationName")
        if name.rpartition("/operations/")[0] != resource:
            raise _invalid(f"Operation {name} does not belong to {resource}.", "operationName")
        with state.lock:
            operation = state.operations.get(name)
            if operation is not None:
                state.stats.fetches += 1
        if operation is None:
            raise ApiError(404, "NOT_FOUND", f"Operation {name} not found.")
        if time.time() - operation.created < max(state.config.latency, 0.0):
            return {"name": name, "done": False}
        if operation.error is not None:
            code, message = operation.error
            return {"name": name, "done": True, "error": {"code": code, "message": message}}
        response: dict[str, Any] = {"@type": RESPONSE_TYPE}
        if operation.filtered:
            response["raiMediaFilteredCount"] = operation.sample_count
            response["raiMediaFilteredReasons"] = [RAI_REASON]
            return {"name": name, "done": True, "response": response}
        videos = []
        for index in range(operation.sample_count):
            if operation.storage_uri:
                bucket, _, prefix = operation.storage_uri.removeprefix("gs://").partition("/")
                object_name = "/".join(
                    p for p in (prefix.strip("/"), name.rpartition("/")[2], f"sample_{index}.mp4") if p
                )
                with state.lock:
                    if not operation.published:
                        state.objects[(bucket, object_name)] = _StoredObject(
                            operation.size, operation.seconds, operation.audio
                        )
                videos.append({"gcsUri": f"gs://{bucket}/{object_name}", "mimeType": "video/mp4"})
            else:
                data = veo_video_bytes(operation.size, operation.seconds, audio=operation.audio)
                videos.append(
                    {"bytesBase64Encoded": base64.b64encode(data).decode(), "mimeType": "video/mp4"}
                )
        operation.published = True
        response["raiMediaFilteredCount"] = 0
        response["videos"] = videos
        return {"name": name, "done": True, "response": response}

    # --- GCS ----------------------------------------------------------------------------------------

    def _gcs_object(self, bucket: str, name: str, query: dict[str, list[str]]) -> None:
        state = self.state
        with state.lock:
            stored = state.objects.get((bucket, name))
        if stored is None:
            raise ApiError(404, "NOT_FOUND", f"No such object: {bucket}/{name}")
        data = veo_video_bytes(stored.size, stored.seconds, audio=stored.audio)
        if (query.get("alt") or [""])[0] != "media":
            return self._send(
                200,
                {
                    "kind": "storage#object",
                    "bucket": bucket,
                    "name": name,
                    "contentType": "video/mp4",
                    "size": str(len(data)),
                },
            )
        with state.lock:
            state.stats.downloads += 1
        return self._send(200, raw=data, content_type="video/mp4")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that drops its connection or fails the TLS handshake is the client's business; a
        # traceback on stderr for each would bury the test output.
        if getattr(self, "verbose", False):
            super().handle_error(request, client_address)


class FakeVertexServer:
    """Runs the stand-in on a background thread.

    `with FakeVertexServer() as vertex:` then point clients at `vertex.url` (Vertex base URL, token
    endpoint and GCS base URL all at once), trust `vertex.ca_file`, and load the service account from
    `vertex.key_file`.
    """

    def __init__(
        self,
        config: VertexConfig | None = None,
        *,
        project: str = "veo-test-project",
        location: str = "us-central1",
        tls: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
    ) -> None:
        self.state = _State(config or VertexConfig(), project, location)
        self._directory = Path(tempfile.mkdtemp(prefix="fake-vertex-"))
        self.httpd = _Server((host, port), _Handler)
        self.httpd.state = self.state  # type: ignore[attr-defined]
        self.httpd.verbose = verbose  # type: ignore[attr-defined]
        self._ca_file: Path | None = None
        self.httpd.ssl_context = None  # type: ignore[attr-defined]
        if tls:
            # The same throwaway CA helper as the fal stand-in: clients trust it through SSL_CERT_FILE
            # and REQUESTS_CA_BUNDLE, nothing switches verification off.
            material = make_tls_material()
            self._ca_file = material.write_ca(self._directory / "ca.pem")
            self.httpd.ssl_context = material.server_context()  # type: ignore[attr-defined]
        self.state.token_uri = f"{self.url}/token"
        self._thread: threading.Thread | None = None
        self.key_file = self.write_service_account_file(self._directory / "service-account.json")

    # --- what clients need --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"{'https' if self._ca_file else 'http'}://{host}:{port}"

    @property
    def token_uri(self) -> str:
        return self.state.token_uri

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate (PEM) that clients must trust; None when serving plain http."""
        return self._ca_file

    @property
    def project(self) -> str:
        return self.state.project

    @property
    def location(self) -> str:
        return self.state.location

    @property
    def service_account_email(self) -> str:
        return self.state.client_email

    def service_account_info(self, *, token_uri: str | None = None) -> dict[str, str]:
        """A service-account key as Google's console downloads it, with token_uri pointing here."""
        pem = self.state.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        email = self.state.client_email
        return {
            "type": "service_account",
            "project_id": self.state.project,
            "private_key_id": self.state.key_id,
            "private_key": pem,
            "client_email": email,
            "client_id": str(int(self.state.key_id[:15], 16)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri or self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{email}",
            "universe_domain": "googleapis.com",
        }

    def write_service_account_file(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.service_account_info(), indent=2))
        path.chmod(0o600)
        return path

    def client_env(self) -> dict[str, str]:
        """Environment that makes requests (REQUESTS_CA_BUNDLE) and httpx / the SDK (SSL_CERT_FILE) trust
        this stand-in's certificate."""
        if self._ca_file is None:
            return {}
        return {"SSL_CERT_FILE": str(self._ca_file), "REQUESTS_CA_BUNDLE": str(self._ca_file)}

    # --- knobs and records --------------------------------------------------------------------------

    @property
    def config(self) -> VertexConfig:
        return self.state.config

    @property
    def stats(self) -> VertexStats:
        return self.state.stats

    def operation_names(self) -> list[str]:
        with self.state.lock:
            return list(self.state.operations)

    def revoke_tokens(self) -> None:
        """Make every token issued so far invalid (as a rotated key or a revoked grant would)."""
        with self.state.lock:
            for token in self.state.tokens.values():
                token.revoked = True

    def delete_objects(self) -> None:
        """Delete every GCS object Veo wrote (a bucket lifecycle rule, or someone tidying up)."""
        with self.state.lock:
            self.state.objects.clear()

    def finish_all(self) -> None:
        """Mark every operation as done now (tests that do not want to wait out the latency)."""
        with self.state.lock:
            for operation in self.state.operations.values():
                operation.created = 0.0

    def reset(self, config: VertexConfig | None = None) -> None:
        with self.state.lock:
            self.state.operations.clear()
            self.state.objects.clear()
            self.state.stats = VertexStats()
            if config is not None:
                self.state.config = config

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> FakeVertexServer:
        # A short poll interval: shutdown() waits for it, and tests start and stop many stand-ins.
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-vertex", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        shutil.rmtree(self._directory, ignore_errors=True)

    def __enter__(self) -> FakeVertexServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
