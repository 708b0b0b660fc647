"""The API tests' clients and settings, shared with the Idempotency-Key tests."""

from __future__ import annotations

from tests.api.conftest import _api_settings, api, make_job, other_api  # noqa: F401
