"""Compiled queries on PostgreSQL, which takes parameters in other forms than SQLite (`make
test-postgres`), and sends queries together in a pipeline."""

from __future__ import annotations

import psycopg
import pytest
from django.db import DataError, connection
from django.db.models import F, Value
from django.test.utils import CaptureQueriesContext

from jobs import selectors
from jobs.models import VideoJob
from sora_controller.compiled_queries import CompiledQuery, Marker, fetch_together
from tests.factories import VideoJobFactory
from tests.support.postgres import POSTGRES_ONLY

from .compiled_query_checks import CompiledQueryChecks

pytestmark = POSTGRES_ONLY


class TestCompiledQueriesOnPostgres(CompiledQueryChecks):
    pass


class TestFetchTogether:
    """Compiled queries sent together in one psycopg pipeline (the job detail's job and segments)."""

    def test_answers_as_each_fetch_would_in_one_pipeline(self, monkeypatch) -> None:
        job = VideoJobFactory(shots=("A fox runs.", "It jumps."))
        pipelines = []
        real = psycopg.Connection.pipeline
        monkeypatch.setattr(psycopg.Connection, "pipeline", lambda conn: pipelines.append(1) or real(conn))
        shape = selectors._DetailShape(staff=False, annotations={})
        with CaptureQueriesContext(connection) as queries:
            found, segments = fetch_together(
                (selectors._JOB, {"shape": shape, "job_id": job.id, "user_id": job.owner_id}),
                (selectors._SEGMENTS, {"job_id": job.id}),
            )
        assert pipelines == [1] and len(queries.captured_queries) == 2
        assert [j.id for j in found] == [job.id]
        assert segments == list(job.segments.order_by("index"))
        assert [s.prompt for s in segments] == ["A fox runs.", "It jumps."]

    def test_a_failing_query_raises_the_orms_error_and_the_connection_goes_on(self) -> None:
        job = VideoJobFactory()
        broken = CompiledQuery(
            lambda shape, job_id: VideoJob.objects.filter(id=job_id).annotate(bad=F("fps") / Value(0)),
            job_id=Marker.UUID,
        )
        with pytest.raises(DataError):
            fetch_together((selectors._SEGMENTS, {"job_id": job.id}), (broken, {"job_id": job.id}))
        assert VideoJob.objects.filter(id=job.id).exists()

    def test_unknown_arguments_are_refused(self) -> None:
        with pytest.raises(TypeError, match="job_id"):
            fetch_together((selectors._SEGMENTS, {"id": "x"}))
