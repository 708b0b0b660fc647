"""Media on the file system, served only to people who may see the job the file belongs to.

Every stored file lives under jobs/<job uuid>/..., so the path itself names the job to check. (On S3
the storage hands out short-lived signed URLs instead.) Byte ranges are honoured, because browsers
fetch video with `Range:` requests to start playback and to seek.
"""

from __future__ import annotations

import mimetypes
import re
import uuid
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils.http import http_date

from .downloads import DOWNLOAD_NAME
from .selectors import video_jobs_visible_to

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 256 * 1024


def _resolve(path: str) -> Path:
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "jobs" or any(p in {"", ".", ".."} for p in parts):
        raise Http404("no such file")
    root = Path(settings.MEDIA_ROOT).resolve()
    full = (root / path).resolve()
    if root not in full.parents or not full.is_file():
        raise Http404("no such file")
    return full


def protected_media(request: HttpRequest, path: str) -> HttpResponse:
    if "\x00" in path:  # no stored name has one; the file system would refuse it with a 500
        raise Http404("no such file")
    parts = path.split("/")
    try:
        job_id = uuid.UUID(parts[1]) if len(parts) > 1 and parts[0] == "jobs" else None
    except ValueError:
        job_id = None
    # 404, not 403, so that whether a job exists is not revealed to other people.
    if job_id is None or not video_jobs_visible_to(request.user).filter(id=job_id).exists():
        raise Http404("no such file")
    full = _resolve(path)
    size = full.stat().st_size
    content_type = mimetypes.guess_type(full.name)[0] or "application/octet-stream"
    match = RANGE.match(request.headers.get("Range", ""))
    if match and (match.group(1) or match.group(2)):
        start_text, end_text = match.groups()
        if start_text:
            start = int(start_text)
            end = min(int(end_text), size - 1) if end_text else size - 1
        else:  # a suffix range: the last N bytes
            start = max(0, size - int(end_text))
            end = size - 1
        if start >= size or start > end:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        response = StreamingHttpResponse(
            _read(full, start, end - start + 1), status=206, content_type=content_type
        )
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
    else:
        response = FileResponse(open(full, "rb"), content_type=content_type)  # noqa: SIM115 - closed by Django
    name = request.GET.get("download", "")
    if name:
        # A download link named after the job (jobs.downloads); only names it makes are accepted.
        if not DOWNLOAD_NAME.match(name):
            return HttpResponse("the download name is not one this server gives out", status=400)
        response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Accept-Ranges"] = "bytes"
    response["Last-Modified"] = http_date(full.stat().st_mtime)
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _read(path: Path, start: int, length: int):
    with open(path, "rb") as handle:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
