"""A segment has one shape wherever it is read: the REST API, the socket's snapshot and its events."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from jobs import render_state, services
from jobs.api.output_serializers import SegmentSerializer
from jobs.events import job_state, segment_state
from jobs.selectors import video_job_detail

pytestmark = pytest.mark.django_db


def draft(owner):
    return services.video_job_create(
        owner=owner, prompt="A fox runs. It jumps.", duration_seconds=20, size="320x240"
    )


def test_the_api_schema_declares_exactly_the_shape_it_renders(user):
    rendered = segment_state(draft(user).segments.first())
    assert set(SegmentSerializer().fields) == set(rendered)


def test_api_snapshot_and_event_agree_on_every_segment(user, django_capture_on_commit_callbacks):
    job = services.video_job_render(job=draft(user))
    first = job.segments.order_by("index").first()
    with django_capture_on_commit_callbacks() as callbacks:
        render_state.segment_claim(segment_id=first.id, generation=job.render_generation, token="test-run")
    assert callbacks  # the claim publishes its event after commit
    client = APIClient()
    client.force_authenticate(user)
    api_segments = client.get(f"/api/video-jobs/{job.id}/").json()["segments"]
    snapshot_segments = job_state(video_job_detail(user=user, job_id=job.id))["segments"]
    first.refresh_from_db()
    event = segment_state(first)
    assert [s.keys() for s in api_segments] == [s.keys() for s in snapshot_segments]
    # No file exists yet, so even the URLs (absolute in the API, relative elsewhere) are equal (null).
    assert api_segments[0] == snapshot_segments[0] == event
    assert event["attempts"] == 1 and event["status"] == "rendering"
