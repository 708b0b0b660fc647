"""docker-compose.yml and Procfile describe the production topology and stay valid."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_is_valid_and_has_every_role():
    tool = shutil.which("docker-compose")
    if tool is None:
        if os.environ.get("CI") == "true" or os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail("docker-compose is required in CI (.ci/run installs it)")
        pytest.skip("docker-compose is not installed")
    result = subprocess.run(
        [tool, "-f", "docker-compose.yml", "config", "--services"],
        cwd=ROOT,
        env={**os.environ, "SECRET_KEY": "compose-check"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    services = set(result.stdout.split())
    assert {"web", "worker", "assembler", "beat", "release", "postgres", "redis", "minio"} <= services


def test_compose_refuses_to_start_without_a_secret_key():
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed")
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    result = subprocess.run(
        [tool, "-f", "docker-compose.yml", "config", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "set SECRET_KEY" in result.stderr


def test_procfile_roles():
    roles = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert {"web", "worker", "beat", "release"} <= set(roles)
    assert "migrate" in roles["release"]
    assert "-Q submit,poll" in roles["worker"] and "-Q assemble" in roles["assembler"]


# --- The web role: WEB_CONCURRENCY daphne processes (sora_controller.web_processes) ------------------


def test_procfile_web_role_takes_its_process_count_and_port_from_the_environment():
    roles = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    web = roles["web"]
    assert "python -m sora_controller.web_processes" in web
    assert "--processes ${WEB_CONCURRENCY:-" in web and "--port ${PORT:-8000}" in web
    # Behind the platform's router: the client's address comes from X-Forwarded-For.
    assert web.rstrip().endswith("-- --proxy-headers")


def compose() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_web_role_runs_web_concurrency_processes_with_the_redis_layer():
    web = compose()["services"]["web"]
    assert web["command"][:3] == ["python", "-m", "sora_controller.web_processes"]
    assert web["command"][-2:] == ["--", "--proxy-headers"]
    environment = web["environment"]
    assert environment["WEB_CONCURRENCY"].startswith("${WEB_CONCURRENCY:-")
    # The rest of the app's environment is kept (the merge), REDIS_URL included: several processes
    # need the Redis channel layer.
    assert environment["REDIS_URL"].startswith("redis://") and environment["DATABASE_URL"]
    assert environment["SECRET_KEY"] == "${SECRET_KEY:?set SECRET_KEY}"


def test_image_default_command_is_the_web_role():
    cmd = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD"))
    assert '"sora_controller.web_processes"' in cmd and '"--proxy-headers"' in cmd
    # Exec form: the supervisor is PID 1 and receives the container's SIGTERM itself.
    assert cmd.startswith("CMD [")
