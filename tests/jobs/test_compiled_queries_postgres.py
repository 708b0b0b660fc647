"""Compiled queries on PostgreSQL, which takes parameters in other forms than SQLite (`make
test-postgres`)."""

from __future__ import annotations

from tests.support.postgres import POSTGRES_ONLY

from .compiled_query_checks import CompiledQueryChecks

pytestmark = POSTGRES_ONLY


class TestCompiledQueriesOnPostgres(CompiledQueryChecks):
    pass
