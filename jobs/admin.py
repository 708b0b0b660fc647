"""The operators' console: every job, what went wrong, what it costs, and the moves that fix it.

State is read-only here. Actions call jobs.services, which claim rows and refuse illegal moves; each
action reports what it did and, for the jobs it could not touch, why. Acting needs the
`jobs.operate_videojob` permission (the "Operators (render, retry, cancel)" group); the "Operators
(view only)" group sees everything and changes nothing.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from . import (
    ledger,
    operations,
    segment_admin,  # noqa: F401  (registers segments and reference images)
    services,
    spend_admin,  # noqa: F401  (registers the ledger and webhook deliveries, read-only)
)
from .admin_parts import (
    OperateMixin,
    ProviderTaskSearch,
    ReferenceImageInline,
    SegmentInline,
    VersionInline,
    badge,
    thumbnail,
)
from .catalogue import provider_rows
from .models import SegmentStatus, VideoJob


@admin.register(VideoJob)
class VideoJobAdmin(OperateMixin, ProviderTaskSearch, admin.ModelAdmin):
    list_display = (
        "short_id",
        "status_badge",
        "owner",
        "duration",
        "segments_done",
        "cost_estimate_usd",
        "cost_spent_usd",
        "provider",
        "model",
        "created_at",
    )
    list_display_links = ("short_id",)
    list_filter = (
        "status",
        "provider",
        ("owner", admin.RelatedOnlyFieldListFilter),
        ("created_at", admin.DateFieldListFilter),
    )
    list_select_related = ("owner",)
    search_fields = ("prompt",)  # widened by get_search_results
    search_help_text = "Prompt text, a job id (or its first characters) or a provider task id."
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    list_per_page = 50
    inlines = [SegmentInline, VersionInline, ReferenceImageInline]
    actions = ["render", "retry_failed", "cancel", "reassemble"]
    fieldsets = (
        (
            "Output",
            {
                "fields": (
                    "status_badge",
                    "progress",
                    "video_player",
                    "poster_preview",
                    "error",
                    "notice_list",
                )
            },
        ),
        (
            "Request",
            {
                "fields": (
                    "id",
                    "owner",
                    "title",
                    "prompt",
                    "duration_seconds",
                    "segment_seconds",
                    "strategy",
                    "continuity",
                    "reference_fit",
                    "provider",
                    "model",
                    "fallback_models",
                    "size",
                    "fps",
                    "use_cache",
                )
            },
        ),
        (
            "Cost",
            {"fields": ("cost_estimate_usd", "billed_seconds_estimate", "cost_spent_usd", "cost_saved")},
        ),
        (
            "Timeline",
            {
                "fields": (
                    "output_duration_seconds",
                    "render_generation",
                    "created_at",
                    "updated_at",
                    "started_at",
                    "finished_at",
                )
            },
        ),
    )
    # Everything on the page is read-only: state changes only through the actions (services).
    readonly_fields = tuple(field for _, options in fieldsets for field in options["fields"])

    def get_queryset(self, request: HttpRequest) -> QuerySet[VideoJob]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_segments=Count("segments", distinct=True),
                n_done=Count("segments", filter=Q(segments__status=SegmentStatus.COMPLETED), distinct=True),
            )
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs come from the workspace, the API and the CLI, through services

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # no one edits state by hand

    def delete_model(self, request: HttpRequest, obj: VideoJob) -> None:
        services.video_job_delete(job=obj)  # rows and their files

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[VideoJob]) -> None:
        for job in queryset:
            services.video_job_delete(job=job)

    # --- columns -----------------------------------------------------------------------------------

    @admin.display(description="job", ordering="created_at")
    def short_id(self, job: VideoJob) -> str:
        return str(job.id)[:8]

    @admin.display(description="status", ordering="status")
    def status_badge(self, job: VideoJob) -> str:
        return badge(job.status, job.get_status_display())

    @admin.display(description="duration", ordering="duration_seconds")
    def duration(self, job: VideoJob) -> str:
        return f"{job.duration_seconds:g} s"

    @admin.display(description="segments done")
    def segments_done(self, job: VideoJob) -> str:
        return f"{getattr(job, 'n_done', 0)} / {getattr(job, 'n_segments', 0)}"

    @admin.display(description="video")
    def video_player(self, job: VideoJob) -> str:
        if not job.output_video:
            return "-"
        poster = job.poster_image.url if job.poster_image else ""
        return format_html(
            '<video controls preload="metadata" width="640" poster="{}" src="{}" data-testid="admin-video">'
            "</video>"
            '<br><a href="{}" download>Download</a>',
            poster,
            job.output_video.url,
            job.output_video.url,
        )

    @admin.display(description="poster")
    def poster_preview(self, job: VideoJob) -> str:
        return thumbnail(job.poster_image, 240)

    @admin.display(description="notices")
    def notice_list(self, job: VideoJob) -> str:
        if not job.notices:
            return "-"
        return format_html(
            '<ul class="job-notices" data-testid="job-notices">{}</ul>',
            format_html_join("", "<li>{}</li>", ((notice,) for notice in job.notices)),
        )

    @admin.display(description="cost saved by the render cache")
    def cost_saved(self, job: VideoJob) -> str:
        # One query against the ledger, however many segments the job has.
        return f"{ledger.job_saved(job.id):.4f}"

    # --- actions -----------------------------------------------------------------------------------

    @admin.action(description="Render selected jobs", permissions=["operate"])
    def render(self, request: HttpRequest, queryset: QuerySet[VideoJob]) -> None:
        self._apply(request, queryset, lambda job: services.video_job_render(job=job), "Render started")

    @admin.action(description="Retry failed segments of selected jobs", permissions=["operate"])
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[VideoJob]) -> None:
        self._apply(request, queryset, lambda job: services.video_job_retry(job=job), "Retry started")

    @admin.action(description="Cancel selected jobs", permissions=["operate"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[VideoJob]) -> None:
        self._apply(request, queryset, lambda job: services.video_job_cancel(job=job), "Cancelled")

    @admin.action(description="Re-assemble selected jobs from their clips", permissions=["operate"])
    def reassemble(self, request: HttpRequest, queryset: QuerySet[VideoJob]) -> None:
        self._apply(
            request, queryset, lambda job: services.video_job_reassemble(job=job), "Re-assembly started"
        )

    # --- the operations page -----------------------------------------------------------------------

    def get_urls(self):
        urls = super().get_urls()
        ours = [
            path("operations/", self.admin_site.admin_view(self.operations_view), name="jobs_operations"),
        ]
        return ours + urls

    def operations_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Operations",
            "opts": self.model._meta,
            "jobs_by_status": operations.jobs_by_status(),
            "in_flight": operations.segments_in_flight_by_provider(),
            "spend": operations.spend_windows(),
            "spenders": operations.top_spenders(),
            "providers": provider_rows(),
            "failures": operations.failure_reasons(),
            "workers": operations.worker_health(),
            "changelist_url": reverse("admin:jobs_videojob_changelist"),
            "ledger_url": reverse("admin:jobs_spendentry_changelist"),
        }
        return TemplateResponse(request, "admin/jobs/operations.html", context)

    def changelist_view(self, request: HttpRequest, extra_context=None):
        extra_context = {**(extra_context or {}), "operations_url": reverse("admin:jobs_operations")}
        return super().changelist_view(request, extra_context=extra_context)
