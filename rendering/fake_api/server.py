"""The fake OpenAI Videos API server.

Speaks the protocol that rendering.providers.sora and the official `openai` SDK use, with knobs that
real servers only show on a bad day: latency and progress steps, random failures, a moderation block
for a marker word, 429 storms with retry-after, downloads that expire, and the `input_reference`
size check. It counts every call (`GET /_fake/stats`) so tests can prove, for example, that each
segment was created exactly once. `POST /_fake/config` changes the knobs at run time.

Given `webhook_url` and `webhook_secret` (a `whsec_...` Standard Webhooks secret), it also delivers a
signed `video.completed` / `video.failed` event for every video once it finishes, as OpenAI does.

Longer than 400 lines on purpose: it is one protocol's stand-in (routes, validation, lifecycle, knobs and
counters) and reads best whole, beside the protocol's documentation.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import io
import json
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from typing import Any
from urllib import error as urlerror
from urllib import request as urlrequest
from urllib.parse import parse_qs, urlparse

from standardwebhooks.webhooks import Webhook

from . import content
from .http import JsonHandler, Ticker

SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")


@dataclass
class FakeConfig:
    api_key: str = ""  # empty: any bearer token is accepted
    models: tuple[str, ...] = ("sora-2", "sora-2-pro")
    allowed_seconds: tuple[str, ...] = ("4", "8", "12")
    latency: float = 1.0  # seconds from create to completed
    progress_steps: int = 4  # how many distinct progress values appear while in progress
    poll_after_ms: int | None = 200  # sent as openai-poll-after-ms on retrieve (None: not sent)
    failure_rate: float = 0.0  # share of videos that end failed with a transient-looking error
    moderation_word: str = "FORBIDDEN"
    rate_limit_burst: int = 0  # the next N create requests are answered 429
    server_errors_next: int = 0  # the next N API requests are answered 500 (a gateway's bad minute)
    rate_limit_every: int = 0  # and/or every Nth create request is answered 429
    retry_after: float = 0.2  # seconds, sent as retry-after-ms and retry-after
    expire_after: float = 3600.0  # seconds after completion that content stays downloadable
    expire_next_downloads: int = 0  # the next N content requests answer 404 as if expired
    max_concurrent: int = 0  # 0: unlimited; else creates beyond it get 429 (like a real quota)
    fps: int = 30
    seed: int = 1234
    # Where to POST signed events when a video finishes (empty: no webhooks), and the secret to sign
    # them with ("whsec_<base64>").
    webhook_url: str = ""
    webhook_secret: str = ""
    webhook_timeout: float = 5.0


@dataclass
class Video:
    id: str
    model: str
    prompt: str
    seconds: str
    size: str
    created: float
    fail_code: str = ""
    fail_message: str = ""
    remixed_from: str | None = None
    reference_sha256: str | None = None
    deleted: bool = False
    downloads: int = 0
    notified: bool = False  # its webhook event was sent
    # When (time.time()) a retrieve first answered a finished state, and the first download: what a
    # benchmark needs to tell how late a client saw the clip after it was ready.
    seen_done_at: float | None = None
    downloaded_at: float | None = None

    def state(self, config: FakeConfig, now: float) -> tuple[str, int, float | None]:
        """(status, progress, completed_at) by the time elapsed since creation."""
        elapsed = now - self.created
        latency = max(config.latency, 0.0)
        if elapsed >= latency:
            return ("failed" if self.fail_code else "completed"), 100, self.created + latency
        if elapsed < latency * 0.1:
            return "queued", 0, None
        steps = max(1, config.progress_steps)
        fraction = elapsed / latency if latency else 1.0
        progress = int(min(99, (int(fraction * steps) / steps) * 100))
        return "in_progress", progress, None


@dataclass
class Stats:
    creates: int = 0
    creates_by_prompt: Counter = field(default_factory=Counter)
    idempotent_replays: int = 0
    rejected_429: int = 0
    rejected_400: int = 0
    server_errors: int = 0
    polls: int = 0
    downloads: int = 0
    expired_downloads: int = 0
    remixes: int = 0
    deletes: int = 0
    max_in_flight: int = 0
    webhooks_sent: int = 0
    webhook_failures: int = 0
    webhook_statuses: list[int] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["creates_by_prompt"] = dict(self.creates_by_prompt)
        return data


class FakeState:
    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.videos: dict[str, Video] = {}
        self.idempotency: dict[str, str] = {}
        self.stats = Stats()
        self.create_counter = 0
        self.random = random.Random(config.seed)

    def in_flight(self, now: float) -> int:
        return sum(
            1
            for v in self.videos.values()
            if not v.deleted and v.state(self.config, now)[0] in {"queued", "in_progress"}
        )


def error_body(
    message: str, *, code: str | None = None, type_: str = "invalid_request_error", param: str | None = None
):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class Handler(JsonHandler):
    server_version = "FakeVideoAPI/1"

    @property
    def state(self) -> FakeState:
        return self.server.state  # type: ignore[attr-defined]

    # --- plumbing -----------------------------------------------------------------------------------

    def _authorised(self) -> bool:
        """True when the request may proceed: a known key, and no injected server error to answer."""
        auth = self.headers.get("Authorization", "")
        key = self.state.config.api_key
        if not auth.startswith("Bearer ") or (key and auth != f"Bearer {key}"):
            self._send(401, error_body("Incorrect API key provided.", code="invalid_api_key"))
            return False
        with self.state.lock:
            failing = self.state.config.server_errors_next > 0
            if failing:
                self.state.config.server_errors_next -= 1
                self.state.stats.server_errors += 1
        if failing:
            self._send(
                500, error_body("The server had an error while processing your request.", code="server_error")
            )
            return False
        return True

    def _route(self) -> tuple[list[str], dict[str, list[str]]]:
        parsed = urlparse(self.path)
        parts = [p for p in parsed.path.split("/") if p]
        if parts and parts[0] == "v1":
            parts = parts[1:]
        return parts, parse_qs(parsed.query)

    def _video_json(self, video: Video) -> dict[str, Any]:
        config = self.state.config
        status, progress, completed_at = video.state(config, time.time())
        error = {"code": video.fail_code, "message": video.fail_message} if status == "failed" else None
        return {
            "id": video.id,
            "object": "video",
            "model": video.model,
            "status": status,
            "progress": progress,
            "created_at": int(video.created),
            "completed_at": int(completed_at) if completed_at else None,
            "expires_at": int(completed_at + config.expire_after)
            if completed_at and status == "completed"
            else None,
            "prompt": video.prompt,
            "seconds": video.seconds,
            "size": video.size,
            "quality": "standard",
            "remixed_from_video_id": video.remixed_from,
            "error": error,
            "x_fake_unknown_field": "clients must ignore fields they do not know",
        }

    # --- verbs --------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        parts, query = self._route()
        if parts[:1] == ["_fake"]:
            return self._fake_admin(parts, None)
        if not self._authorised():
            return None
        if parts == ["videos"]:
            with self.state.lock:
                data = [self._video_json(v) for v in self.state.videos.values() if not v.deleted]
            return self._send(200, {"object": "list", "data": data, "has_more": False})
        if len(parts) == 2 and parts[0] == "videos":
            video = self._find(parts[1])
            if video is None:
                return None
            body = self._video_json(video)
            with self.state.lock:
                self.state.stats.polls += 1
                if body["status"] in {"completed", "failed"} and video.seen_done_at is None:
                    video.seen_done_at = time.time()
            hint = self.state.config.poll_after_ms
            return self._send(200, body, headers={} if hint is None else {"openai-poll-after-ms": str(hint)})
        if len(parts) == 3 and parts[0] == "videos" and parts[2] == "content":
            return self._content(parts[1], (query.get("variant") or ["video"])[0])
        return self._send(404, error_body(f"Unknown path {self.path}", code="not_found"))

    def do_DELETE(self) -> None:
        parts, _ = self._route()
        if not self._authorised():
            return None
        if len(parts) == 2 and parts[0] == "videos":
            video = self._find(parts[1])
            if video is None:
                return None
            with self.state.lock:
                video.deleted = True
                self.state.stats.deletes += 1
            return self._send(200, {"id": video.id, "object": "video.deleted", "deleted": True})
        return self._send(404, error_body("not found", code="not_found"))

    def do_POST(self) -> None:
        parts, _ = self._route()
        body = self._body()
        if parts[:1] == ["_fake"]:
            return self._fake_admin(parts, body)
        if not self._authorised():
            return None
        if parts == ["videos"]:
            return self._create(body, remix_of=None)
        if len(parts) == 3 and parts[0] == "videos" and parts[2] == "remix":
            source = self._find(parts[1])
            if source is None:
                return None
            return self._create(body, remix_of=source)
        return self._send(404, error_body("not found", code="not_found"))

    # --- behaviour ----------------------------------------------------------------------------------

    def _find(self, video_id: str) -> Video | None:
        with self.state.lock:
            video = self.state.videos.get(video_id)
        if video is None or video.deleted:
            self._send(
                404,
                error_body(
                    f"Video with id '{video_id}' not found.", code="video_not_found", param="video_id"
                ),
            )
            return None
        return video

    def _fields(self, body: bytes) -> tuple[dict[str, str], bytes | None]:
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {ctype}\r\n\r\n".encode() + body
            )
            fields: dict[str, str] = {}
            image: bytes | None = None
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True) or b""
                if name == "input_reference":
                    image = payload
                elif name:
                    fields[name] = payload.decode("utf-8")
            return fields, image
        if not body:
            return {}, None
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("body must be a JSON object")
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}, None

    def _reject(self, message: str, param: str | None = None, code: str | None = "invalid_value") -> None:
        with self.state.lock:
            self.state.stats.rejected_400 += 1
        self._send(400, error_body(message, code=code, param=param))

    def _create(self, body: bytes, *, remix_of: Video | None) -> None:
        state = self.state
        config = state.config
        try:
            fields, image = self._fields(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return self._reject(
                f"We could not parse the JSON body of your request: {exc}", code="invalid_json"
            )
        key = self.headers.get("Idempotency-Key", "")
        now = time.time()
        with state.lock:
            if key and key in state.idempotency:
                state.stats.idempotent_replays += 1
                video = state.videos[state.idempotency[key]]
                return self._send(200, self._video_json(video))
            state.create_counter += 1
            limited = config.rate_limit_burst > 0 or (
                config.rate_limit_every and state.create_counter % config.rate_limit_every == 0
            )
            if config.rate_limit_burst > 0:
                config.rate_limit_burst -= 1
            if not limited and config.max_concurrent and state.in_flight(now) >= config.max_concurrent:
                limited = True
            if limited:
                state.stats.rejected_429 += 1
                retry = config.retry_after
                return self._send(
                    429,
                    error_body(
                        "Rate limit reached for videos. Please try again later.",
                        code="rate_limit_exceeded",
                        type_="requests",
                    ),
                    headers={
                        "retry-after-ms": str(int(retry * 1000)),
                        "retry-after": f"{max(1, round(retry))}",
                    },
                )
        prompt = fields.get("prompt", "")
        model = fields.get("model") or (remix_of.model if remix_of else "sora-2")
        seconds = fields.get("seconds") or (remix_of.seconds if remix_of else "4")
        size = fields.get("size") or (remix_of.size if remix_of else "720x1280")
        if not prompt.strip():
            return self._reject(
                "Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter"
            )
        if model not in config.models:
            return self._reject(
                f"Invalid value: '{model}'. Supported values are: {', '.join(config.models)}.", "model"
            )
        if seconds not in config.allowed_seconds:
            return self._reject(
                f"Invalid value: '{seconds}'. Supported values are: {', '.join(config.allowed_seconds)}.",
                "seconds",
            )
        if size not in SIZES:
            return self._reject(f"Invalid value: '{size}'. Supported values are: {', '.join(SIZES)}.", "size")
        reference_sha = None
        if image is not None:
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(io.BytesIO(image)) as decoded:
                    got = f"{decoded.width}x{decoded.height}"
            except (UnidentifiedImageError, OSError):
                return self._reject("input_reference is not a supported image.", "input_reference")
            if got != size:
                return self._reject(
                    f"Inpaint image must match the requested width and height ({size}); got {got}.",
                    "input_reference",
                    "invalid_image_size",
                )
            reference_sha = hashlib.sha256(image).hexdigest()
        with state.lock:
            fail_code = fail_message = ""
            if config.moderation_word and config.moderation_word.lower() in prompt.lower():
                fail_code, fail_message = (
                    "moderation_blocked",
                    "Your request was blocked by our moderation system.",
                )
            elif config.failure_rate and state.random.random() < config.failure_rate:
                fail_code, fail_message = "internal_error", "Video generation failed. Please try again."
            video = Video(
                id=f"video_{uuid.uuid4().hex}",
                model=model,
                prompt=prompt,
                seconds=seconds,
                size=size,
                created=now,
                fail_code=fail_code,
                fail_message=fail_message,
                remixed_from=remix_of.id if remix_of else None,
                reference_sha256=reference_sha,
            )
            state.videos[video.id] = video
            if key:
                state.idempotency[key] = video.id
            state.stats.creates += 1
            if remix_of:
                state.stats.remixes += 1
            state.stats.creates_by_prompt[prompt] += 1
            state.stats.requests.append(
                {
                    "id": video.id,
                    "prompt": prompt,
                    "model": model,
                    "seconds": seconds,
                    "size": size,
                    "reference_sha256": reference_sha,
                    "idempotency_key": key,
                    "content_type": self.headers.get("Content-Type", "").split(";")[0],
                }
            )
            state.stats.max_in_flight = max(state.stats.max_in_flight, state.in_flight(now))
        return self._send(200, self._video_json(video))

    def _content(self, video_id: str, variant: str) -> None:
        video = self._find(video_id)
        if video is None:
            return None
        config = self.state.config
        status, _, completed_at = video.state(config, time.time())
        if status != "completed":
            return self._send(
                409, error_body("Video is not ready yet; wait until it completes.", code="video_not_ready")
            )
        with self.state.lock:
            expired = completed_at is not None and time.time() > completed_at + config.expire_after
            if config.expire_next_downloads > 0:
                config.expire_next_downloads -= 1
                expired = True
            if expired:
                self.state.stats.expired_downloads += 1
        if expired:
            return self._send(404, error_body("The video content has expired.", code="video_expired"))
        if variant == "video":
            data = content.video_bytes(video.size, float(video.seconds), config.fps)
            ctype = "video/mp4"
        elif variant in {"thumbnail", "spritesheet"}:
            data = content.thumbnail_bytes(video.size)
            ctype = "image/jpeg"
        else:
            return self._reject(
                f"Invalid value: '{variant}'. Supported values are: video, thumbnail, spritesheet.", "variant"
            )
        with self.state.lock:
            if video.downloaded_at is None:
                video.downloaded_at = time.time()
            video.downloads += 1
            self.state.stats.downloads += 1
        return self._send(200, raw=data, content_type=ctype)

    def _fake_admin(self, parts: list[str], body: bytes | None) -> None:
        state = self.state
        if parts == ["_fake", "stats"]:
            with state.lock:
                data = state.stats.as_dict()
                data["in_flight"] = state.in_flight(time.time())
            return self._send(200, data)
        if parts == ["_fake", "config"] and body is not None:
            updates = json.loads(body or b"{}")
            with state.lock:
                for name, value in updates.items():
                    if not hasattr(state.config, name):
                        return self._send(400, error_body(f"unknown setting {name}"))
                    setattr(state.config, name, tuple(value) if isinstance(value, list) else value)
            return self._send(200, asdict(state.config))
        if parts == ["_fake", "reset"] and body is not None:
            with state.lock:
                state.videos.clear()
                state.idempotency.clear()
                state.stats = Stats()
                state.create_counter = 0
            return self._send(200, {"reset": True})
        return self._send(404, error_body("unknown admin path"))


def sign_webhook(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks `v1,<base64>` signature, by the specification's own package."""
    return Webhook(secret).sign(
        msg_id=msg_id, timestamp=datetime.fromtimestamp(timestamp, tz=UTC), data=body.decode()
    )


class WebhookNotifier(Ticker):
    """Watches for videos that have finished and POSTs a signed event for each, once (no retries: the
    client's polling is what covers a lost event)."""

    thread_name = "fake-video-api-webhooks"

    def __init__(self, state: FakeState, interval: float = 0.05) -> None:
        super().__init__(interval)
        self.state = state

    def tick(self) -> int:
        return self.deliver_due()

    def deliver_due(self) -> int:
        config = self.state.config
        if not config.webhook_url or not config.webhook_secret:
            return 0
        now = time.time()
        due: list[tuple[str, str]] = []
        with self.state.lock:
            for video in self.state.videos.values():
                if video.notified or video.deleted:
                    continue
                status = video.state(config, now)[0]
                if status in {"completed", "failed"}:
                    video.notified = True
                    due.append((video.id, status))
        for video_id, status in due:
            self._send(config, video_id, status)
        return len(due)

    def _send(self, config: FakeConfig, video_id: str, status: str) -> None:
        event_id = f"evt_{uuid.uuid4().hex}"
        timestamp = int(time.time())
        body = json.dumps(
            {
                "id": event_id,
                "object": "event",
                "type": f"video.{status}",
                "created_at": timestamp,
                "data": {"id": video_id},
            }
        ).encode()
        request = urlrequest.Request(
            config.webhook_url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "webhook-id": event_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign_webhook(config.webhook_secret, event_id, timestamp, body),
            },
        )
        try:
            with urlrequest.urlopen(request, timeout=config.webhook_timeout) as response:
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


class FakeVideoServer:
    """Runs the fake API on a background thread: `with FakeVideoServer(FakeConfig(...)) as api: api.url`."""

    def __init__(
        self,
        config: FakeConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
    ) -> None:
        self.state = FakeState(config or FakeConfig())
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = self.state  # type: ignore[attr-defined]
        self.httpd.verbose = verbose  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None
        self.notifier = WebhookNotifier(self.state)

    @property
    def config(self) -> FakeConfig:
        return self.state.config

    @property
    def stats(self) -> Stats:
        return self.state.stats

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def reset(self, config: FakeConfig | None = None) -> None:
        """Forget every video and count, and take a fresh configuration (tests share one server)."""
        with self.state.lock:
            self.state.videos.clear()
            self.state.idempotency.clear()
            self.state.stats = Stats()
            self.state.create_counter = 0
            if config is not None:
                self.state.config = config
                self.state.random = random.Random(config.seed)

    def start(self) -> FakeVideoServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="fake-video-api", daemon=True)
        self._thread.start()
        self.notifier.start()
        return self

    def serve_forever(self) -> None:
        self.notifier.start()
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.notifier.stop()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeVideoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
