"""A corpus of hostile reference images: each is either refused at upload with a message naming why, or
stored as a clean copy that renders; none can stall a worker. And the subprocess runner every ffmpeg call
goes through kills a run that overruns, with its whole process group, even one that floods stderr."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib

import pytest
from PIL import Image

from jobs import services
from jobs.errors import InvalidInput
from jobs.models import JobStatus
from jobs.uploads import check_reference_image
from rendering.bounded import TimedOut, run_bounded
from rendering.transport import inprocess_runner
from tests.factories import VideoJobFactory


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but carries one empty row: a decoder bomb of a header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (64, 64), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    return encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def exif_rotated() -> bytes:
    """A 80x40 JPEG whose EXIF says: turn me 90 degrees (orientation 6), as phones write them."""
    image = Image.new("RGB", (80, 40), (10, 200, 10))
    exif = image.getexif()
    exif[0x0112] = 6
    return encoded(image, "JPEG", exif=exif.tobytes())


def sixteen_bit() -> bytes:
    return encoded(Image.new("I;16", (64, 48), 40000), "PNG")


def cmyk() -> bytes:
    return encoded(Image.new("CMYK", (64, 48), (0, 128, 255, 0)), "JPEG")


def palette_with_transparency() -> bytes:
    image = Image.new("P", (64, 48), 0)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    return encoded(image, "PNG", transparency=0)


def trailing_bytes() -> bytes:
    return encoded(Image.new("RGB", (64, 48), (1, 2, 3)), "PNG") + os.urandom(4096)


def truncated() -> bytes:
    data = encoded(Image.effect_noise((256, 256), 64).convert("RGB"), "PNG")
    return data[: len(data) // 2]


# name -> (bytes, refused because (a fragment of the message) or None, stored (type, width, height))
CORPUS = {
    "trailing bytes after the end": (trailing_bytes, None, ("image/png", 64, 48)),
    "20000000x2": (lambda: png_header_only(20_000_000, 2), "times longer", None),
    "9000x9000 (81 megapixels)": (lambda: png_header_only(9000, 9000), "the limit is 40000000 pixels", None),
    "4000x100 extreme aspect ratio": (
        lambda: encoded(Image.new("RGB", (4000, 100)), "PNG"),
        "times longer",
        None,
    ),
    "16-bit greyscale": (sixteen_bit, None, ("image/png", 64, 48)),
    "CMYK JPEG": (cmyk, None, ("image/jpeg", 64, 48)),
    "palette with transparency": (palette_with_transparency, None, ("image/png", 64, 48)),
    "animated PNG": (lambda: animated("PNG"), "animated (2 frames)", None),
    "animated WebP": (lambda: animated("WEBP"), "animated (2 frames)", None),
    "animated GIF": (lambda: animated("GIF"), "PNG, JPEG or WebP", None),
    "EXIF-rotated JPEG": (exif_rotated, None, ("image/jpeg", 40, 80)),
    "truncated PNG": (truncated, "not a readable", None),
    "not an image": (lambda: b"GIF89a" + b"\0" * 100, "not a readable", None),
}


@pytest.mark.parametrize("name", list(CORPUS))
def test_each_hostile_image_is_refused_or_cleaned(name):
    make, refused, stored = CORPUS[name]
    upload = io.BytesIO(make())
    if refused:
        with pytest.raises(InvalidInput) as error:
            check_reference_image(upload)
        assert refused in " ".join(error.value.errors["image"]), error.value.errors
        return
    checked = check_reference_image(upload)
    assert (checked.content_type, checked.width, checked.height) == stored
    with Image.open(io.BytesIO(checked.content)) as clean:  # the clean copy is all that is stored
        clean.load()
        assert clean.format == ("PNG" if stored[0] == "image/png" else "JPEG")
        assert clean.mode in {"RGB", "RGBA"} and not clean.getexif()
    if name == "16-bit greyscale":
        assert clean.getpixel((0, 0))[0] == 40000 // 256  # scaled to 8 bits, not clipped to white


@pytest.mark.django_db(transaction=True)
def test_the_cleaned_copies_render(user, settings):
    """Every image the corpus keeps renders with the local provider (ffmpeg reads the clean copy)."""
    settings.X264_PRESET = "ultrafast"
    kept = [name for name, (_, refused, _) in CORPUS.items() if refused is None]
    job = VideoJobFactory(owner=user, duration_seconds=len(kept), segment_seconds=1, continuity="parallel")
    for index, name in enumerate(kept):
        services.reference_image_add(job=job, upload=io.BytesIO(CORPUS[name][0]()), segment_index=index)
    services.video_job_render(job=job)
    assert inprocess_runner().wait_idle(timeout=120)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error


def test_a_run_that_overruns_is_killed_with_its_process_group(tmp_path):
    # It floods stderr (which would block a reader of stdout alone), then starts a grandchild and hangs.
    marker = tmp_path / "grandchild.pid"
    script = (
        "import os, subprocess, sys, time\n"
        "sys.stderr.write('x' * 5_000_000); sys.stderr.flush()\n"
        f"child = subprocess.Popen(['sleep', '60']); open({str(marker)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    with pytest.raises(TimedOut):
        run_bounded([sys.executable, "-c", script], timeout=2)
    grandchild = int(marker.read_text())
    # Reaped or gone: a zombie of a killed group has no running process to signal.
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(grandchild)], capture_output=True, text=True)
    assert state.stdout.strip() in {"", "Z"}, state.stdout


def test_a_finished_run_keeps_the_tail_of_stderr():
    finished = run_bounded(
        [sys.executable, "-c", "import sys; sys.stderr.write('a' * 200_000 + 'END'); print('out')"],
        timeout=30,
    )
    assert finished.returncode == 0 and finished.stdout.strip() == b"out"
    assert finished.stderr.endswith(b"END") and len(finished.stderr) <= 70_000
