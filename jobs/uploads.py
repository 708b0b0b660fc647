"""Reference image validation by content (Pillow), never by file name or declared type."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from PIL import Image, UnidentifiedImageError

from .errors import InvalidInput

ALLOWED_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


@dataclass(frozen=True)
class CheckedImage:
    content_type: str
    extension: str
    width: int
    height: int
    size_bytes: int
    sha256: str


def check_reference_image(upload: BinaryIO, *, field: str = "image") -> CheckedImage:
    """Validate an uploaded image; raise InvalidInput naming the problem. Leaves the file at position 0."""
    max_bytes = settings.UPLOAD_MAX_BYTES
    max_pixels = settings.UPLOAD_MAX_PIXELS
    upload.seek(0)
    data = upload.read(max_bytes + 1)
    upload.seek(0)
    if not data:
        raise InvalidInput("the image file is empty", field=field)
    if len(data) > max_bytes:
        raise InvalidInput(f"the image is larger than {max_bytes} bytes", field=field)
    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS and raises above twice that; we refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            upload.seek(0)
            with Image.open(upload) as image:
                fmt = image.format
                width, height = image.size
                if width * height > max_pixels:
                    raise InvalidInput(
                        f"the image has {width}x{height} pixels; the limit is {max_pixels} pixels",
                        field=field,
                    )
                image.verify()
            # verify() leaves the image unusable and misses truncation; a full decode catches it.
            upload.seek(0)
            with Image.open(upload) as image:
                image.load()
    except InvalidInput:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInput(
            "the image is too large to decode safely (decompression bomb)", field=field
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InvalidInput("the file is not a readable PNG, JPEG or WebP image", field=field) from None
    finally:
        upload.seek(0)
    if fmt not in ALLOWED_FORMATS:
        raise InvalidInput(f"images must be PNG, JPEG or WebP; this one is {fmt}", field=field)
    return CheckedImage(
        content_type=ALLOWED_FORMATS[fmt],
        extension={"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}[fmt],
        width=width,
        height=height,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
