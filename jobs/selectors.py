"""Reads. Everything a person can see goes through a selector scoped to them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet

from .models import Continuity, ReferenceImage, Segment, SegmentStatus, VideoJob


def video_jobs_visible_to(user: Any) -> QuerySet[VideoJob]:
    """The jobs `user` may see: their own; staff see every job."""
    if user is None or not user.is_authenticated:
        return VideoJob.objects.none()
    queryset = VideoJob.objects.all()
    if not user.is_staff:
        queryset = queryset.filter(owner=user)
    return queryset


def video_job_list(*, user: Any, status: str | None = None) -> QuerySet[VideoJob]:
    queryset = video_jobs_visible_to(user).annotate(
        segment_count=Count("segments"),
        segments_done=Count("segments", filter=Q(segments__status=SegmentStatus.COMPLETED)),
    )
    if status:
        queryset = queryset.filter(status=status)
    return queryset.order_by("-created_at")


def video_job_detail(
    *, user: Any, job_id: uuid.UUID | str, annotations: Mapping[str, Any] | None = None
) -> VideoJob | None:
    """One job with its segments and reference images in a fixed number of queries. `annotations`:
    what the caller's output needs besides (the API's cache savings), computed in the same query."""
    queryset = (
        video_jobs_visible_to(user)
        .select_related("owner")
        .prefetch_related(
            Prefetch("segments", queryset=Segment.objects.order_by("index")),
            Prefetch("reference_images", queryset=ReferenceImage.objects.order_by("created_at", "id")),
        )
        .filter(id=job_id)
    )
    if annotations:
        queryset = queryset.annotate(**annotations)
    # No ordering: the model's default (-created_at) made PostgreSQL walk the owner's (owner, created_at)
    # index through all their jobs instead of taking the primary key, so a person with thousands of
    # jobs waited longer for each one.
    return queryset.order_by().first()


def segment_own_image(segment: Segment) -> ReferenceImage | None:
    """The newest reference image attached to this one segment (its keyframe), if any."""
    return ReferenceImage.objects.filter(segment=segment).order_by("-created_at", "-id").first()


def segment_reference_image(segment: Segment) -> ReferenceImage | None:
    """The reference image that applies to a segment, by the job's continuity mode.

    A segment's own image wins. Otherwise the job's image guides the first segment in `parallel` and
    `chain` modes (later chained segments start from the previous clip instead) and every segment in
    `reference` mode.
    """
    own = segment_own_image(segment)
    if own is not None:
        return own
    job_image = (
        ReferenceImage.objects.filter(job_id=segment.job_id, segment__isnull=True)
        .order_by("-created_at", "-id")
        .first()
    )
    if job_image is None:
        return None
    if segment.job.continuity == Continuity.REFERENCE or segment.index == 0:
        return job_image
    return None
