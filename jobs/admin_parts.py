"""Pieces the operators' console shares across its pages: status badges, file links and thumbnails, the
operate permission check, provider-task search and the inlines of a job's segments and images."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable

from django.contrib import admin, messages
from django.db.models import Q
from django.http import HttpRequest
from django.utils.html import format_html

from .errors import IllegalTransition, InvalidInput
from .models import JobStatus, ReferenceImage, Segment, Take, Version, VideoJob

BADGE_COLOURS = {
    JobStatus.DRAFT: "#6b7280",
    JobStatus.QUEUED: "#2563eb",
    JobStatus.RENDERING: "#7c3aed",
    JobStatus.ASSEMBLING: "#0891b2",
    JobStatus.COMPLETED: "#15803d",
    JobStatus.FAILED: "#b91c1c",
    JobStatus.CANCELLED: "#92400e",
}


def badge(status: str, label: str) -> str:
    colour = BADGE_COLOURS.get(status, "#6b7280")
    return format_html(
        '<span class="status-badge" data-status="{}" style="background:{};color:#fff;padding:2px 8px;'
        'border-radius:10px;font-size:11px;white-space:nowrap">{}</span>',
        status,
        colour,
        label,
    )


def file_link(field_file, label: str) -> str:
    if not field_file:
        return "-"
    return format_html('<a href="{}">{}</a>', field_file.url, label)


def thumbnail(field_file, width: int = 96) -> str:
    if not field_file:
        return "-"
    return format_html('<img src="{}" width="{}" alt="" loading="lazy">', field_file.url, width)


class OperateMixin:
    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobs.operate_videojob")

    def _apply(
        self,
        request: HttpRequest,
        jobs: Iterable[VideoJob],
        move: Callable[[VideoJob], object],
        done: str,
    ) -> None:
        """Run `move` on each job; report successes in one message and each refusal with its reason."""
        succeeded, refused = 0, []
        for job in jobs:
            try:
                move(job)
                succeeded += 1
            except (IllegalTransition, InvalidInput) as exc:
                refused.append(f"{job}: {exc}")
        if succeeded:
            self.message_user(request, f"{done}: {succeeded} job(s).", messages.SUCCESS)
        for reason in refused:
            self.message_user(request, f"Not done for {reason}", messages.WARNING)


class SegmentInline(admin.TabularInline):
    model = Segment
    extra = 0
    can_delete = False
    show_change_link = True
    fields = (
        "index",
        "status_badge",
        "progress",
        "attempts",
        "provider_task_id",
        "rendered_by",
        "cached",
        "error",
        "clip_link",
        "thumb",
    )
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="status")
    def status_badge(self, segment: Segment) -> str:
        return badge(segment.status, segment.get_status_display())

    @admin.display(description="from cache", boolean=True)
    def cached(self, segment: Segment) -> bool:
        return segment.cached_from_id is not None

    @admin.display(description="clip")
    def clip_link(self, segment: Segment) -> str:
        return file_link(segment.clip, "clip")

    @admin.display(description="thumbnail")
    def thumb(self, segment: Segment) -> str:
        return thumbnail(segment.thumbnail)


class ReferenceImageInline(admin.TabularInline):
    model = ReferenceImage
    extra = 0
    can_delete = False
    fields = ("preview", "segment", "content_type", "width", "height", "size_bytes")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="image")
    def preview(self, image: ReferenceImage) -> str:
        return thumbnail(image.image, 120)


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class TakeInline(_ReadOnlyInline):
    """Every kept render of a segment; the picked one is what the video uses."""

    model = Take
    fields = ("number", "picked", "rendered_by", "cost_usd", "cached", "created_at", "clip_link", "thumb")
    readonly_fields = fields

    @admin.display(description="picked", boolean=True)
    def picked(self, take: Take) -> bool:
        return take.segment.take_number == take.number

    @admin.display(description="clip")
    def clip_link(self, take: Take) -> str:
        return file_link(take.clip, "clip")

    @admin.display(description="thumbnail")
    def thumb(self, take: Take) -> str:
        return thumbnail(take.thumbnail)


class VersionInline(_ReadOnlyInline):
    """Every assembled video of a job, newest first, each with its own link."""

    model = Version
    fields = ("number", "current", "duration_seconds", "takes", "created_at", "video_link")
    readonly_fields = fields

    @admin.display(description="current", boolean=True)
    def current(self, version: Version) -> bool:
        return version.job.version_number == version.number

    @admin.display(description="video")
    def video_link(self, version: Version) -> str:
        return file_link(version.video, f"version {version.number}")


class ProviderTaskSearch:
    """Search by prompt, by a job id (whole or its first characters) or by a provider task id."""

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = Q(prompt__icontains=term) | Q(segments__provider_task_id=term)
        try:
            condition |= Q(id=uuid.UUID(term))
        except ValueError:
            if len(term) >= 4 and all(c in "0123456789abcdef-" for c in term.lower()):
                condition |= Q(id__startswith=term.lower())
        return queryset.filter(condition).distinct(), True
