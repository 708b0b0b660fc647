"""Media on the file system, served only to people who may see the job the file belongs to.

Every stored file lives under jobs/<job uuid>/..., so the path itself names the job to check. (On S3
the storage hands out short-lived signed URLs instead.)
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.static import serve

from .selectors import video_jobs_visible_to


def protected_media(request: HttpRequest, path: str) -> HttpResponse:
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "jobs" or ".." in parts:
        raise Http404("no such file")
    try:
        job_id = uuid.UUID(parts[1])
    except ValueError:
        raise Http404("no such file") from None
    # 404, not 403, so that whether a job exists is not revealed to other people.
    if not video_jobs_visible_to(request.user).filter(id=job_id).exists():
        raise Http404("no such file")
    response = serve(request, path, document_root=settings.MEDIA_ROOT)
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response
