"""Where the ffmpeg binary comes from: FFMPEG_BINARY if set, else the one in the imageio-ffmpeg wheel."""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    configured = getattr(settings, "FFMPEG_BINARY", "")
    if configured:
        return configured
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSansBold.ttf",
    "/System/Library/Fonts/Supplemental/Arial Bold.ttf",
    "/Library/Fonts/Arial.ttf",
)


@lru_cache(maxsize=1)
def font_file() -> str | None:
    """A TrueType font for drawtext, named explicitly so text renders without fontconfig luck.

    Returns None when none of the known files exist; drawtext then falls back to fontconfig's default.
    """
    import os

    for candidate in FONT_CANDIDATES:
        if os.path.exists(candidate):
            return candidate
    try:
        import matplotlib  # noqa: F401  (optional: ships DejaVu when present)
        from matplotlib import font_manager

        return font_manager.findfont("DejaVu Sans", fallback_to_default=True)
    except Exception:
        return None
