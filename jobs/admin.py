"""A first operator view of jobs; the operator console issue extends it. State is read-only here:
changes go through services."""

from django.contrib import admin

from .models import ReferenceImage, Segment, VideoJob

STATE_FIELDS = (
    "status",
    "progress",
    "cost_estimate_usd",
    "billed_seconds_estimate",
    "cost_spent_usd",
    "output_video",
    "poster_image",
    "output_duration_seconds",
    "error",
    "render_generation",
    "started_at",
    "finished_at",
)


class SegmentInline(admin.TabularInline):
    model = Segment
    extra = 0
    can_delete = False
    fields = ("index", "status", "progress", "attempts", "provider_task_id", "error", "clip")
    readonly_fields = fields


@admin.register(VideoJob)
class VideoJobAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "owner",
        "status",
        "progress",
        "duration_seconds",
        "provider",
        "model",
        "created_at",
    )
    list_filter = ("status", "provider")
    search_fields = ("id", "prompt", "segments__provider_task_id")
    readonly_fields = STATE_FIELDS
    inlines = [SegmentInline]


@admin.register(ReferenceImage)
class ReferenceImageAdmin(admin.ModelAdmin):
    list_display = ("id", "job", "segment", "content_type", "width", "height", "size_bytes")
    readonly_fields = ("content_type", "width", "height", "size_bytes", "sha256")
