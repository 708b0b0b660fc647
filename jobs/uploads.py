"""Reference images, checked by content (Pillow) and normalized when they arrive: decoded once within pixel,
aspect-ratio and frame limits, turned upright by their EXIF orientation, and re-encoded to a clean PNG
(lossless sources, or any with transparency) or JPEG. Only that clean copy is stored and ever rendered,
so bytes after the image's end, odd colour modes (16-bit, CMYK, palettes with transparency) and
metadata never reach ffmpeg. A file that cannot be made clean is refused with a message naming why.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidInput

# What we accept, by the format Pillow detects (never the name or the declared type). MPO is the JPEG
# variant phones write (a second picture for depth); its first picture is the photo.
ACCEPTED_FORMATS = {"PNG", "JPEG", "MPO", "WEBP"}
JPEG_QUALITY = 92


@dataclass(frozen=True)
class CheckedImage:
    content: bytes  # the clean copy that is stored
    content_type: str
    extension: str
    width: int
    height: int
    size_bytes: int
    sha256: str


def _refuse(message: str, field: str) -> InvalidInput:
    return InvalidInput(message, field=field)


def _read(upload: BinaryIO, field: str) -> bytes:
    max_bytes = settings.UPLOAD_MAX_BYTES
    upload.seek(0)
    data = upload.read(max_bytes + 1)
    upload.seek(0)
    if not data:
        raise _refuse("the image file is empty", field)
    if len(data) > max_bytes:
        raise _refuse(f"the image is larger than {max_bytes} bytes", field)
    return data


def _check_shape(width: int, height: int, field: str) -> None:
    max_pixels = settings.UPLOAD_MAX_PIXELS
    if width * height > max_pixels:
        raise _refuse(f"the image has {width}x{height} pixels; the limit is {max_pixels} pixels", field)
    ratio = max(width, height) / max(1, min(width, height))
    if ratio > settings.UPLOAD_MAX_ASPECT_RATIO:
        raise _refuse(
            f"the image is {width}x{height}, more than {settings.UPLOAD_MAX_ASPECT_RATIO:g} times longer "
            "one way than the other; crop it closer to the video's shape",
            field,
        )


def _upright_8bit(image: Image.Image) -> Image.Image:
    """The picture as 8-bit RGB or RGBA, turned by its EXIF orientation."""
    image = ImageOps.exif_transpose(image) or image
    if image.mode in {"I;16", "I;16B", "I;16L", "I"}:
        # 16-bit (and 32-bit integer) greyscale: scale to 8 bits instead of clipping at 255.
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    has_alpha = image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info)
    return image.convert("RGBA" if has_alpha else "RGB")


def check_reference_image(upload: BinaryIO, *, field: str = "image") -> CheckedImage:
    """Decode, check and normalize an uploaded image; raise InvalidInput naming the problem."""
    data = _read(upload, field)
    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS and raises above twice that; we refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt = image.format
                if fmt not in ACCEPTED_FORMATS:
                    raise _refuse(f"images must be PNG, JPEG or WebP; this one is {fmt}", field)
                _check_shape(*image.size, field)
                if fmt != "MPO" and getattr(image, "n_frames", 1) > 1:
                    raise _refuse(
                        f"this {fmt} is animated ({image.n_frames} frames); upload a single still frame",
                        field,
                    )
                image.load()  # the whole picture: a truncated file fails here, not in ffmpeg
                clean = _upright_8bit(image)
    except InvalidInput:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _refuse("the image is too large to decode safely (decompression bomb)", field) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise _refuse("the file is not a readable PNG, JPEG or WebP image", field) from None
    _check_shape(*clean.size, field)  # turned upright, the shape is what is stored
    lossless = fmt == "PNG" or clean.mode == "RGBA"
    out = io.BytesIO()
    if lossless:
        clean.save(out, format="PNG")
    else:
        clean.save(out, format="JPEG", quality=JPEG_QUALITY)
    content = out.getvalue()
    return CheckedImage(
        content=content,
        content_type="image/png" if lossless else "image/jpeg",
        extension="png" if lossless else "jpg",
        width=clean.width,
        height=clean.height,
        size_bytes=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
    )
