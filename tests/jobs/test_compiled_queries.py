"""Compiled queries on the database of the run (SQLite on the embedded default)."""

from __future__ import annotations

import pytest

from .compiled_query_checks import CompiledQueryChecks, TestCompiledQueryRules, TestPlainInstances  # noqa: F401


@pytest.mark.django_db
class TestCompiledQueries(CompiledQueryChecks):
    pass
