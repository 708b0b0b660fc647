"""All settings, read from the environment in this one module.

It is longer than the project's other modules on purpose: every environment variable is stated once,
here, with its default and a comment, so README's configuration table and this file can be read
side by side (docs/architecture.md, "Configuration").

With no DATABASE_URL and no REDIS_URL the project runs on the *embedded default*: SQLite, the in-memory
channel layer, the local provider and an in-process task runner. Setting them switches to the
production topology without any other change.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var"))).resolve()

DATABASE_URL = env_str("DATABASE_URL")
REDIS_URL = env_str("REDIS_URL")
EMBEDDED = not DATABASE_URL and not REDIS_URL

DEBUG = env_bool("DEBUG", False)
# With DEBUG on (`make serve`), pages still answer a missing page or a crash with the project's own 404
# and 500 pages; 1 brings back Django's technical pages (URL list, traceback) for debugging.
SHOW_DEBUG_ERROR_PAGES = env_bool("SHOW_DEBUG_ERROR_PAGES", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if not EMBEDDED:
        raise ImproperlyConfigured("SECRET_KEY must be set when DATABASE_URL or REDIS_URL is set")
    # Embedded default: a random key kept beside the SQLite file, so sessions survive restarts
    # without anyone having to invent a secret for a local demo.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "axes",
    "jobs",
    "segmentation",
    "rendering",
    "realtime",
    "idempotency",
    "callbacks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "sora_controller.error_pages.ProjectErrorPagesMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT failed logins for one user name from one
# address, that pair is locked out for LOGIN_LOCKOUT_MINUTES (workspace and admin logins alike).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_float("LOGIN_LOCKOUT_MINUTES", 15.0))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

ROOT_URLCONF = "sora_controller.urls"
WSGI_APPLICATION = "sora_controller.wsgi.application"
ASGI_APPLICATION = "sora_controller.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if DATABASE_URL:
    # Under daphne every request runs in a fresh thread, so per-thread persistent connections would pile
    # up until PostgreSQL refuses clients; a psycopg connection pool shared by the process keeps them
    # persistent and bounded. DB_POOL_MAX_SIZE=0 falls back to CONN_MAX_AGE persistence (Celery only).
    _pool_max = env_int("DB_POOL_MAX_SIZE", 20)
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=0 if _pool_max else env_int("DB_CONN_MAX_AGE", 60),
            conn_health_checks=not _pool_max,
        )
    }
    if _pool_max:
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env_int("DB_POOL_MIN_SIZE", 1),
            "max_size": _pool_max,
            "timeout": env_float("DB_POOL_TIMEOUT", 10.0),
        }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "db.sqlite3",
            # Workers (threads of the in-process runner) write beside the web request; wait for the
            # write lock instead of failing with "database is locked". WAL lets pages read while a worker
            # writes, and with synchronous=NORMAL a commit no longer waits for two fsyncs: the rollback
            # journal's commit had cost a poll step more than all its queries (a crash of the machine
            # may lose the last commits, never corrupt the file; the reaper redoes lost steps).
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # A file, not the shared-cache in-memory default: in-memory SQLite locks whole tables and
            # ignores the busy timeout, which breaks tests where worker threads write beside the test.
            # Per process, so two test runs on one machine never share (and destroy) one database.
            "TEST": {"NAME": str(DATA_DIR / f"test-db-{os.getpid()}.sqlite3")},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
# Without collectstatic (the embedded default, tests) whitenoise serves straight from the app finders.
WHITENOISE_USE_FINDERS = EMBEDDED or DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media"))).resolve()

# --- Realtime -------------------------------------------------------------------------------------
# CHANNEL_LAYER picks the Redis layer when REDIS_URL is set. "pubsub" (default): Redis PUBLISH/SUBSCRIBE,
# one message per event per web process, nothing stored; in bench/realtime.py it delivers faster than
# "core" (channels_redis' list-and-sorted-set layer, which keeps messages briefly for consumers that are
# momentarily not listening and caps each channel's backlog).
CHANNEL_LAYER_BACKENDS = {
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "core": "channels_redis.core.RedisChannelLayer",
}
CHANNEL_LAYER_OPTIONS: dict[str, dict[str, object]] = {
    "pubsub": {},
    # A web process receives every event of every job its sockets follow on one channel
    # (realtime.fanout), and the core layer drops what exceeds a channel's capacity (its default, 100,
    # is sized for one consumer): a burst across many jobs needs more room. Publishers check it.
    "core": {"capacity": env_int("CHANNEL_LAYER_CAPACITY", 10_000)},
}
CHANNEL_LAYER = env_str("CHANNEL_LAYER", "pubsub")
if CHANNEL_LAYER not in CHANNEL_LAYER_BACKENDS:
    raise ImproperlyConfigured(
        f"CHANNEL_LAYER must be one of {', '.join(CHANNEL_LAYER_BACKENDS)}, got {CHANNEL_LAYER!r}"
    )
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": CHANNEL_LAYER_BACKENDS[CHANNEL_LAYER],
            "CONFIG": {"hosts": [REDIS_URL], **CHANNEL_LAYER_OPTIONS[CHANNEL_LAYER]},
        }
    }
else:
    # Reaches only consumers in this process: right for the embedded default, where the web server and
    # the in-process worker share one process.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Tasks ----------------------------------------------------------------------------------------
# "inprocess": a thread pool inside this process runs the Celery task functions (embedded default).
# "celery": tasks go to the broker and a `celery worker` fleet runs them.
TASK_RUNNER = env_str("TASK_RUNNER", "celery" if REDIS_URL else "inprocess")
if TASK_RUNNER not in {"inprocess", "celery"}:
    raise ImproperlyConfigured(f"TASK_RUNNER must be 'inprocess' or 'celery', got {TASK_RUNNER!r}")
INPROCESS_WORKERS = env_int("INPROCESS_WORKERS", 2)

CELERY_BROKER_URL = REDIS_URL or "memory://"
# Nothing reads a task's result or state from Celery: the database records every segment's and job's
# state (jobs.render_state). Storing results cost each task two or three Redis round trips (started,
# retry, success), a poll several times a second per rendering segment.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# The visibility timeout must be longer than the longest task (a local render of a 60 s segment or
# an assembly) plus the longest countdown (60 s backoff), so Redis never re-delivers a running task.
# Messages of a worker that died (SIGKILL, lost machine) are handed out again once they are older than
# the visibility timeout; survivors look for such messages every CELERY_RESTORE_INTERVAL seconds
# (kombu's default sweep is ~100 s; a scan of the unacked index is cheap, so we look every 10 s).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
    "unacked_restore_interval": env_float("CELERY_RESTORE_INTERVAL", 10.0),
    "unacked_restore_throttle": 1,
}

# Separate queues so a long assembly never starves new work: workers for `submit` and `poll` (cheap,
# many) and for `assemble` (CPU, few) scale independently. Polls are retries with a countdown.
CELERY_TASK_DEFAULT_QUEUE = "submit"
CELERY_TASK_ROUTES = {
    "rendering.render_segment": {"queue": "submit"},
    "rendering.assemble_job": {"queue": "assemble"},
    "rendering.reap_stale": {"queue": "poll"},
    # Outgoing webhooks and housekeeping: short network calls, like polls.
    "callbacks.deliver": {"queue": "poll"},
    "callbacks.sweep": {"queue": "poll"},
    "idempotency.purge_expired": {"queue": "poll"},
}
POLL_QUEUE = "poll"
# Recovery (jobs.leases): a worker holds each segment or assembly it works on for LEASE_SECONDS,
# renewed by a heartbeat every third of it, or for its poll countdown plus LEASE_SECONDS while it waits;
# a message sent to the workers must be picked up within REQUEUE_AFTER_SECONDS. The reaper (celery beat
# on the fleet, the runner itself on the embedded default) resumes whatever is past its lease every
# REAPER_INTERVAL_SECONDS, so a crash costs at most about LEASE_SECONDS + the poll wait + the interval
# (20 + 15 + 5 s), and a resumed run lost again about LEASE_SECONDS + REQUEUE_AFTER_SECONDS + twice the
# interval (bench/chaos.py: the longest stall stays under 60 s). A sweep is two indexed queries.
LEASE_SECONDS = env_float("LEASE_SECONDS", 20.0)
REQUEUE_AFTER_SECONDS = env_float("REQUEUE_AFTER_SECONDS", 25.0)
REAPER_INTERVAL_SECONDS = env_float("REAPER_INTERVAL_SECONDS", 5.0)
# On the embedded default the in-process runner sweeps for stalled work itself (there is no beat).
EMBEDDED_REAPER = env_bool("EMBEDDED_REAPER", True)
# --- Idempotency-Key (idempotency app) ------------------------------------------------------------
# How long a key's answer is kept for retries; expired keys are purged hourly by beat (or with
# `manage.py purge_idempotency_keys`) and may be used again.
IDEMPOTENCY_KEY_TTL_SECONDS = env_int("IDEMPOTENCY_KEY_TTL_SECONDS", 24 * 3600)
# A request that holds a key for longer than this is taken to have died with its process (a finished
# request always stores or releases its key), and a retry may run in its place.
IDEMPOTENCY_LOCK_SECONDS = env_int("IDEMPOTENCY_LOCK_SECONDS", 300)

# --- Outgoing webhooks (callbacks app) -------------------------------------------------------------
# Callback URLs must be https; plain http only when this is on (local receivers, tests).
ALLOW_HTTP_CALLBACKS = env_bool("ALLOW_HTTP_CALLBACKS", False)
# Refuse callback hosts that resolve to loopback, private, link-local or otherwise non-public
# addresses (SSRF), checked again at every send; on only for receivers inside your own network.
ALLOW_PRIVATE_CALLBACKS = env_bool("ALLOW_PRIVATE_CALLBACKS", False)
# One attempt's connect + read budget; redirects are never followed.
CALLBACK_TIMEOUT_SECONDS = env_float("CALLBACK_TIMEOUT_SECONDS", 10.0)
# Attempts per delivery before it is given up, and the backoff between them: base x 2^(n-1), capped.
CALLBACK_MAX_ATTEMPTS = env_int("CALLBACK_MAX_ATTEMPTS", 8)
CALLBACK_BACKOFF_SECONDS = env_float("CALLBACK_BACKOFF_SECONDS", 10.0)
CALLBACK_BACKOFF_MAX_SECONDS = env_float("CALLBACK_BACKOFF_MAX_SECONDS", 3600.0)
# Beat re-sends deliveries whose retry is overdue by this long (their task was lost with a worker).
CALLBACK_SWEEP_SECONDS = env_int("CALLBACK_SWEEP_SECONDS", 60)

CELERY_BEAT_SCHEDULE = {
    "reap-stale-work": {"task": "rendering.reap_stale", "schedule": float(REAPER_INTERVAL_SECONDS)},
    "purge-idempotency-keys": {"task": "idempotency.purge_expired", "schedule": 3600.0},
    "sweep-webhook-deliveries": {"task": "callbacks.sweep", "schedule": float(CALLBACK_SWEEP_SECONDS)},
}

# --- Domain limits --------------------------------------------------------------------------------
MIN_DURATION_SECONDS = env_float("MIN_DURATION_SECONDS", 1.0)
MAX_DURATION_SECONDS = env_float("MAX_DURATION_SECONDS", 1800.0)
DEFAULT_SEGMENT_SECONDS = env_float("DEFAULT_SEGMENT_SECONDS", 10.0)
MIN_SEGMENT_SECONDS = env_float("MIN_SEGMENT_SECONDS", 1.0)
MAX_SEGMENT_SECONDS = env_float("MAX_SEGMENT_SECONDS", 60.0)
MAX_SEGMENT_PROMPT_CHARS = env_int("MAX_SEGMENT_PROMPT_CHARS", 32000)
MAX_JOB_PROMPT_CHARS = env_int("MAX_JOB_PROMPT_CHARS", 200_000)
DEFAULT_PROVIDER = env_str("DEFAULT_PROVIDER", "local")
# The segmentation strategy of a job that names none.
DEFAULT_STRATEGY = env_str("DEFAULT_STRATEGY", "even")
# The owner of jobs made with `manage.py render` when --user is not given.
SORA_CLI_USER = env_str("SORA_CLI_USER", "cli")
# Serve /api/_bench/json/ (the bare JSON view bench/api.py compares against) without DEBUG.
BENCH_VIEWS = env_bool("BENCH_VIEWS", False)
DEFAULT_VIDEO_SIZE = env_str("DEFAULT_VIDEO_SIZE", "1280x720")
DEFAULT_FPS = env_int("DEFAULT_FPS", 30)
SEGMENT_MAX_ATTEMPTS = env_int("SEGMENT_MAX_ATTEMPTS", 3)

# --- Reference images -----------------------------------------------------------------------------
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 20 * 1024 * 1024)
UPLOAD_MAX_PIXELS = env_int("UPLOAD_MAX_PIXELS", 40_000_000)
# A reference image more than this many times longer one way than the other is refused (20000000x2
# images decode into something no model can use and ffmpeg chokes on).
UPLOAD_MAX_ASPECT_RATIO = env_float("UPLOAD_MAX_ASPECT_RATIO", 8.0)
# Per job: how many reference images, and how many bytes of them (the clean copies), at most.
UPLOAD_MAX_IMAGES_PER_JOB = env_int("UPLOAD_MAX_IMAGES_PER_JOB", 64)
UPLOAD_MAX_BYTES_PER_JOB = env_int("UPLOAD_MAX_BYTES_PER_JOB", 200 * 1024 * 1024)

# --- Media tools ----------------------------------------------------------------------------------
# Empty: the ffmpeg binary shipped in the imageio-ffmpeg wheel. Set to use another ffmpeg.
FFMPEG_BINARY = env_str("FFMPEG_BINARY")
# Every ffmpeg run is stopped (its process group killed) after BASE + PER_MEDIA_SECOND x the seconds of
# video it makes, so no input can hold a worker: a 10 s clip gets 30 + 10 x 10 = 130 s by default.
FFMPEG_TIMEOUT_BASE_SECONDS = env_float("FFMPEG_TIMEOUT_BASE_SECONDS", 30.0)
FFMPEG_TIMEOUT_PER_MEDIA_SECOND = env_float("FFMPEG_TIMEOUT_PER_MEDIA_SECOND", 10.0)
# libx264 preset for clips the local provider draws and for re-encodes during normalisation.
X264_PRESET = env_str("X264_PRESET", "veryfast")

# --- REST framework -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first, so an unauthenticated call gets 401 with a WWW-Authenticate challenge.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "jobs.api.authentication.CompiledTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON nested past the recursion limit is a 400, not a 500.
    "DEFAULT_PARSER_CLASSES": [
        "jobs.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 20),
    "DEFAULT_THROTTLE_RATES": {"video_job_create": env_str("API_CREATE_THROTTLE", "60/hour")},
}
# How long a web process remembers an API token it authenticated (jobs.api.token_cache), so later calls
# skip the lookup; revocations through Django reach every process at once (over Redis with REDIS_URL),
# so this bounds only changes made around Django. 0: look the token up on every call.
API_AUTH_CACHE_SECONDS = env_float("API_AUTH_CACHE_SECONDS", 30.0)
SPECTACULAR_SETTINGS = {
    "TITLE": "Sora Controller API",
    "DESCRIPTION": "Turn one long prompt into one long video: jobs, segments, reference images, renders.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI assets are served from this project (drf-spectacular-sidecar), never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # jobs.api.schema.complete_document: links between operations, answers every view can give (406, 413,
    # 415), the strict-keys rule and the input limits from settings.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "jobs.api.schema.complete_document",
    ],
}


# --- Providers ------------------------------------------------------------------------------------
# The providers this deployment offers, as VideoProvider classes by dotted path: a team adds its own
# provider by naming its class here, without editing ours.
VIDEO_PROVIDERS = env_list(
    "VIDEO_PROVIDERS",
    [
        "rendering.providers.local.LocalProvider",
        "rendering.providers.sora.SoraProvider",
        "rendering.providers.fal.FalProvider",
        "rendering.providers.veo.VeoProvider",
    ],
)
# Where the local provider keeps clips between drawing and download.
LOCAL_PROVIDER_DIR = Path(env_str("LOCAL_PROVIDER_DIR", str(DATA_DIR / "local-provider"))).resolve()
# A TOML file of model overrides and additions (prices, lengths, sizes, models behind a gateway), read
# when it changes: see jobs/catalogue_file.py. Empty: the catalogue as shipped.
PROVIDER_CATALOG_FILE = env_str("PROVIDER_CATALOG_FILE")
# Tries of one segment through transient provider errors (429, 5xx, timeouts) before it fails.
TRANSIENT_RETRIES = env_int("TRANSIENT_RETRIES", 8)

# --- The OpenAI Videos protocol (provider "sora") -------------------------------------------------
# OpenAI's SDK convention for the base URL; point it at any gateway that speaks the protocol.
SORA_BASE_URL = env_str("SORA_BASE_URL", "https://api.openai.com/v1")
SORA_API_KEY = env_str("SORA_API_KEY")
SORA_MODEL = env_str("SORA_MODEL", "sora-2")
SORA_MODELS = env_list("SORA_MODELS", ["sora-2", "sora-2-pro"])
SORA_SIZES = env_list("SORA_SIZES", ["720x1280", "1280x720", "1024x1792", "1792x1024"])
# sora-2 renders 720p only; the larger sizes are sora-2-pro's.
SORA_SIZES_BY_MODEL = {"sora-2": ["720x1280", "1280x720"]}
# The clip lengths the provider renders; newer deployments add 16 and 20.
SORA_ALLOWED_SECONDS = [float(s) for s in env_list("SORA_ALLOWED_SECONDS", ["4", "8", "12"])]
# USD per second by model, or by model@size where the size changes the price.
SORA_PRICES = {
    key.strip(): float(value)
    for key, value in (
        item.split("=", 1)
        for item in env_list(
            "SORA_PRICES",
            ["sora-2=0.10", "sora-2-pro=0.30", "sora-2-pro@1024x1792=0.50", "sora-2-pro@1792x1024=0.50"],
        )
    )
}
SORA_CONNECT_TIMEOUT = env_float("SORA_CONNECT_TIMEOUT", 10.0)
SORA_READ_TIMEOUT = env_float("SORA_READ_TIMEOUT", 60.0)
SORA_DOWNLOAD_TIMEOUT = env_float("SORA_DOWNLOAD_TIMEOUT", 300.0)
REST_FRAMEWORK["EXCEPTION_HANDLER"] = "jobs.api.exceptions.api_exception_handler"

# --- fal's queue (provider "fal": Kling, Wan, Seedance, Hailuo, Veo on fal) --------------------------
# `id:secret`, sent as "Authorization: Key id:secret".
FAL_KEY = env_str("FAL_KEY")
# The queue's base URL with its scheme; fal-client always speaks https.
FAL_QUEUE_URL = env_str("FAL_QUEUE_URL", "https://queue.fal.run")
# fal's published ED25519 keys (JWKS) that sign its webhooks.
FAL_WEBHOOK_JWKS_URL = env_str("FAL_WEBHOOK_JWKS_URL", "https://rest.alpha.fal.ai/.well-known/jwks.json")
FAL_CONNECT_TIMEOUT = env_float("FAL_CONNECT_TIMEOUT", 10.0)
FAL_READ_TIMEOUT = env_float("FAL_READ_TIMEOUT", 60.0)
FAL_DOWNLOAD_TIMEOUT = env_float("FAL_DOWNLOAD_TIMEOUT", 300.0)

# --- Veo on Vertex AI (provider "veo") ---------------------------------------------------------------
VERTEX_PROJECT = env_str("VERTEX_PROJECT")
VERTEX_LOCATION = env_str("VERTEX_LOCATION", "us-central1")
# Default: https://{VERTEX_LOCATION}-aiplatform.googleapis.com
VERTEX_BASE_URL = env_str("VERTEX_BASE_URL")
# A service-account key file (its token_uri is used as given).
GOOGLE_APPLICATION_CREDENTIALS = env_str("GOOGLE_APPLICATION_CREDENTIALS")
# gs://bucket/prefix: Veo writes videos there instead of returning them inline; they are fetched from
# Cloud Storage's JSON API at VERTEX_GCS_BASE_URL with the same credentials.
VERTEX_OUTPUT_GCS_URI = env_str("VERTEX_OUTPUT_GCS_URI")
VERTEX_GCS_BASE_URL = env_str("VERTEX_GCS_BASE_URL", "https://storage.googleapis.com")
VERTEX_CONNECT_TIMEOUT = env_float("VERTEX_CONNECT_TIMEOUT", 10.0)
VERTEX_READ_TIMEOUT = env_float("VERTEX_READ_TIMEOUT", 120.0)

# Where providers that push completion (fal webhooks) reach this deployment, e.g. https://videos.example.com.
# Unset: completion is found by polling alone.
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL")


# --- Web workspace --------------------------------------------------------------------------------
LOGIN_URL = "workspace:login"
LOGIN_REDIRECT_URL = "workspace:job-list"
LOGOUT_REDIRECT_URL = "workspace:login"

# --- Production topology --------------------------------------------------------------------------
PORT = env_int("PORT", 8000)
# Pages served from another host (a separate front end): trusted for CSRF, CORS and the WebSocket
# origin check. Comma-separated origins such as https://app.example.com.
FRONTEND_ORIGIN = env_list("FRONTEND_ORIGIN", [])
CSRF_TRUSTED_ORIGINS = FRONTEND_ORIGIN + env_list("CSRF_TRUSTED_ORIGINS", [])
INSTALLED_APPS += ["corsheaders"]
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.common.CommonMiddleware"), "corsheaders.middleware.CorsMiddleware"
)
# Static files from the ASGI app itself (daphne does not serve them), compressed and cache-busted.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "whitenoise.middleware.WhiteNoiseMiddleware",
)
CORS_ALLOWED_ORIGINS = FRONTEND_ORIGIN
CORS_ALLOW_CREDENTIALS = True
CORS_URLS_REGEX = r"^/(api|media)/.*$"

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "sora_controller.redis_cache.SharedPoolRedisCache",
            "LOCATION": REDIS_URL,
            # Bounded: a Redis restart costs a request at most this long, never a hang.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }

# Media on S3 (or any S3-compatible store) when a bucket is named: private objects, signed URLs.
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG and not EMBEDDED
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
if AWS_STORAGE_BUCKET_NAME:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL") or None,
            "region_name": env_str("AWS_S3_REGION_NAME") or None,
            "addressing_style": env_str("AWS_S3_ADDRESSING_STYLE") or None,
            "signature_version": env_str("AWS_S3_SIGNATURE_VERSION", "s3v4"),
            "default_acl": None,  # objects stay private; the bucket's own policy applies
            "querystring_auth": True,  # every URL handed out is signed ...
            "querystring_expire": env_int("AWS_QUERYSTRING_EXPIRE", 3600),  # ... and expires
            "file_overwrite": False,
        },
    }
    MEDIA_URL = "s3/"  # not served by Django: URLs come signed from the storage

# Behind a TLS-terminating proxy in production; plain HTTP on the embedded default.
SECURE_DEFAULTS = not DEBUG and not EMBEDDED
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", SECURE_DEFAULTS)
# Load balancers and Prometheus probe over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", SECURE_DEFAULTS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if SECURE_DEFAULTS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", SECURE_HSTS_SECONDS > 0)
X_FRAME_OPTIONS = "DENY"

# Bearer token Prometheus presents at /metrics; without it only staff sessions may read metrics.
METRICS_TOKEN = env_str("METRICS_TOKEN")

# Logs: JSON lines (with job and segment ids) in production, plain text on the embedded default.
LOG_FORMAT = env_str("LOG_FORMAT", "plain" if EMBEDDED else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "sora_controller.logs.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s%(context_suffix)s"},
        "json": {"()": "sora_controller.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT if LOG_FORMAT in {"plain", "json"} else "plain",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
    "loggers": {
        "celery": {"level": env_str("CELERY_LOG_LEVEL", "WARNING" if EMBEDDED else "INFO"), "propagate": True}
    },
}

# --- Spend control ----------------------------------------------------------------------


def _money(name: str) -> Decimal | None:
    """A USD cap from the environment; unset, empty or 0 means no cap."""
    raw = env_str(name).strip().lstrip("$")
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation as exc:
        raise ImproperlyConfigured(f"{name} must be an amount in USD such as 2.50, got {raw!r}") from exc
    if not value.is_finite() or value < 0:
        raise ImproperlyConfigured(f"{name} must be a positive amount in USD, got {raw!r}")
    return value or None


def _per_provider(name: str) -> dict[str, int]:
    """'sora=2,local=4' -> {"sora": 2, "local": 4}; a provider left out (or 0) is unlimited."""
    limits: dict[str, int] = {}
    for item in env_list(name, []):
        provider, sep, value = item.partition("=")
        try:
            number = int(value)
        except ValueError:
            number = -1
        if not sep or not provider.strip() or number < 0:
            raise ImproperlyConfigured(f"{name} must look like 'sora=2,local=4', got {item!r}")
        if number:
            limits[provider.strip()] = number
    return limits


# Budget caps in USD (unset or 0: no cap). A render whose estimate would exceed one is refused before
# any provider call; the daily and monthly windows are UTC days and months.
BUDGET_JOB_MAX_USD = _money("BUDGET_JOB_MAX_USD")
BUDGET_USER_DAILY_USD = _money("BUDGET_USER_DAILY_USD")
BUDGET_USER_MONTHLY_USD = _money("BUDGET_USER_MONTHLY_USD")
# Reuse a finished clip with identical inputs instead of paying for it again (jobs can opt out).
RENDER_CACHE = env_bool("RENDER_CACHE", True)
# Fleet-wide limits per provider, kept in Redis (in process on the embedded default).
PROVIDER_MAX_CONCURRENT = _per_provider("PROVIDER_MAX_CONCURRENT")
PROVIDER_CREATES_PER_MINUTE = _per_provider("PROVIDER_CREATES_PER_MINUTE")
# A concurrency slot is a lease renewed on every poll step; a crashed worker's slot frees itself after
# this long. It must exceed the longest wait between two steps of one segment (60 s backoff).
PROVIDER_SLOT_LEASE_SECONDS = env_float("PROVIDER_SLOT_LEASE_SECONDS", 180.0)
# How long a segment waits for a free slot before it asks again (a countdown, not a busy loop).
PROVIDER_SLOT_WAIT_SECONDS = env_float("PROVIDER_SLOT_WAIT_SECONDS", 0.5)
# Standard Webhooks secret ("whsec_..."), from the provider's webhook settings. Unset: POST
# /webhooks/sora answers 404 and completion is found by polling alone.
SORA_WEBHOOK_SECRET = env_str("SORA_WEBHOOK_SECRET")
WEBHOOK_TOLERANCE_SECONDS = env_int("WEBHOOK_TOLERANCE_SECONDS", 300)
# The `llm` segmentation strategy: any OpenAI-compatible chat completions endpoint.
LLM_BASE_URL = env_str("LLM_BASE_URL", "https://api.openai.com/v1")
LLM_API_KEY = env_str("LLM_API_KEY")
LLM_MODEL = env_str("LLM_MODEL", "gpt-4o-mini")
LLM_TIMEOUT = env_float("LLM_TIMEOUT", 30.0)

# --- Realtime on Redis ------------------------------------------------------
if REDIS_URL:
    # channels_redis waits for messages in BZPOPMIN for up to 5 s at a time, and redis-py 8 gives every
    # read a 5 s socket timeout by default: on a quiet job the read times out first, the consumer crashes
    # and the page loses its socket. Reads must outlast the blocking wait; connecting still fails fast.
    CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [
        {"address": REDIS_URL, "socket_timeout": 30.0, "socket_connect_timeout": 5.0}
    ]
