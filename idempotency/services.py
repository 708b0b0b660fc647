"""Writes on idempotency keys: claim a key for a request, store its answer, release it, purge the old.

A claim is an INSERT on the unique (owner, key) pair, so of N concurrent requests with one key exactly
one inserts and runs; the others find its row and are told it is in progress (409) or, once it has
answered, get that answer back. Nothing here holds a lock while the request itself runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone
from rest_framework import exceptions

from .errors import HEADER, KeyInProgress, KeyReused
from .models import IdempotencyKey, KeyState

MAX_KEY_LENGTH = 255
# Printable ASCII without spaces: UUIDs, ULIDs and random tokens all fit; nothing that could be
# mangled by a proxy or mistaken for a list separator does.
_KEY_PATTERN = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True)
class Claimed:
    """This request holds the key: run it, then call idempotency_key_complete or _release."""

    record: IdempotencyKey


@dataclass(frozen=True)
class Replay:
    """The key was answered before: send this answer again."""

    record: IdempotencyKey


def check_key(raw: str) -> str:
    """The header's value if it is a valid key, else a 400 naming the header."""
    if not raw or len(raw) > MAX_KEY_LENGTH:
        message = f"must be 1 to {MAX_KEY_LENGTH} characters long (got {len(raw)})."
    elif not _KEY_PATTERN.fullmatch(raw):
        message = "may contain only printable ASCII characters without spaces (a UUID is a good key)."
    else:
        return raw
    raise exceptions.ValidationError({HEADER: [message]})


def idempotency_key_claim(
    *, owner: Any, key: str, fingerprint: str, method: str, path: str, now: datetime | None = None
) -> Claimed | Replay:
    """Claim `key` for this request, or say why not: KeyReused (another request used it), KeyInProgress
    (its first request is still running), or Replay (it has been answered)."""
    now = now or timezone.now()
    for _ in range(3):  # an expired row is removed and the claim tried again; twice is enough
        try:
            record, created = IdempotencyKey.objects.get_or_create(
                owner=owner,
                key=key,
                defaults={
                    "fingerprint": fingerprint,
                    "method": method,
                    "path": path[:2000],
                    "locked_at": now,
                    "expires_at": now + timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS),
                },
            )
        except IntegrityError:  # inserted and deleted by others between our SELECT and INSERT
            continue
        if created:
            return Claimed(record)
        if record.expires_at <= now:
            IdempotencyKey.objects.filter(pk=record.pk, expires_at__lte=now).delete()
            continue
        if record.fingerprint != fingerprint:
            raise KeyReused()
        if record.state == KeyState.COMPLETED:
            return Replay(record)
        return _take_over_abandoned(record, now)
    raise KeyInProgress()


def _take_over_abandoned(record: IdempotencyKey, now: datetime) -> Claimed:
    """A claim older than IDEMPOTENCY_LOCK_SECONDS was left by a process that died mid-request (a
    finished request always completes or releases its key): let this retry run instead."""
    cutoff = now - timedelta(seconds=settings.IDEMPOTENCY_LOCK_SECONDS)
    if record.locked_at < cutoff:
        taken = IdempotencyKey.objects.filter(
            pk=record.pk, state=KeyState.IN_PROGRESS, locked_at=record.locked_at
        ).update(locked_at=now)
        if taken == 1:
            record.locked_at = now
            return Claimed(record)
    raise KeyInProgress()


def idempotency_key_complete(
    *, record: IdempotencyKey, status: int, body: str, headers: dict[str, str]
) -> bool:
    """Store the answer of the request holding `record`. False if it lost its claim meanwhile."""
    return (
        IdempotencyKey.objects.filter(
            pk=record.pk, state=KeyState.IN_PROGRESS, locked_at=record.locked_at
        ).update(
            state=KeyState.COMPLETED,
            response_status=status,
            response_body=body,
            response_headers=headers,
            completed_at=timezone.now(),
        )
        == 1
    )


def idempotency_key_release(*, record: IdempotencyKey) -> None:
    """Forget a claim whose request failed on our side (5xx), so the client's retry runs again."""
    IdempotencyKey.objects.filter(
        pk=record.pk, state=KeyState.IN_PROGRESS, locked_at=record.locked_at
    ).delete()


def idempotency_key_purge(*, now: datetime | None = None) -> int:
    """Delete expired keys; returns how many."""
    deleted, _ = IdempotencyKey.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted
