"""Health, readiness, metrics, structured logs and the production settings."""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from sora_controller.logs import JsonFormatter, log_context
from sora_controller.metrics import record_provider_error, record_render

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
    "REDIS_URL": "redis://127.0.0.1:6379/12",
    "SECRET_KEY": "prod-" + "x" * 60,
    "ALLOWED_HOSTS": "app.example.com",
}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "TASK_RUNNER"}
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def settings_in(env: dict[str, str], expression: str) -> str:
    clean = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "TASK_RUNNER"}
    }
    code = (
        f"import django,os;os.environ['DJANGO_SETTINGS_MODULE']='sora_controller.settings';django.setup();"
        f"from django.conf import settings as s;print({expression})"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_check_deploy_is_clean_with_a_production_environment():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={**PRODUCTION_ENV, "SECRET_KEY": secrets.token_urlsafe(60)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_environment_selects_postgres_redis_celery_and_s3():
    env = {**PRODUCTION_ENV, "AWS_STORAGE_BUCKET_NAME": "media", "FRONTEND_ORIGIN": "https://app.example.org"}
    assert settings_in(env, "s.DATABASES['default']['ENGINE']") == "django.db.backends.postgresql"
    assert settings_in(env, "s.TASK_RUNNER, s.CELERY_BROKER_URL") == "celery redis://127.0.0.1:6379/12"
    assert (
        settings_in(env, "s.CHANNEL_LAYERS['default']['BACKEND']")
        == "channels_redis.pubsub.RedisPubSubChannelLayer"
    )
    assert settings_in(env, "s.STORAGES['default']['BACKEND']") == "storages.backends.s3.S3Storage"
    assert settings_in(env, "s.STORAGES['default']['OPTIONS']['querystring_auth']") == "True"
    assert settings_in(env, "s.CSRF_TRUSTED_ORIGINS, s.CORS_ALLOWED_ORIGINS") == (
        "['https://app.example.org'] ['https://app.example.org']"
    )
    # Persistent connections through a pool (per-request threads under daphne would leak them).
    assert settings_in(env, "s.DATABASES['default']['OPTIONS']['pool']['max_size']") == "20"
    assert settings_in({**env, "DB_POOL_MAX_SIZE": "0"}, "s.DATABASES['default']['CONN_MAX_AGE']") == "60"


def test_channel_layer_is_chosen_by_env_and_an_unknown_one_is_refused():
    core = {**PRODUCTION_ENV, "CHANNEL_LAYER": "core"}
    assert (
        settings_in(core, "s.CHANNEL_LAYERS['default']['BACKEND']") == "channels_redis.core.RedisChannelLayer"
    )
    # The core layer drops messages beyond a channel's capacity; a web process's one channel needs room.
    assert settings_in(core, "s.CHANNEL_LAYERS['default']['CONFIG']['capacity']") == "10000"
    result = manage("check", env={**PRODUCTION_ENV, "CHANNEL_LAYER": "kafka"})
    assert result.returncode != 0 and "CHANNEL_LAYER must be one of pubsub, core" in result.stderr


def test_missing_secret_key_in_production_is_refused():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}
    result = manage("check", env={**env, "SECRET_KEY": ""})
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_healthz_needs_nothing(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_each_dependency(client, settings):
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json()
    assert set(ready.json()["checks"]) == {"database", "storage"}
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    down = client.get("/readyz")
    assert down.status_code == 503
    assert down.json()["checks"]["redis"]["ok"] is False and down.json()["status"] == "unavailable"


@pytest.mark.django_db
def test_metrics_need_staff_or_the_token(client, settings, django_user_model, user):
    assert client.get(reverse("metrics")).status_code == 403
    client.force_login(user)
    assert client.get(reverse("metrics")).status_code == 403
    staff = django_user_model.objects.create_user("ops", password="x", is_staff=True)
    client.force_login(staff)
    record_render("local", 3.2)
    record_provider_error("sora", "rate_limit_exceeded")
    body = client.get(reverse("metrics")).content.decode()
    assert 'sora_render_duration_seconds_bucket{le="5.0",provider="local"}' in body
    assert 'sora_provider_errors_total{code="rate_limit_exceeded",provider="sora"}' in body
    assert 'sora_jobs{status="draft"} 0.0' in body and "sora_spend_usd_total" in body
    settings.METRICS_TOKEN = "scrape-me"
    client.logout()
    assert client.get(reverse("metrics")).status_code == 401
    assert client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer scrape-me").status_code == 200


def test_json_logs_carry_job_and_segment_ids():
    formatter = JsonFormatter()
    from sora_controller.logs import ContextFilter

    record = logging.LogRecord("rendering", logging.WARNING, __file__, 1, "segment %s stalled", (3,), None)
    with log_context(job_id="0f2f", segment_id=3):
        ContextFilter().filter(record)
    line = json.loads(formatter.format(record))
    assert line["message"] == "segment 3 stalled" and line["job_id"] == "0f2f" and line["segment_id"] == "3"
    assert line["level"] == "WARNING" and line["time"].endswith("+00:00")
