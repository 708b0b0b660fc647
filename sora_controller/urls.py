from django.conf import settings
from django.contrib import admin
from django.urls import path
from django.views.static import serve

urlpatterns = [
    path("admin/", admin.site.urls),
]

if settings.EMBEDDED or settings.DEBUG:
    # Media on the embedded default is served by Django itself; production serves it from S3.
    urlpatterns += [path("media/<path:path>", serve, {"document_root": settings.MEDIA_ROOT})]
