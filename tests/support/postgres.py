"""The marks of a test module that needs PostgreSQL itself (row locks, concurrent transactions).

A plain `pytest` on the embedded SQLite default skips such modules; CI (REQUIRE_SERVICES=1) never does,
so a missing server fails there."""

from __future__ import annotations

import os

import pytest
from django.conf import settings

ON_POSTGRES = "postgresql" in settings.DATABASES["default"]["ENGINE"]

POSTGRES_ONLY = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not ON_POSTGRES and os.environ.get("REQUIRE_SERVICES") != "1",
        reason="needs PostgreSQL: run `make test-postgres`",
    ),
]
