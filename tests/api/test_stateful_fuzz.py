"""Stateful fuzzing: schemathesis walks the OpenAPI links (jobs.api.schema.LINKS) from create and list
through render, segments, segment actions and images to retrieve and delete, with generated data at
every step, and checks each answer: no 5xx, a status code the schema declares, the declared content
type and headers, a body that matches the declared schema.

The budget is fixed (a handful of scenarios of a few steps each, derandomized), so the pass is
repeatable and fits the normal SQLite run. Renders are never performed: the test's transaction never
commits, so the on-commit dispatch of render work never fires; the state changes themselves (draft ->
queued -> cancelled, prompt edits, deletes) are real.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from django.core.cache import cache
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, Phase, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from callbacks.models import CallbackEvent, Delivery, WebhookEndpoint
from idempotency.models import IdempotencyKey
from jobs.models import VideoJob

from .test_schema import _keep_test_connection, fuzz_limits  # noqa: F401 (a fixture, used by name)

pytestmark = pytest.mark.django_db

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

BUDGET = settings(
    max_examples=60,
    stateful_step_count=8,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def state_machine(headers: dict[str, str]) -> type:
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    base = schema.as_state_machine()

    class JobLifecycle(base):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": headers}

        def validate_response(self, response: Any, case: schemathesis.Case, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS, headers=headers)

        def teardown(self) -> None:
            # Every scenario starts from no jobs: Hypothesis replays scenarios to shrink them, and one that
            # met the jobs of the scenarios before it would draw differently the second time.
            # Everything a scenario can create counts: webhook endpoints (and their events and
            # deliveries) and Idempotency-Key answers as well as jobs.
            VideoJob.objects.all().delete()
            for model in (Delivery, CallbackEvent, WebhookEndpoint, IdempotencyKey):
                model.objects.all().delete()
            cache.clear()  # the throttle's counters

    return JobLifecycle


def test_links_are_declared_between_create_render_segments_and_delete():
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    document = schema.raw_schema
    created = document["paths"]["/api/video-jobs/"]["post"]["responses"]["201"]["links"]
    assert {"video_jobs_render", "segments_list", "segments_partial_update", "video_jobs_destroy"} <= set(
        created
    )
    assert created["segments_rerender"]["parameters"] == {
        "job_id": "$response.body#/id",
        "index": "$response.body#/segments/0/index",
    }
    # Every link names an operation that exists.
    operation_ids = {op["operationId"] for item in document["paths"].values() for op in item.values()}
    targets = {
        link["operationId"]
        for item in document["paths"].values()
        for op in item.values()
        for response in op["responses"].values()
        for link in response.get("links", {}).values()
    }
    assert targets <= operation_ids


@pytest.mark.usefixtures("fuzz_limits")
def test_stateful_fuzz_finds_no_server_error_and_no_schema_mismatch(user, settings):
    # The create throttle would turn most of the walk into 429s (declared, but a dead end).
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "video_job_create": "100000/hour"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    headers = {"Authorization": f"Token {Token.objects.create(user=user).key}"}
    with _keep_test_connection():
        machine = state_machine(headers)
        machine.run(settings=BUDGET)
