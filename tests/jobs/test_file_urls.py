"""A stored file's URL, read without building Django's FieldFile (jobs.events.stored_url), and a job
detail that leaves none of its segments to the garbage collector (a draft create's, on PostgreSQL:
tests/jobs/test_compiled_insert_postgres.py)."""

from __future__ import annotations

import gc
from collections.abc import Callable

import pytest
from django.core.files.base import ContentFile
from rest_framework.test import APIClient

from jobs.events import file_url, stored_url
from jobs.models import Segment
from tests.factories import VideoJobFactory

pytestmark = pytest.mark.django_db


def test_a_loaded_name_gives_the_fieldfiles_url_without_building_one(user):
    job = VideoJobFactory(owner=user)
    segment = job.segments.order_by("index").first()
    segment.clip.save("clip.mp4", ContentFile(b"\x00" * 16))
    loaded = Segment.objects.get(id=segment.id)
    url = stored_url(loaded, "clip")
    assert isinstance(loaded.__dict__["clip"], str)  # the name only: no FieldFile was built
    assert url == loaded.clip.url and url.endswith(".mp4")
    # Empty fields have no URL, as `if field_file` says; the reader's form applies to the rest.
    assert stored_url(loaded, "thumbnail") is None and file_url(loaded, "thumbnail") is None
    assert file_url(loaded, "clip", lambda url: "https://x.test" + url) == "https://x.test" + url


def test_files_set_in_code_and_deferred_fields_go_through_django(user):
    job = VideoJobFactory(owner=user)
    segment = job.segments.order_by("index").first()
    segment.clip.save("clip.mp4", ContentFile(b"\x00" * 16))  # a FieldFile on the instance
    assert stored_url(segment, "clip") == segment.clip.url
    deferred = Segment.objects.defer("clip").get(id=segment.id)
    assert stored_url(deferred, "clip") == segment.clip.url


def cyclic_garbage(request: Callable[[], None], times: int = 3) -> set[str]:
    """The names of the types the garbage collector finds only in cycles after `request` ran `times`."""
    request()
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds unreachable is kept in gc.garbage
    try:
        for _ in range(times):
            request()
        gc.collect()
        return {type(o).__name__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def test_a_job_detail_leaves_no_segment_to_the_garbage_collector(user):
    job = VideoJobFactory(owner=user, prompt="A fox runs. It jumps. It sleeps.", duration_seconds=30)
    client = APIClient()
    client.force_authenticate(user)

    def detail() -> None:
        assert len(client.get(f"/api/video-jobs/{job.id}/").json()["segments"]) == 3

    cyclic = cyclic_garbage(detail)
    # The segments and their file fields went when the request let go of them.
    assert not cyclic & {Segment.__name__, "FieldFile"}, cyclic
