"""Checks of sora_controller.compiled_queries and the reads built on it, shared by the SQLite module
(test_compiled_queries.py) and the PostgreSQL one (test_compiled_queries_postgres.py): the compiled SQL
writes values differently on each (a UUID is hex text on SQLite, a uuid on PostgreSQL)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import signals
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs import selectors
from jobs.api.output_serializers import SAVED_ANNOTATION, saved_annotation
from jobs.models import SpendEntry, SpendKind, VideoJob
from sora_controller import compiled_queries
from sora_controller.compiled_queries import CompiledQuery, Marker
from tests.factories import UserFactory, VideoJobFactory


def orm_detail(job_id) -> VideoJob:
    return VideoJob.objects.annotate(**saved_annotation()).select_related("owner").get(id=job_id)


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


class CompiledQueryChecks:
    def test_the_detail_is_what_the_orm_reads(self) -> None:
        job = VideoJobFactory(shots=("A fox runs.", "It jumps.", "It sleeps."))
        for amount in ("0.40", "0.35"):
            SpendEntry.objects.create(
                job=job, owner=job.owner, kind=SpendKind.CACHE_SAVING, amount_usd=Decimal(amount)
            )
        compiled = selectors.video_job_detail(user=job.owner, job_id=job.id, annotations=saved_annotation())
        expected = orm_detail(job.id)
        fields = [field.attname for field in VideoJob._meta.concrete_fields]
        assert [getattr(compiled, name) for name in fields] == [getattr(expected, name) for name in fields]
        assert getattr(compiled, SAVED_ANNOTATION) == Decimal("0.75") == getattr(expected, SAVED_ANNOTATION)
        assert compiled.owner == job.owner
        segments = list(compiled.segments.all())
        assert [s.prompt for s in segments] == ["A fox runs.", "It jumps.", "It sleeps."]
        assert [s.index for s in segments] == [0, 1, 2]
        assert all(s.job is compiled for s in segments)  # no query to get back to the job

    def test_a_second_call_compiles_nothing_and_reads_the_new_values(self) -> None:
        owner = UserFactory()
        first, second = VideoJobFactory(owner=owner), VideoJobFactory(owner=owner, prompt="A heron waits.")
        selectors.video_job_detail(user=owner, job_id=first.id)
        shapes = dict(selectors._JOB._compiled)
        again = selectors.video_job_detail(user=owner, job_id=second.id)
        assert selectors._JOB._compiled == shapes
        assert again.id == second.id and again.prompt == "A heron waits."

    def test_another_persons_job_is_not_found_but_staff_see_it(self) -> None:
        job = VideoJobFactory()
        stranger = UserFactory()
        assert selectors.video_job_detail(user=stranger, job_id=job.id) is None
        staff = UserFactory(is_staff=True)
        seen = selectors.video_job_detail(user=staff, job_id=job.id)
        assert seen is not None and seen.owner.get_username() == job.owner.get_username()
        # The owner's shape is still scoped after the staff shape was compiled.
        assert selectors.video_job_detail(user=stranger, job_id=job.id) is None

    def test_a_filter_on_the_attached_segments_stays_within_the_job(self) -> None:
        owner = UserFactory()
        job = VideoJobFactory(owner=owner)
        VideoJobFactory(owner=owner)  # more segments in the table, of another job
        loaded = selectors.video_job_detail(user=owner, job_id=job.id)
        expected = set(job.segments.all())
        with CaptureQueriesContext(connection) as queries:
            attached = set(loaded.segments.all())
        assert attached == expected
        assert not queries.captured_queries, queries.captured_queries  # .all() read nothing
        assert set(loaded.segments.filter(index__gte=0)) == set(job.segments.all())

    def test_a_revoked_token_or_inactive_user_is_refused_on_the_next_call(self) -> None:
        job = VideoJobFactory()
        client = token_client(job.owner)
        url = f"/api/video-jobs/{job.id}/"
        assert client.get(url).status_code == 200
        Token.objects.filter(user=job.owner).delete()
        assert client.get(url).status_code == 401
        client = token_client(job.owner)
        assert client.get(url).status_code == 200
        job.owner.is_active = False
        job.owner.save()
        response = client.get(url)
        assert response.status_code == 401 and "inactive" in response.json()["detail"]

    def test_the_job_and_its_segments_come_in_one_round_trip_on_postgresql(self) -> None:
        job = VideoJobFactory(shots=("A fox runs.", "It jumps."))
        with CaptureQueriesContext(connection) as queries:
            loaded = selectors.video_job_detail(user=job.owner, job_id=job.id)
        statements = [query["sql"] for query in queries.captured_queries]
        if connection.vendor == "postgresql":
            (both,) = statements  # one execute: the job's statement; the segments'
            assert both.count("SELECT") >= 2 and '"jobs_segment"' in both
        else:
            assert len(statements) == 2
        assert [s.prompt for s in loaded.segments.all()] == ["A fox runs.", "It jumps."]

    def test_with_server_side_binding_the_statements_go_one_by_one(self, monkeypatch) -> None:
        # psycopg's server-side binding takes one statement per call.
        monkeypatch.setitem(connection.settings_dict["OPTIONS"], "server_side_binding", True)
        job = VideoJobFactory(shots=("A fox runs.", "It jumps."))
        with CaptureQueriesContext(connection) as queries:
            loaded = selectors.video_job_detail(user=job.owner, job_id=job.id)
        assert len(queries.captured_queries) == 2
        assert [s.index for s in loaded.segments.all()] == [0, 1]

    def test_fetch_together_answers_as_each_fetch_would(self) -> None:
        owner = UserFactory()
        first, second = VideoJobFactory(owner=owner), VideoJobFactory(owner=owner, prompt="A heron waits.")
        by_id = CompiledQuery(lambda shape, job_id: VideoJob.objects.filter(id=job_id), job_id=Marker.UUID)
        by_owner = CompiledQuery(
            lambda shape, owner_id: VideoJob.objects.filter(owner_id=owner_id).order_by(shape),
            owner_id=Marker.INT,
        )
        together = compiled_queries.fetch_together(
            (by_id, None, {"job_id": second.id}),
            (by_owner, "created_at", {"owner_id": owner.pk}),
            (by_id, None, {"job_id": VideoJob._meta.pk.default()}),
        )
        assert [[job.id for job in found] for found in together] == [[second.id], [first.id, second.id], []]
        assert together[0][0].prompt == "A heron waits." and together[0][0]._state.adding is False
        with pytest.raises(TypeError, match="job_id"):
            compiled_queries.fetch_together((by_id, None, {"id": first.id}))

    def test_another_persons_segments_are_not_read_even_together(self) -> None:
        job = VideoJobFactory(shots=("A fox runs.", "It jumps.", "It sleeps."))
        stranger, staff = UserFactory(), UserFactory(is_staff=True)
        for viewer, expected in ((stranger, 0), (job.owner, 3), (staff, 3)):
            (segments,) = compiled_queries.fetch_together(
                (selectors._VISIBLE_SEGMENTS, viewer.is_staff, {"job_id": job.id, "user_id": viewer.pk})
            )
            assert len(segments) == expected
        assert selectors.video_job_detail(user=stranger, job_id=job.id) is None

    def test_a_token_that_is_not_a_key_is_refused(self) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Marker.STR.strip()}")
        assert client.get("/api/video-jobs/").status_code == 401


@pytest.mark.django_db
class TestCompiledQueryRules:
    """Rules of the mechanism itself (on whatever database the run uses)."""

    def test_fetch_refuses_arguments_it_does_not_know(self) -> None:
        query = CompiledQuery(lambda shape, job_id: VideoJob.objects.filter(id=job_id), job_id=Marker.UUID)
        with pytest.raises(TypeError, match="job_id"):
            query.fetch(id="x")

    def test_prefetches_are_refused(self) -> None:
        query = CompiledQuery(
            lambda shape, job_id: VideoJob.objects.filter(id=job_id).prefetch_related("segments"),
            job_id=Marker.UUID,
        )
        with pytest.raises(TypeError, match="prefetch"):
            query.fetch(job_id=VideoJobFactory().id)

    def test_past_the_shape_limit_the_orm_answers(self, monkeypatch) -> None:
        monkeypatch.setattr(compiled_queries, "MAX_SHAPES", 1)
        query = CompiledQuery(
            lambda shape, job_id: VideoJob.objects.filter(id=job_id, prompt__startswith=shape),
            job_id=Marker.UUID,
        )
        job = VideoJobFactory(prompt="A heron waits.")
        assert [j.id for j in query.fetch(shape="A heron", job_id=job.id)] == [job.id]
        assert [j.id for j in query.fetch(shape="A fox", job_id=job.id)] == []
        assert [j.id for j in query.fetch(shape="A her", job_id=job.id)] == [job.id]
        assert len(query._compiled) == 1

    def test_together_past_the_shape_limit_each_is_fetched_by_the_orm(self, monkeypatch) -> None:
        monkeypatch.setattr(compiled_queries, "MAX_SHAPES", 0)
        job = VideoJobFactory(shots=("A fox runs.", "It jumps."))
        loaded = selectors.video_job_detail(user=job.owner, job_id=job.id)
        assert loaded.id == job.id and [s.index for s in loaded.segments.all()] == [0, 1]

    def test_first_is_the_first_instance_or_none(self) -> None:
        query = CompiledQuery(
            lambda shape, job_id: VideoJob.objects.filter(id=job_id).order_by()[:1], job_id=Marker.UUID
        )
        job = VideoJobFactory()
        assert query.first(job_id=job.id).id == job.id
        assert query.first(job_id=VideoJob._meta.pk.default()) is None

    def test_instances_are_loaded_rows_that_save_as_updates(self) -> None:
        job = VideoJobFactory()
        loaded = selectors.video_job_detail(user=job.owner, job_id=job.id)
        assert loaded._state.adding is False and loaded._state.db == "default"
        loaded.title = "A new title"
        loaded.save(update_fields=["title"])
        assert VideoJob.objects.get(id=job.id).title == "A new title"
        assert VideoJob.objects.count() == 1


@pytest.mark.django_db
class TestPlainInstances:
    def test_a_model_someone_listens_to_is_built_by_its_own_init(self) -> None:
        job = VideoJobFactory()
        seen: list[VideoJob] = []

        def listener(sender, instance, **kwargs):
            seen.append(instance)

        query = CompiledQuery(lambda shape, job_id: VideoJob.objects.filter(id=job_id), job_id=Marker.UUID)
        signals.post_init.connect(listener, sender=VideoJob)
        try:
            (loaded,) = query.fetch(job_id=job.id)
        finally:
            signals.post_init.disconnect(listener, sender=VideoJob)
        assert seen == [loaded]
        assert not next(iter(query._compiled.values())).plain

    def test_without_listeners_rows_are_written_straight_in(self) -> None:
        job = VideoJobFactory()
        query = CompiledQuery(lambda shape, job_id: VideoJob.objects.filter(id=job_id), job_id=Marker.UUID)
        (loaded,) = query.fetch(job_id=job.id)
        assert next(iter(query._compiled.values())).plain
        fields = [field.attname for field in VideoJob._meta.concrete_fields]
        expected = VideoJob.objects.get(id=job.id)
        assert [getattr(loaded, name) for name in fields] == [getattr(expected, name) for name in fields]
