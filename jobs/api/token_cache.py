"""API tokens a web process has authenticated, remembered so a program's next calls skip the lookup.

Every API call authenticates its token; the lookup (the token joined to its user) was a sixth of the
cost of a job detail, in the web process and in PostgreSQL. A token found and valid is remembered here
with a copy of its user's row for API_AUTH_CACHE_SECONDS (default 30; 0 looks every call up).

What keeps a remembered token from outliving its revocation:
- Revoking through Django (a token deleted or changed, its user saved or deleted: the admin, the API,
  `manage.py drf_create_token -r`) forgets it in the revoking process at once, again when the
  transaction commits, and then in every other process through a Redis message (with REDIS_URL).
- With REDIS_URL, a process uses what it remembers only while it is subscribed to those messages:
  while Redis is unreachable every call is looked up, and on subscribing again it starts empty.
- A lookup that began before a revocation is not remembered (the generation count), so a read racing
  the revoking transaction cannot bring the token back.
- The bound for what bypasses Django's signals (SQL, QuerySet.update()), for a message that did not
  arrive (Redis refused it, or the subscription broke unnoticed), and without REDIS_URL for changes
  made by another process: API_AUTH_CACHE_SECONDS.
Tokens that are unknown or whose user is inactive are never remembered (memory an attacker could fill
otherwise), at most MAX_TOKENS are, and they are kept under their key's SHA-256, so neither this memory
nor the messages hold the secrets.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Model, signals
from rest_framework.authtoken.models import Token

log = logging.getLogger(__name__)

# Past this many remembered tokens the oldest is forgotten first.
MAX_TOKENS = 10_000
# The Redis channel revocations travel on (pub/sub channels are server-wide, not per database: another
# deployment on the same server only makes this one forget more than it must).
CHANNEL = "sora_controller.api_tokens.revoked"
# A dead Redis is noticed within about this long (the listener pings it), a hung one within its timeout.
HEALTH_CHECK_SECONDS = 5
SOCKET_TIMEOUT_SECONDS = 10


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class _Row:
    """A copy of one instance's row, to build new instances of it from (as the database would), less
    the values named `withheld` (given back to instance())."""

    model: type[Model]
    names: list[str]
    values: tuple[Any, ...]
    using: str

    @classmethod
    def of(cls, instance: Model, *, withheld: tuple[str, ...] = ()) -> _Row:
        names = [field.attname for field in instance._meta.concrete_fields]
        # ints, strings, datetimes: immutable, so every instance built from them may share them
        values = tuple(None if name in withheld else getattr(instance, name) for name in names)
        return cls(type(instance), names, values, instance._state.db or DEFAULT_DB_ALIAS)

    def instance(self, **withheld: Any) -> Model:
        values = [withheld.get(name, value) for name, value in zip(self.names, self.values, strict=True)]
        return self.model.from_db(self.using, self.names, values)


@dataclass(frozen=True)
class _Remembered:
    user_id: str  # as text, as it travels in the messages
    user: _Row
    token: _Row
    expires: float


class TokenCache:
    """Remembered tokens of this process. `redis_url`: where revocations are announced (None: this
    process hears only its own); `clock`: monotonic seconds (tests move it)."""

    def __init__(self, *, redis_url: str | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.redis_url, self.clock = redis_url, clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Remembered] = {}
        self._generation = 0
        self._pid = os.getpid()
        self._listener: _RevocationListener | None = None
        self._listening = redis_url is None  # without Redis there is nothing to listen to

    # --- Reads -----------------------------------------------------------------------------------

    def generation(self) -> int:
        """Take it before a lookup and hand it to remember(): a revocation in between voids the lookup."""
        return self._generation

    def get(self, key: str) -> tuple[Any, Token] | None:
        """(user, token) as the lookup would give them, new instances each time; None: look it up."""
        if not self._usable():
            return None
        entry = self._entries.get(digest(key))
        if entry is None or entry.expires <= self.clock():
            return None
        user, token = entry.user.instance(), entry.token.instance(key=key)
        Token.user.field.set_cached_value(token, user)
        return user, token

    # --- Writes ----------------------------------------------------------------------------------

    def remember(self, key: str, token: Token, *, generation: int) -> None:
        seconds = settings.API_AUTH_CACHE_SECONDS
        if seconds <= 0 or not self._usable() or not token.user.is_active:
            return
        entry = _Remembered(
            str(token.user_id), _Row.of(token.user), _Row.of(token, withheld=("key",)), self.clock() + seconds
        )
        with self._lock:
            if generation != self._generation:
                return  # a revocation came while it was looked up
            name = digest(key)
            self._entries.pop(name, None)
            while len(self._entries) >= MAX_TOKENS:
                del self._entries[next(iter(self._entries))]
            self._entries[name] = entry

    def forget(self, *, digests: Iterable[str] = (), user_ids: Iterable[Any] = ()) -> None:
        digests, user_ids = set(digests), {str(user_id) for user_id in user_ids}
        with self._lock:
            self._generation += 1
            for name in digests:
                self._entries.pop(name, None)
            if user_ids:
                self._entries = {n: e for n, e in self._entries.items() if e.user_id not in user_ids}

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries = {}

    # --- Listening for other processes' revocations -------------------------------------------------

    def listener_name(self) -> str:
        return f"api-token-revocations-{os.getpid()}-{id(self):x}"

    def listening(self) -> bool:
        """Whether remembered tokens are used: always without Redis, else while subscribed."""
        return self._listening

    def _usable(self) -> bool:
        if self._pid != os.getpid():  # a forked child: nothing of the parent's holds here
            self._after_fork()
        if self.redis_url is not None and self._listener is None:
            with self._lock:
                if self._listener is None:
                    self._listener = _RevocationListener(self)
                    self._listener.start()
        return self._listening

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._entries, self._pid, self._listener = {}, os.getpid(), None
        self._listening = self.redis_url is None
        self._generation += 1

    def _set_listening(self, listening: bool) -> None:
        # Either way what is remembered goes: revocations may have been missed while not listening.
        with self._lock:
            self._listening = listening
            self._generation += 1
            self._entries = {}

    def _heard(self, data: bytes) -> None:
        try:
            message = json.loads(data)
            self.forget(digests=message.get("tokens", ()), user_ids=message.get("users", ()))
        except (ValueError, TypeError, AttributeError):
            log.warning("an unreadable token revocation; forgetting every remembered token")
            self.clear()


class _RevocationListener(threading.Thread):
    """Subscribed to CHANNEL for as long as the process lives, resubscribing with backoff after Redis
    goes away; every wait is bounded (pings every HEALTH_CHECK_SECONDS, SOCKET_TIMEOUT_SECONDS)."""

    def __init__(self, cache: TokenCache) -> None:
        super().__init__(name="api-token-revocations", daemon=True)
        self.cache = cache

    def run(self) -> None:
        backoff, reported = 0.5, False
        while True:
            pubsub = None
            try:
                client = redis.Redis.from_url(
                    self.cache.redis_url,
                    socket_connect_timeout=2,
                    socket_timeout=SOCKET_TIMEOUT_SECONDS,
                    health_check_interval=HEALTH_CHECK_SECONDS,
                    client_name=self.cache.listener_name(),  # so operators (and tests) can find it
                )
                pubsub = client.pubsub()
                pubsub.subscribe(CHANNEL)
                while True:
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self.cache._set_listening(True)
                        backoff, reported = 0.5, False
                    elif message["type"] == "message":
                        self.cache._heard(message["data"])
            except Exception as exc:  # any failure: stop trusting the cache, then subscribe again
                if not reported:  # once per outage, not on every retry
                    log.warning("token revocations unheard (%s): every API call looks its token up", exc)
                    reported = True
            finally:
                self.cache._set_listening(False)
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # already broken
                        pubsub.close()
            time.sleep(backoff)
            backoff = min(backoff * 2, 10.0)


TOKENS = TokenCache(redis_url=settings.REDIS_URL or None)

_publisher: redis.Redis | None = None


def announce(*, digests: Iterable[str] = (), user_ids: Iterable[Any] = ()) -> None:
    """Tell the other processes to forget these tokens (by digest) and these users' tokens."""
    global _publisher
    if not settings.REDIS_URL:
        return
    message = json.dumps({"tokens": sorted(digests), "users": sorted(str(user_id) for user_id in user_ids)})
    try:
        if _publisher is None:
            _publisher = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        _publisher.publish(CHANNEL, message)
    except redis.RedisError as exc:
        log.warning(
            "could not announce a token revocation (%s): other processes drop it within "
            "API_AUTH_CACHE_SECONDS",
            exc,
        )


def revoked(
    *, digests: Iterable[str] = (), user_ids: Iterable[Any] = (), using: str = DEFAULT_DB_ALIAS
) -> None:
    """A token or user changed: forget it here now (later calls of this very transaction included), and
    once committed here again and everywhere (a lookup racing the transaction may have remembered it)."""
    digests, user_ids = list(digests), list(user_ids)
    TOKENS.forget(digests=digests, user_ids=user_ids)

    def committed() -> None:
        TOKENS.forget(digests=digests, user_ids=user_ids)
        announce(digests=digests, user_ids=user_ids)

    transaction.on_commit(committed, using=using, robust=True)


def _token_changed(sender: type[Model], instance: Token, using: str, created: bool = False, **_: Any) -> None:
    if not created:
        revoked(digests=[digest(instance.key)], using=using)


def _user_changed(
    sender: type[Model],
    instance: Model,
    using: str,
    created: bool = False,
    update_fields: frozenset[str] | None = None,
    **_: Any,
) -> None:
    # A login saves only last_login, which no API call reads: not worth an announcement per login.
    if not created and update_fields != frozenset({"last_login"}):
        revoked(user_ids=[instance.pk], using=using)


def connect_signals() -> None:
    """From the jobs app's ready(): in every process, so a revocation made anywhere is announced."""
    user_model = get_user_model()
    for name, signal in (("save", signals.post_save), ("delete", signals.post_delete)):
        signal.connect(_token_changed, sender=Token, dispatch_uid=f"token-cache-token-{name}")
        signal.connect(_user_changed, sender=user_model, dispatch_uid=f"token-cache-user-{name}")
