"""A token revoked in one process stops working in every web process: two daphne processes of the
production web role (sora_controller.web_processes) on PostgreSQL and Redis, each remembering the tokens
it authenticated (jobs.api.token_cache), and a revocation made through Django in this test process."""

from __future__ import annotations

import os
import time

import pytest
import requests
from django.conf import settings
from django.db import connection
from rest_framework.authtoken.models import Token

from tests.support.daphne import WebProcesses
from tests.support.worker import database_url

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

CALLS = 40


def statuses(url: str, key: str) -> set[int]:
    """The statuses of CALLS calls, each on a new connection, so both processes take some."""
    found = set()
    for _ in range(CALLS):
        with requests.Session() as session:
            response = session.get(
                url, headers={"Authorization": f"Token {key}", "Connection": "close"}, timeout=30
            )
            found.add(response.status_code)
    return found


@pytest.fixture
def two_web_processes(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": "test-only-secret",
        "DATA_DIR": str(tmp_path),
        "SECURE_SSL_REDIRECT": "0",
        "TASK_RUNNER": "inprocess",
    }
    web = WebProcesses(env, tmp_path / "web.log", 2, probe="/healthz").start()  # both processes up
    try:
        yield web.url
    finally:
        web.stop()


def test_a_revocation_through_django_reaches_every_web_process(two_web_processes, user):
    key = Token.objects.create(user=user).key
    url = f"{two_web_processes}/api/video-jobs/"
    assert statuses(url, key) == {200}

    # The row goes without Django knowing (raw SQL, no signal): the processes that served the token
    # still answer from memory, as documented (API_AUTH_CACHE_SECONDS bounds this case).
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM authtoken_token WHERE key = %s", [key])
    assert statuses(url, key) == {200}

    # A revocation through Django (saving the user) is announced: every process forgets the token,
    # looks it up again and finds it gone.
    user.is_active = True
    user.save()
    deadline = time.monotonic() + 5
    while statuses(url, key) != {401}:
        assert time.monotonic() < deadline, "a web process still answers for the revoked token"
        time.sleep(0.05)
    assert statuses(url, key) == {401}
