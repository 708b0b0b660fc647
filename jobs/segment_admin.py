"""The operators' console for segments (re-render from the list, search by provider task) and
reference images. Registered on import; jobs/admin.py imports this module."""

from __future__ import annotations

import uuid
from collections import defaultdict

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from . import services
from .admin_parts import OperateMixin, TakeInline, badge, thumbnail
from .models import ReferenceImage, Segment, VideoJob


@admin.register(Segment)
class SegmentAdmin(OperateMixin, admin.ModelAdmin):
    list_display = (
        "__str__",
        "job_link",
        "index",
        "status_badge",
        "progress",
        "attempts",
        "provider_task_id",
        "rendered_by",
        "cost_usd",
    )
    list_filter = ("status", "job__provider")
    list_select_related = ("job",)
    search_fields = ("=provider_task_id", "prompt")
    actions = ["rerender"]
    inlines = [TakeInline]
    readonly_fields = (
        "job",
        "index",
        "prompt",
        "is_manual",
        "start_seconds",
        "end_seconds",
        "render_seconds",
        "provider",
        "model",
        "rendered_by",
        "status",
        "progress",
        "provider_task_id",
        "provider_status",
        "attempts",
        "clip",
        "last_frame",
        "thumbnail",
        "cost_usd",
        "cached_from",
        "cache_key",
        "bypass_cache",
        "error",
        "updated_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # a segment goes with its job

    @admin.display(description="job")
    def job_link(self, segment: Segment) -> str:
        url = reverse("admin:jobs_videojob_change", args=[segment.job_id])
        return format_html('<a href="{}">{}</a>', url, str(segment.job_id)[:8])

    @admin.display(description="status", ordering="status")
    def status_badge(self, segment: Segment) -> str:
        return badge(segment.status, segment.get_status_display())

    @admin.action(
        description="Re-render selected segments (and re-assemble their jobs)", permissions=["operate"]
    )
    def rerender(self, request: HttpRequest, queryset: QuerySet[Segment]) -> None:
        by_job: dict[uuid.UUID, list[int]] = defaultdict(list)
        for job_id, index in queryset.values_list("job_id", "index"):
            by_job[job_id].append(index)
        jobs = VideoJob.objects.in_bulk(list(by_job))
        self._apply(
            request,
            (jobs[job_id] for job_id in by_job),
            lambda job: services.segment_rerender(job=job, indexes=sorted(by_job[job.id])),
            "Re-render started",
        )


@admin.register(ReferenceImage)
class ReferenceImageAdmin(admin.ModelAdmin):
    list_display = ("id", "preview", "job", "segment", "content_type", "width", "height", "size_bytes")
    list_select_related = ("job", "segment")
    readonly_fields = ("job", "segment", "image", "content_type", "width", "height", "size_bytes", "sha256")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="image")
    def preview(self, image: ReferenceImage) -> str:
        return thumbnail(image.image, 80)
