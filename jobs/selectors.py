"""Reads. Everything a person can see goes through a selector scoped to them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from sora_controller.compiled_queries import CompiledQuery, Marker, fetch_together

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
    """One job with its segments and reference images, whatever the number of segments: the job and
    its segments in one round trip on PostgreSQL (two queries elsewhere), the images only when the job
    has any. `annotations`: what the caller's output needs besides (the API's cache savings), computed
    in the job's query; pass the same expression objects every time (they are part of the compiled SQL).

    The hottest read of the project (every API detail, job page and realtime snapshot), so it runs as
    compiled queries (sora_controller.compiled_queries): the same querysets, compiled once per process.
    """
    if user is None or not user.is_authenticated:
        return None
    job_id = VideoJob._meta.pk.to_python(job_id)  # a malformed id fails here as the ORM would fail
    shape = _DetailShape(staff=bool(user.is_staff), annotations=dict(annotations or {}))
    # The job and its segments in one round trip, each query scoped to what the user may see.
    jobs, segments = fetch_together(
        (_JOB, shape, {"job_id": job_id, "user_id": user.pk}),
        (_VISIBLE_SEGMENTS, shape.staff, {"job_id": job_id, "user_id": user.pk}),
    )
    if not jobs:
        return None
    job = jobs[0]
    if job.owner_id == user.pk:
        VideoJob.owner.field.set_cached_value(job, user)
    attach_prefetched(job, "segments", segments)
    # Most jobs have no reference image: the job's own query says so, and then none is asked for.
    images = _IMAGES.fetch(job_id=job.id) if getattr(job, _HAS_IMAGES) else []
    attach_prefetched(job, "reference_images", images)
    return job


@dataclass(frozen=True)
class _DetailShape:
    staff: bool
    annotations: dict[str, Any]


def _viewer(user_id: Any, staff: bool) -> Any:
    # The detail's queries apply the visibility rule every read uses (video_jobs_visible_to) to a
    # stand-in user that only carries the id and the role: what their compiled SQL depends on.
    return get_user_model()(pk=user_id, is_staff=staff)


def _job_queryset(shape: _DetailShape, *, job_id: Any, user_id: Any) -> QuerySet[VideoJob]:
    # No ordering: the model's default (-created_at) made PostgreSQL walk the owner's (owner, created_at)
    # index through all their jobs instead of taking the primary key.
    return (
        video_jobs_visible_to(_viewer(user_id, shape.staff))
        .filter(id=job_id)
        .annotate(
            **shape.annotations, **{_HAS_IMAGES: Exists(ReferenceImage.objects.filter(job=OuterRef("pk")))}
        )
        .order_by()[:1]
    )


_HAS_IMAGES = "_has_reference_images"


_JOB = CompiledQuery(
    _job_queryset,
    shape_key=lambda shape: (shape.staff, tuple((name, id(e)) for name, e in shape.annotations.items())),
    job_id=Marker.UUID,
    user_id=Marker.INT,
)
_VISIBLE_SEGMENTS = CompiledQuery(
    lambda staff, job_id, user_id: Segment.objects.filter(
        job__in=video_jobs_visible_to(_viewer(user_id, staff)), job_id=job_id
    ).order_by("index"),
    job_id=Marker.UUID,
    user_id=Marker.INT,
)
_IMAGES = CompiledQuery(
    lambda shape, job_id: ReferenceImage.objects.filter(job_id=job_id).order_by("created_at", "id"),
    job_id=Marker.UUID,
)


_SEGMENT_WITH_JOB = CompiledQuery(
    lambda shape, segment_id: Segment.objects.select_related("job").filter(id=segment_id).order_by()[:1],
    segment_id=Marker.INT,
)


def segment_with_job(segment_id: int) -> Segment | None:
    """A segment with its job, read as every step of its render reads it first (several times a second
    per rendering segment while polling, so the query is compiled once per process)."""
    return _SEGMENT_WITH_JOB.first(segment_id=segment_id)


def attach_prefetched(job: VideoJob, name: str, children: list[Any]) -> None:
    """Store `children` (in the selector's order) as job.<name>.all(), with each child's job set, as
    prefetch_related would."""
    manager = getattr(job, name)
    for child in children:
        manager.field.set_cached_value(child, job)
    queryset = manager.get_queryset()  # filtered to this job, so a later .filter() stays scoped to it
    queryset._result_cache = children
    queryset._prefetch_done = True
    if not hasattr(job, "_prefetched_objects_cache"):
        job._prefetched_objects_cache = {}
    job._prefetched_objects_cache[manager.field.remote_field.cache_name] = queryset


# Asked for every segment's create and again for its cache key when it completes: compiled once.
_SEGMENT_IMAGE = CompiledQuery(
    lambda shape, segment_id: ReferenceImage.objects.filter(segment_id=segment_id).order_by(
        "-created_at", "-id"
    )[:1],
    segment_id=Marker.INT,
)
_JOB_IMAGE = CompiledQuery(
    lambda shape, job_id: ReferenceImage.objects.filter(job_id=job_id, segment__isnull=True).order_by(
        "-created_at", "-id"
    )[:1],
    job_id=Marker.UUID,
)


def segment_own_image(segment: Segment) -> ReferenceImage | None:
    """The newest reference image attached to this one segment (its keyframe), if any."""
    return _SEGMENT_IMAGE.first(segment_id=segment.id)


def segment_reference_image(segment: Segment) -> ReferenceImage | None:
    """The reference image that applies to a segment, by the job's continuity mode.

    A segment's own image wins. Otherwise the job's image guides the first segment in `parallel` and
    `chain` modes (later chained segments start from the previous clip instead) and every segment in
    `reference` mode.
    """
    own = segment_own_image(segment)
    if own is not None:
        return own
    job_image = _JOB_IMAGE.first(job_id=segment.job_id)
    if job_image is None:
        return None
    if segment.job.continuity == Continuity.REFERENCE or segment.index == 0:
        return job_image
    return None
