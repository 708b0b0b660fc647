"""Download links named after the job: `lighthouse-keepers-night-v3.mp4` rather than a storage name.

On the file system the protected media view (jobs.media_views) sends the file as an attachment under
the name given in `?download=`; on S3 the signed URL asks S3 to do the same
(ResponseContentDisposition), so the bytes never pass through the web process.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

from django.db.models.fields.files import FieldFile
from django.utils.text import slugify

from .models import VideoJob

# What the media view accepts as a download name: what download_name makes, nothing that could break
# out of the Content-Disposition header.
DOWNLOAD_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,150}\.(mp4|jpg|png)$")


def download_name(job: VideoJob, version: int, extension: str = "mp4") -> str:
    stem = slugify(job.title)[:120].strip("-") or f"video-{str(job.id)[:8]}"
    return f"{stem}-v{version}.{extension}"


def download_url(field: FieldFile, filename: str) -> str:
    """The URL that downloads `field` under `filename` (see the module doc)."""
    storage = field.storage
    if hasattr(storage, "bucket_name"):  # django-storages' S3: signed, with the response header set
        return storage.url(
            field.name, parameters={"ResponseContentDisposition": f'attachment; filename="{filename}"'}
        )
    return f"{field.url}?{urlencode({'download': filename})}"
