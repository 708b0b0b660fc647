"""Video sizes as WIDTHxHEIGHT text: the one parser every layer uses."""

from __future__ import annotations


def parse_size(size: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720); raises ValueError with a readable message otherwise."""
    try:
        w_str, h_str = size.lower().split("x")
        width, height = int(w_str), int(h_str)
    except (AttributeError, ValueError):
        raise ValueError(f"size must look like WIDTHxHEIGHT (e.g. 1280x720), got {size!r}") from None
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"size {size!r} must have positive, even width and height")
    if width > 4096 or height > 4096:
        raise ValueError(f"size {size!r} is larger than 4096 pixels on a side")
    return width, height


def normalize_size(size: str) -> str:
    """The canonical spelling of a size: `320X240`, or 320x240 written in Arabic-Indic digits, is stored
    as `320x240`. Raises ValueError like parse_size."""
    width, height = parse_size(size.strip() if isinstance(size, str) else size)
    return f"{width}x{height}"
