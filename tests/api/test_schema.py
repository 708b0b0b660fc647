"""The OpenAPI document: valid, served, self-hosted docs, and fuzzed by schemathesis without a 5xx."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import schemathesis
from django.contrib.staticfiles import finders
from django.core import signals
from django.core.management import call_command
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from jobs import services

from .conftest import image_bytes, upload

pytestmark = pytest.mark.django_db


def test_schema_validates_without_warnings(tmp_path):
    # The same command CI can run; --fail-on-warn turns any unresolved type or name collision into an error.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "openapi: 3." in (tmp_path / "schema.yaml").read_text()


def test_schema_is_served(anon):
    response = anon.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    paths = set(document["paths"])
    assert {
        "/api/video-jobs/",
        "/api/video-jobs/{job_id}/",
        "/api/video-jobs/{job_id}/segments/{index}/",
        "/api/video-jobs/{job_id}/reference-images/",
        "/api/video-jobs/{job_id}/estimate/",
        "/api/estimate/",
        "/api/budget/",
    } <= paths
    assert set(document["components"]["securitySchemes"]) == {"cookieAuth", "tokenAuth"}


def test_docs_load_assets_from_our_own_static_files(anon):
    response = anon.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    assert not [a for a in assets if re.match(r"^(https?:)?//", a)], assets
    assert not re.search(r"https?://(?!testserver)", html), (
        "no CDN or other outside host anywhere in the page"
    )
    for asset in assets:
        # Each one is a file this project serves (from drf-spectacular-sidecar).
        assert asset.startswith("/static/") and finders.find(asset.removeprefix("/static/")), asset


# --- schemathesis -----------------------------------------------------------------------------------


@contextmanager
def _keep_test_connection() -> Iterator[None]:
    # A WSGI request fires request_started/finished, whose close_old_connections would close the
    # connection holding the test's transaction; Django's own test client disconnects them the same way.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


FUZZ = settings(
    max_examples=15,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def _fuzz(strategy: st.SearchStrategy, checks: list, headers: dict[str, str]) -> None:
    @FUZZ
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        response = case.call(headers=headers)
        case.validate_response(response, checks=checks, headers=headers)

    run()


@pytest.fixture
def fuzz_limits(settings):
    """Production's limits, scaled down. The document (and so the generated data) follows the settings, so
    an example plans at most a dozen segments of short text and a pass keeps to its time budget; with the
    full limits one valid create of 200,000 characters and 180 segments can take seconds."""
    settings.MAX_DURATION_SECONDS = 120.0
    settings.MAX_JOB_PROMPT_CHARS = 2000
    settings.MAX_SEGMENT_PROMPT_CHARS = 500


def test_schemathesis_finds_no_server_error(user, make_job, fuzz_limits):
    key = Token.objects.create(user=user).key
    job = make_job(duration_seconds=30)
    image = services.reference_image_add(job=job, upload=upload(image_bytes()))
    headers = {"Authorization": f"Token {key}"}
    with _keep_test_connection():
        schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
        operations = [result.ok() for result in schema.get_all_operations()]
        # Deleting the job last keeps the real job reachable for the other operations.
        operations.sort(
            key=lambda op: op.method.upper() == "DELETE" and op.path == "/api/video-jobs/{job_id}/"
        )
        assert len(operations) >= 17
        failures: list[str] = []
        for operation in operations:
            has_input = len(operation.query) + len(operation.body) > 0
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
                negative = mode is schemathesis.GenerationMode.NEGATIVE
                # Negative data needs something to break: parameters or a body.
                if negative and not (has_input or len(operation.path_parameters)):
                    continue
                strategies = [operation.as_strategy(generation_mode=mode)]
                if "{job_id}" in operation.path and (has_input or not negative):
                    # Random ids only ever reach the 404 path; the real job exercises the rest.
                    real = {"job_id": str(job.id), "index": 0, "image_id": image.id}
                    fixed = {k: v for k, v in real.items() if "{" + k + "}" in operation.path}
                    strategies.append(operation.as_strategy(generation_mode=mode, path_parameters=fixed))

                checks = [not_a_server_error, status_code_conformance]
                if not negative:
                    checks.append(response_schema_conformance)
                try:
                    _fuzz(st.one_of(strategies), checks, headers)
                except Exception as exc:  # collect every operation's failure, then report them together
                    failures.append(f"{operation.label} [{mode}]: {exc}")
    assert not failures, "\n\n".join(failures)
