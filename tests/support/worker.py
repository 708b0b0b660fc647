"""Start and stop real `celery worker` processes for tests that need the production topology."""

from __future__ import annotations

import os
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

from sora_controller.celery import app as celery_app
from tests.support.fleet import celery_worker, node_name


def database_url() -> str:
    """The URL of the database the test run is using (pytest-django's test database)."""
    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return (
        f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
    )


class Worker:
    """A `celery worker` subprocess on the test's broker (the command is tests.support.fleet's)."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        log_path: Path,
        *,
        concurrency: int = 2,
        queues: str = "submit,poll,assemble",
    ) -> None:
        self.name = name
        self.node = node_name(name)
        self.log_path = log_path
        self.managed = celery_worker(
            name, {**os.environ, **env}, log_path, queues=queues, concurrency=concurrency
        ).start()
        self.process = self.managed.process

    def wait_ready(self, timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited: {self.log_path.read_text()[-2000:]}")
            if celery_app.control.ping(destination=[self.node], timeout=0.5):
                return
        raise RuntimeError(f"worker {self.name} did not answer a ping: {self.log_path.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool: no warm shutdown, no message given back."""
        self.managed.kill()

    def stop(self) -> None:
        self.managed.stop(timeout=15)


def worker_env(media_root: Path, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": "test-only-secret",
        "TASK_RUNNER": "celery",
        "MEDIA_ROOT": str(media_root),
        "DATA_DIR": str(data_dir),
        "LOCAL_PROVIDER_DIR": str(data_dir / "local-provider"),
        "CELERY_VISIBILITY_TIMEOUT": "6",
        "CELERY_RESTORE_INTERVAL": "1",
    }
    env.update(extra)
    return env


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
