"""The output serializers build their dicts directly (for speed) while their declared fields stay the
schema. Each is rendered both ways here, through DRF's declared fields and through the direct path, and
the two must be equal, value for value, so the schema can never drift from what the API sends."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from jobs import selectors, services
from jobs.api.output_serializers import (
    ReferenceImageSerializer,
    VideoJobDetailSerializer,
    VideoJobListSerializer,
    saved_annotation,
)
from jobs.models import JobStatus, SpendEntry, SpendKind, VideoJob

from .conftest import image_bytes, upload

pytestmark = pytest.mark.django_db


def through_declared_fields(serializer: serializers.Serializer, instance: Any) -> dict[str, Any]:
    """What DRF renders from the declared fields, bypassing the serializer's own to_representation."""
    return serializers.Serializer.to_representation(serializer, instance)


def api_context() -> dict[str, Any]:
    return {"request": Request(APIRequestFactory().get("/api/video-jobs/"))}


@pytest.fixture
def finished_job(user) -> VideoJob:
    """A job with every field that can be empty filled in: files, times, notices, savings, images."""
    job = services.video_job_create(
        owner=user, prompt="A fox runs. It jumps. It sleeps.", duration_seconds=30, title="Fox ünïcode"
    )
    services.reference_image_add(job=job, upload=upload(image_bytes()))
    services.reference_image_add(job=job, upload=upload(image_bytes(colour=(0, 90, 200))), segment_index=2)
    now = timezone.now()
    VideoJob.objects.filter(id=job.id).update(
        status=JobStatus.COMPLETED,
        progress=100.0,
        output_video=f"jobs/{job.id}/final.mp4",
        poster_image=f"jobs/{job.id}/poster.jpg",
        output_duration_seconds=29.97,
        started_at=now - timedelta(minutes=3),
        finished_at=now,
        notices=["the llm planner failed; sentences planned it"],
        fallback_models=["fal:kling", "veo"],
        cost_spent_usd=Decimal("1.25"),
        error="",
    )
    job.segments.filter(index=0).update(clip=f"jobs/{job.id}/segments/0.mp4", cost_usd=Decimal("0.4167"))
    SpendEntry.objects.create(job=job, owner=user, kind=SpendKind.CACHE_SAVING, amount_usd=Decimal("0.1234"))
    return job


@pytest.mark.parametrize("context", [api_context, dict], ids=["absolute urls", "relative urls"])
@pytest.mark.parametrize("annotated", [True, False], ids=["savings annotated", "savings from the ledger"])
def test_job_detail(user, finished_job, context, annotated):
    job = selectors.video_job_detail(
        user=user, job_id=finished_job.id, annotations=saved_annotation() if annotated else None
    )
    serializer = VideoJobDetailSerializer(job, context=context())
    direct = serializer.data
    assert direct == through_declared_fields(serializer, job)
    assert list(direct) == list(serializer.fields)  # the declared order, too
    # The fixture really filled what it meant to: no comparison of nulls with nulls only.
    assert direct["output_url"].endswith("/final.mp4") and direct["cost_saved_usd"] == "0.1234"
    assert direct["finished_at"] and direct["notices"] and direct["fallback_models"] == ["fal:kling", "veo"]
    assert [image["segment_index"] for image in direct["reference_images"]] == [None, 2]


def test_job_detail_of_a_fresh_draft(user):
    job = services.video_job_create(owner=user, prompt="A lighthouse at night.", duration_seconds=10)
    loaded = selectors.video_job_detail(user=user, job_id=job.id, annotations=saved_annotation())
    serializer = VideoJobDetailSerializer(loaded, context=api_context())
    assert serializer.data == through_declared_fields(serializer, loaded)
    assert serializer.data["output_url"] is None and serializer.data["started_at"] is None


def test_job_list(user, finished_job):
    jobs = list(selectors.video_job_list(user=user).annotate(**saved_annotation()))
    serializer = VideoJobListSerializer(jobs, many=True, context=api_context())
    assert serializer.data == [through_declared_fields(serializer.child, job) for job in jobs]
    assert serializer.data[0]["segment_count"] == 3


def test_reference_images(user, finished_job):
    job = selectors.video_job_detail(user=user, job_id=finished_job.id)
    images = list(job.reference_images.all())
    for context in (api_context(), {}):
        serializer = ReferenceImageSerializer(images, many=True, context=context)
        assert serializer.data == [through_declared_fields(serializer.child, image) for image in images]
        assert list(serializer.data[0]) == list(serializer.child.fields)
