"""Fit a reference image to exactly the job's size, because the Videos API rejects any other size.

`cover` (the default) scales to fill the frame and crops the overflow from the centre, so the first
frame has no bars; `pad` scales to fit and letterboxes with black, so nothing of the image is lost.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from PIL import ExifTags, Image, ImageOps

from rendering.media_types import parse_size


def fit_reference(source: Path, dest: Path, size: str, policy: str = "cover") -> Path:
    """Write `source` fitted to `size` as PNG at `dest`; an image that already fits is copied as is,
    byte for byte, so what the provider receives is exactly the frame we extracted."""
    width, height = parse_size(size)
    with Image.open(source) as image:
        # exif_transpose returns a copy, and a copy has no format: read the format first. Bytes pass
        # through only when no EXIF rotation applies (else the stored pixels are not what we measured).
        source_format = image.format
        upright = image.getexif().get(ExifTags.Base.Orientation, 1) == 1
        image = ImageOps.exif_transpose(image)
        if (
            upright
            and image.size == (width, height)
            and source_format in {"PNG", "JPEG"}
            and source.suffix.lower() in {".png", ".jpg", ".jpeg"}
        ):
            dest = dest.with_suffix(source.suffix.lower())
            _atomic_write_bytes(dest, source.read_bytes())
            return dest
        rgb = image.convert("RGB")
        if policy == "pad":
            fitted = ImageOps.pad(rgb, (width, height), method=Image.Resampling.LANCZOS, color=(0, 0, 0))
        elif policy == "cover":
            fitted = ImageOps.fit(rgb, (width, height), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))
        else:
            raise ValueError(f"unknown fit policy {policy!r}; use cover or pad")
    dest = dest.with_suffix(".png")
    partial = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.partial.png")
    try:
        fitted.save(partial, format="PNG")
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    return dest


def _atomic_write_bytes(dest: Path, data: bytes) -> None:
    partial = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
