"""The compiled insert of a job with its segments (sora_controller.compiled_queries.CompiledInsert), on
PostgreSQL, the one database it compiles for: the rows are the ORM's, one statement writes them all or
nothing, and whatever it leaves to the ORM is written by the ORM."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import signals
from django.test.utils import CaptureQueriesContext
from psycopg._queries import MAX_CACHED_STATEMENT_PARAMS  # private: the limit this insert keeps under
from rest_framework.test import APIClient

from jobs import services
from jobs.models import Segment, VideoJob
from jobs.planning import JobSpec, plan_job
from sora_controller.compiled_queries import CompiledInsert
from tests.factories import UserFactory
from tests.jobs.test_file_urls import cyclic_garbage
from tests.support.postgres import POSTGRES_ONLY

pytestmark = POSTGRES_ONLY

SPEC = JobSpec(prompt="A fox runs. It jumps. It sleeps.", duration_seconds=30)
# Set by the database or the clock, different for every job.
UNSHARED = {"id", "job_id", "created_at", "updated_at"}


def rows(job_id) -> tuple[dict, list[dict]]:
    """The job's row and its segments' rows as the database holds them, without what differs per job."""
    job = VideoJob.objects.filter(id=job_id).values().get()
    segments = Segment.objects.filter(job_id=job_id).order_by("index").values()
    keep = lambda row: {k: v for k, v in row.items() if k not in UNSHARED}  # noqa: E731
    return keep(job), [keep(segment) for segment in segments]


def orm_insert(monkeypatch) -> None:
    monkeypatch.setattr(services._JOB_WITH_SEGMENTS, "insert", lambda *args, **kwargs: False)


def test_the_rows_written_are_the_orms(monkeypatch) -> None:
    owner = UserFactory()
    compiled = services.video_job_submit(owner=owner, spec=SPEC, attach_written=True)
    orm_insert(monkeypatch)
    by_orm = services.video_job_submit(owner=owner, spec=SPEC, attach_written=True)
    assert rows(compiled.id) == rows(by_orm.id)
    # The instances come back as the ORM leaves them: saved, with the ids the database gave.
    segments = list(compiled.segments.all())
    assert [s.id for s in segments] == list(
        Segment.objects.filter(job=compiled).order_by("index").values_list("id", flat=True)
    )
    assert all(not s._state.adding and s._state.db == "default" for s in [compiled, *segments])
    stored = VideoJob.objects.get(id=compiled.id)
    assert (stored.created_at, stored.updated_at) == (compiled.created_at, compiled.updated_at)


def test_a_draft_is_one_statement_and_no_transaction_of_its_own() -> None:
    owner = UserFactory()
    with CaptureQueriesContext(connection) as queries:
        job = services.video_job_submit(owner=owner, spec=SPEC)
    assert len(queries.captured_queries) == 1, queries.captured_queries
    assert queries.captured_queries[0]["sql"].startswith('WITH "compiled_insert_parent" AS (INSERT')
    assert Segment.objects.filter(job=job).count() == 3


def test_a_failing_child_leaves_no_job() -> None:
    owner = UserFactory()
    job = VideoJob(owner=owner, prompt="A fox runs.", duration_seconds=20, segment_seconds=10)
    twins = [Segment(job=job, index=0, prompt="A fox runs.", start_seconds=0, end_seconds=10) for _ in "ab"]
    with pytest.raises(IntegrityError):
        services._JOB_WITH_SEGMENTS.insert(job, twins)  # segment_unique_index: one statement, all refused
    assert not VideoJob.objects.filter(id=job.id).exists()
    assert not Segment.objects.exists()


def test_a_failure_inside_a_transaction_rolls_the_transaction_back() -> None:
    owner = UserFactory()
    job = VideoJob(owner=owner, prompt="A fox runs.", duration_seconds=20, segment_seconds=10)
    twins = [Segment(job=job, index=0, prompt="A fox runs.", start_seconds=0, end_seconds=10) for _ in "ab"]
    with pytest.raises(IntegrityError), transaction.atomic():
        UserFactory(username="written-before")
        try:
            services._JOB_WITH_SEGMENTS.insert(job, twins)
        finally:
            # As the ORM's own writes do (mark_for_rollback_on_error): the transaction cannot go on.
            assert transaction.get_rollback()
    assert not VideoJob.objects.exists()
    assert not UserFactory._meta.model.objects.filter(username="written-before").exists()


def test_a_refusal_after_the_job_is_written_takes_the_job_back() -> None:
    # With another app's part in the transaction (here refusing), the one statement is inside it.
    owner = UserFactory()

    def refuse(job: VideoJob) -> None:
        assert VideoJob.objects.filter(id=job.id).exists()
        raise ValueError("the other part could not be stored")

    with pytest.raises(ValueError, match="other part"):
        services.video_job_submit(owner=owner, spec=SPEC, also=refuse)
    assert not VideoJob.objects.exists() and not Segment.objects.exists()


def test_with_save_listeners_the_orm_saves_and_they_hear_it() -> None:
    heard: list[VideoJob] = []

    def listener(sender, instance, **kwargs) -> None:
        heard.append(instance)

    signals.post_save.connect(listener, sender=VideoJob)
    try:
        job = services.video_job_submit(owner=UserFactory(), spec=SPEC)
    finally:
        signals.post_save.disconnect(listener, sender=VideoJob)
    assert heard == [job]
    assert Segment.objects.filter(job=job).count() == 3


def test_what_it_leaves_to_the_orm_it_does_not_write() -> None:
    owner = UserFactory()
    insert = CompiledInsert(VideoJob, Segment)
    plan = plan_job(SPEC).plan
    fields = {"owner": owner, "prompt": "A fox runs.", "duration_seconds": 30, "segment_seconds": 10}
    without_pk = VideoJob(**fields)
    without_pk.id = None
    assert not insert.insert(without_pk, [])
    job = VideoJob(**fields)
    with_pk = services.planned_segments(job, plan)
    with_pk[0].id = 10_000
    assert not insert.insert(job, with_pk)
    assert not VideoJob.objects.exists() and not Segment.objects.exists()
    assert insert.insert(job, services.planned_segments(job, plan))
    assert Segment.objects.filter(job=job).count() == len(plan.segments)


def awkward_segments(job: VideoJob) -> list[Segment]:
    """Segments whose values test the JSON road: quotes, escapes, emoji and CJK, floats with no short
    decimal form, exact money, an instant with microseconds in another time zone, nulls, flags."""
    kolkata = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
    return [
        Segment(
            job=job,
            index=index,
            prompt="He said \"cut!\" \\ then 'ran'\n\tunder 雨 🎬 \u2028 end",
            start_seconds=0.1 + 0.2 + index,
            end_seconds=1 / 3 + index + 1,
            render_seconds=5e-324,
            provider="fal",
            model="kling-v2",
            provider_status="in_progress",
            attempts=3,
            cost_usd=Decimal("1234.5678"),
            error="",
            bypass_cache=True,
            take_number=7,
            lease_token="t" * 32,
            lease_expires_at=datetime.datetime(2026, 11, 30, 14, 5, 6, 789012, tzinfo=kolkata),
            lease_waiting=True,
        )
        for index in range(2)
    ]


def test_awkward_values_arrive_as_the_orm_writes_them() -> None:
    owner = UserFactory()
    fields = {"owner": owner, "prompt": "A fox runs.", "duration_seconds": 20, "segment_seconds": 10}
    compiled, by_orm = VideoJob(**fields), VideoJob(**fields)
    assert services._JOB_WITH_SEGMENTS.insert(compiled, awkward_segments(compiled))
    with transaction.atomic():
        by_orm.save(force_insert=True)
        Segment.objects.bulk_create(awkward_segments(by_orm))
    assert rows(compiled.id) == rows(by_orm.id)
    segment = Segment.objects.filter(job=compiled).order_by("index").first()
    assert segment.start_seconds == 0.1 + 0.2 and segment.render_seconds == 5e-324
    assert segment.lease_expires_at == datetime.datetime(2026, 11, 30, 8, 35, 6, 789012, tzinfo=datetime.UTC)


def test_a_value_without_an_exact_json_form_is_left_to_the_orm() -> None:
    owner = UserFactory()
    job = VideoJob(owner=owner, prompt="A fox runs.", duration_seconds=10, segment_seconds=10)
    segment = Segment(job=job, index=0, prompt="A fox runs.", start_seconds=0, end_seconds=float("inf"))
    assert not services._JOB_WITH_SEGMENTS.insert(job, [segment])
    assert not VideoJob.objects.exists() and not Segment.objects.exists()


def test_the_children_are_one_parameter_so_psycopg_keeps_the_parsed_statement() -> None:
    # psycopg parses a statement of more parameters again on every call (a fifth of a create's CPU).
    compiled = services._JOB_WITH_SEGMENTS._compile("default")
    assert compiled.sql.count("%s") == len(compiled.parent_fields) + 1 <= MAX_CACHED_STATEMENT_PARAMS


def test_a_draft_create_leaves_no_segment_to_the_garbage_collector(user) -> None:
    client = APIClient()
    client.force_authenticate(user)
    body = {"prompt": "A fox runs. It jumps. It sleeps.", "duration_seconds": 30, "render": False}

    def create() -> None:
        assert len(client.post("/api/video-jobs/", body, format="json").json()["segments"]) == 3

    # The new segments and their (empty) file fields go by reference counting once answered.
    cyclic = cyclic_garbage(create)
    assert not cyclic & {Segment.__name__, "FieldFile"}, cyclic
