from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path

from jobs.media_views import protected_media

from .health import healthz, readyz
from .metrics import metrics_view

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/", include("jobs.api.urls")),
    path("api/", include("callbacks.api.urls")),
    path("webhooks/", include("rendering.webhook_urls")),
    path("", include("jobs.web_urls")),
]

if settings.MEDIA_URL.startswith("/"):
    # Media on the file system (the embedded default) is served by Django, checked per job.
    urlpatterns += [re_path(rf"^{settings.MEDIA_URL.strip('/')}/(?P<path>.+)$", protected_media)]
