"""Remembered API tokens across processes (jobs.api.token_cache), on a real Redis: a revocation made
in one process reaches the others, and a process that cannot hear revocations remembers nothing.
`make test-postgres` runs these with REDIS_URL set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from jobs.api import token_cache
from jobs.api.token_cache import CHANNEL, TokenCache

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


@pytest.fixture
def redis_url() -> str:
    assert settings.REDIS_URL, "REDIS_URL must be set for the Redis tests"
    return settings.REDIS_URL


@pytest.fixture
def listening(redis_url) -> TokenCache:
    """A cache of this process, subscribed to the revocations."""
    cache = TokenCache(redis_url=redis_url)
    cache.get("nothing")  # starts its listener
    assert eventually(cache.listening), "the listener did not subscribe"
    return cache


@pytest.fixture
def token() -> Token:
    user = get_user_model().objects.create_user(f"remote-{time.monotonic_ns()}")
    created = Token.objects.create(user=user)
    return Token.objects.select_related("user").get(pk=created.pk)


@pytest.fixture
def announcements(redis_url) -> Iterator[Callable[[], list[dict]]]:
    """What is announced on the channel while the test runs, read by a plain subscriber."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    heard: list[dict] = []

    def read() -> list[dict]:
        while (message := pubsub.get_message(timeout=0.05)) is not None:
            heard.append(json.loads(message["data"]))
        return heard

    yield read
    pubsub.close()


def remember(cache: TokenCache, token: Token) -> None:
    cache.remember(token.key, token, generation=cache.generation())
    assert cache.get(token.key) is not None


def test_a_revocation_announced_by_another_process_is_heard(listening, token, redis_url):
    remember(listening, token)
    script = (
        "import django; django.setup()\n"
        "import sys\n"
        "from jobs.api.token_cache import announce, digest\n"
        "announce(digests=[digest(sys.argv[1])])\n"
    )
    env = {**os.environ, "REDIS_URL": redis_url, "DJANGO_SETTINGS_MODULE": "sora_controller.settings"}
    subprocess.run([sys.executable, "-c", script, token.key], cwd=ROOT, env=env, check=True, timeout=60)
    assert eventually(lambda: listening.get(token.key) is None, timeout=5)


def test_revoking_through_django_announces_it_when_it_commits(listening, token, announcements):
    remember(listening, token)
    other = Token.objects.create(user=get_user_model().objects.create_user("bystander"))
    bystander = Token.objects.select_related("user").get(pk=other.pk)
    remember(listening, bystander)
    Token.objects.filter(pk=token.pk).delete()
    assert eventually(lambda: listening.get(token.key) is None, timeout=5)
    assert listening.get(bystander.key) is not None  # only the revoked token is forgotten
    assert eventually(lambda: {"tokens": [token_cache.digest(token.key)], "users": []} in announcements())
    assert not any(token.key in json.dumps(message) for message in announcements())

    user = bystander.user
    user.is_active = False
    user.save()
    assert eventually(lambda: {"tokens": [], "users": [str(user.pk)]} in announcements())
    assert eventually(lambda: listening.get(bystander.key) is None, timeout=5)


def test_while_redis_cannot_be_reached_nothing_is_remembered(token):
    unreachable = TokenCache(redis_url="redis://127.0.0.1:1/0")
    unreachable.remember(token.key, token, generation=unreachable.generation())
    time.sleep(0.5)  # its listener has tried by now
    assert not unreachable.listening()
    assert unreachable.get(token.key) is None


def test_a_lost_subscription_forgets_everything_and_subscribes_again(listening, token, redis_url):
    remember(listening, token)
    admin = redis.Redis.from_url(redis_url, socket_timeout=5)
    ours = [client["id"] for client in admin.client_list() if client["name"] == listening.listener_name()]
    assert len(ours) == 1
    admin.client_kill_filter(_id=ours[0])
    # Revocations may have been missed while it was away: nothing remembered survives...
    assert eventually(lambda: listening.get(token.key) is None, timeout=5)
    # ...and once subscribed again it remembers as before.
    assert eventually(listening.listening, timeout=15)
    remember(listening, token)
