"""Routes under /api/ (namespace "api"). Job ids are UUIDs; segments are addressed by their index."""

from __future__ import annotations

from django.conf import settings
from django.urls import URLPattern, URLResolver, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import catalog_views, duplicate_views, preview_views, segment_views, take_views, views
from .exceptions import NOT_FOUND_URL_NAME, api_not_found

app_name = "api"

job = "video-jobs/<uuid:job_id>/"

urlpatterns: list[URLPattern | URLResolver] = [
    path("video-jobs/", views.VideoJobListCreateView.as_view(), name="video-job-list"),
    path(job, views.VideoJobDetailView.as_view(), name="video-job-detail"),
    path(f"{job}plan/", views.VideoJobPlanView.as_view(), name="video-job-plan"),
    path(f"{job}render/", views.VideoJobRenderView.as_view(), name="video-job-render"),
    path(f"{job}retry/", views.VideoJobRetryView.as_view(), name="video-job-retry"),
    path(f"{job}cancel/", views.VideoJobCancelView.as_view(), name="video-job-cancel"),
    path(f"{job}rerender/", views.VideoJobRerenderView.as_view(), name="video-job-rerender"),
    path(f"{job}estimate/", views.VideoJobEstimateView.as_view(), name="video-job-estimate"),
    path(f"{job}segments/", segment_views.SegmentListView.as_view(), name="segment-list"),
    path(f"{job}segments/<int:index>/", segment_views.SegmentDetailView.as_view(), name="segment-detail"),
    path(
        f"{job}segments/<int:index>/rerender/",
        segment_views.SegmentRerenderView.as_view(),
        name="segment-rerender",
    ),
    path(f"{job}segments/<int:index>/takes/", take_views.TakeListView.as_view(), name="take-list"),
    path(
        f"{job}segments/<int:index>/takes/<int:number>/pick/",
        take_views.TakePickView.as_view(),
        name="take-pick",
    ),
    path(f"{job}versions/", take_views.VersionListView.as_view(), name="version-list"),
    path(f"{job}preview/", preview_views.JobPreviewView.as_view(), name="video-job-preview"),
    path(f"{job}duplicate/", duplicate_views.VideoJobDuplicateView.as_view(), name="video-job-duplicate"),
    path(
        f"{job}reference-images/", segment_views.ReferenceImageListView.as_view(), name="reference-image-list"
    ),
    path(
        f"{job}reference-images/<int:image_id>/",
        segment_views.ReferenceImageDetailView.as_view(),
        name="reference-image-detail",
    ),
    path("estimate/", views.EstimateView.as_view(), name="estimate"),
    path("budget/", catalog_views.BudgetView.as_view(), name="budget"),
    path("strategies/", catalog_views.StrategyListView.as_view(), name="strategy-list"),
    path("providers/", catalog_views.ProviderListView.as_view(), name="provider-list"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]

if settings.DEBUG or settings.BENCH_VIEWS:
    from .bench_views import bare_json

    urlpatterns.append(path("_bench/json/", bare_json, name="bench-json"))

# Last: anything else under these prefixes (a malformed id, a missing slash, an unknown action) gets a
# JSON 404 instead of Django's HTML page. Only our own prefixes, so routes other apps mount under /api/
# after this module are not shadowed. CSRF-exempt because it never changes anything.
urlpatterns.append(
    re_path(
        r"^(?:video-jobs|estimate|budget|strategies|providers|schema|docs|_bench)(?:/(?s:.*))?$",
        csrf_exempt(api_not_found),
        name=NOT_FOUND_URL_NAME,
    )
)
