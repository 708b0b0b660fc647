"""What makes two requests "the same request" for an Idempotency-Key: method, full path and content.

JSON bodies are hashed as sent. Multipart bodies are hashed by their parts (names, values, file names
and file bytes) rather than as sent: a retrying client library picks a new random boundary each time,
so the raw bytes of two identical uploads differ.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.http.request import RawPostDataException
from rest_framework.request import Request


def request_fingerprint(request: Request) -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode() + b"\n")
    digest.update(request.get_full_path().encode() + b"\n")
    digest.update(_content_digest(request).encode())
    return digest.hexdigest()


def _content_digest(request: Request) -> str:
    if request.content_type.startswith("multipart/"):
        return _parts_digest(request.data)
    try:
        return hashlib.sha256(request._request.body).hexdigest()
    except RawPostDataException:
        # Something read the stream already (a form body parsed for its CSRF token): hash what it held.
        return hashlib.sha256(json.dumps(request.data, sort_keys=True, default=str).encode()).hexdigest()


def _parts_digest(data: Any) -> str:
    digest = hashlib.sha256()
    for name in sorted(data.keys()):
        for value in data.getlist(name):
            digest.update(b"\x00part\x00" + name.encode() + b"\x00")
            if isinstance(value, UploadedFile):
                digest.update(b"file\x00" + (value.name or "").encode() + b"\x00")
                for chunk in value.chunks():
                    digest.update(chunk)
                value.seek(0)  # the view reads it again
            else:
                digest.update(b"value\x00" + str(value).encode())
    return digest.hexdigest()
