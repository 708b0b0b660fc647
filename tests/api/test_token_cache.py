"""API tokens remembered by the web process (jobs.api.token_cache): later calls skip the lookup, and
nothing revoked through Django is ever answered from memory. These run without Redis (one process
hears its own revocations); test_token_cache_redis.py has the ones between processes."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs.api import token_cache
from jobs.api.token_cache import TOKENS, TokenCache
from tests.factories import UserFactory

from .conftest import job_url

pytestmark = pytest.mark.django_db


def token_lookups(queries: CaptureQueriesContext) -> int:
    return sum("authtoken_token" in query["sql"] for query in queries.captured_queries)


def calls(client: APIClient, url: str, times: int = 1) -> tuple[list[int], int]:
    """The statuses of `times` calls, and how many of them looked the token up."""
    with CaptureQueriesContext(connection) as queries:
        statuses = [client.get(url).status_code for _ in range(times)]
    return statuses, token_lookups(queries)


@pytest.fixture
def program(user) -> tuple[APIClient, Token]:
    token = Token.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client, token


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_only_the_first_call_of_a_token_looks_it_up(program, make_job):
    client, _ = program
    job = make_job()
    assert calls(client, job_url(job), times=3) == ([200, 200, 200], 1)


def test_a_remembered_user_is_a_new_instance_each_call(program):
    client, token = program
    assert calls(client, "/api/video-jobs/") == ([200], 1)
    first, _ = TOKENS.get(token.key)
    first.username = "changed in one request"
    second, second_token = TOKENS.get(token.key)
    assert second is not first and second.username == token.user.username
    assert second_token.user is second and second_token.key == token.key


def test_a_deleted_token_is_refused_on_the_next_call(program):
    client, token = program
    assert calls(client, "/api/video-jobs/") == ([200], 1)
    token.delete()
    assert calls(client, "/api/video-jobs/") == ([401], 1)


def test_a_user_deactivated_or_deleted_is_refused_on_the_next_call(user, program):
    client, _ = program
    assert calls(client, "/api/video-jobs/", times=2) == ([200, 200], 1)
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert client.get("/api/video-jobs/").json()["detail"] == "User inactive or deleted."
    user.is_active = True
    user.save()
    assert calls(client, "/api/video-jobs/", times=2) == ([200, 200], 1)
    user.delete()
    assert calls(client, "/api/video-jobs/") == ([401], 1)


def test_a_login_keeps_the_token_remembered(user, program):
    client, token = program
    client.get("/api/video-jobs/")
    APIClient().force_login(user)  # saves the user's last_login, nothing else
    user.refresh_from_db()
    assert user.last_login is not None
    assert TOKENS.get(token.key) is not None


def test_a_user_changed_through_django_is_read_afresh(user, program):
    client, _ = program
    client.get("/api/video-jobs/")
    user.is_staff = True
    user.save()
    remembered = TOKENS.get(program[1].key)
    assert remembered is None  # forgotten: the next call reads the new row
    client.get("/api/video-jobs/")
    assert TOKENS.get(program[1].key)[0].is_staff is True


def test_unknown_tokens_and_inactive_users_are_never_remembered(user):
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION="Token " + "f" * 40)
    assert calls(stranger, "/api/video-jobs/", times=2) == ([401, 401], 2)
    inactive = UserFactory(is_active=False)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=inactive).key}")
    assert calls(client, "/api/video-jobs/", times=2) == ([401, 401], 2)


def test_zero_seconds_looks_every_call_up(program, settings):
    settings.API_AUTH_CACHE_SECONDS = 0
    assert calls(program[0], "/api/video-jobs/", times=3) == ([200, 200, 200], 3)


@pytest.mark.django_db(transaction=True)
def test_a_lookup_racing_the_revoking_transaction_is_forgotten_when_it_commits():
    user = get_user_model().objects.create_user("racer")
    token = Token.objects.create(user=user)
    found = Token.objects.select_related("user").get(key=token.key)
    with transaction.atomic():
        before = TOKENS.generation()  # a lookup that began before the revocation...
        Token.objects.filter(key=token.key).delete()
        TOKENS.remember(token.key, found, generation=before)
        assert TOKENS.get(token.key) is None  # ...is not remembered
        # One that began after it, in another transaction, still saw the committed token...
        TOKENS.remember(token.key, found, generation=TOKENS.generation())
        assert TOKENS.get(token.key) is not None
    assert TOKENS.get(token.key) is None  # ...and is forgotten once the revocation commits


def test_what_bypasses_django_holds_for_at_most_the_configured_seconds(user, settings):
    settings.API_AUTH_CACHE_SECONDS = 30
    clock = Clock()
    cache = TokenCache(redis_url=None, clock=clock)
    token = Token.objects.select_related("user").get(pk=Token.objects.create(user=user).pk)
    cache.remember(token.key, token, generation=cache.generation())
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)  # no signal: unseen
    clock.now += 29.9
    assert cache.get(token.key) is not None
    clock.now += 0.2
    assert cache.get(token.key) is None


def test_at_most_max_tokens_are_remembered_the_oldest_going_first(user, monkeypatch):
    monkeypatch.setattr(token_cache, "MAX_TOKENS", 3)
    cache = TokenCache(redis_url=None)
    tokens = []
    for _ in range(5):
        token = Token.objects.select_related("user").get(pk=Token.objects.create(user=UserFactory()).pk)
        cache.remember(token.key, token, generation=cache.generation())
        tokens.append(token.key)
    assert [cache.get(key) is not None for key in tokens] == [False, False, True, True, True]


def test_neither_memory_nor_announcements_hold_the_key(user):
    cache = TokenCache(redis_url=None)
    token = Token.objects.select_related("user").get(pk=Token.objects.create(user=user).pk)
    cache.remember(token.key, token, generation=cache.generation())
    assert list(cache._entries) == [token_cache.digest(token.key)]
    assert token.key not in repr(cache._entries)


def test_a_forked_child_starts_with_nothing_remembered(user, monkeypatch):
    cache = TokenCache(redis_url=None)
    token = Token.objects.select_related("user").get(pk=Token.objects.create(user=user).pk)
    cache.remember(token.key, token, generation=cache.generation())
    monkeypatch.setattr(token_cache.os, "getpid", lambda: -1)
    assert cache.get(token.key) is None
