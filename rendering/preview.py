"""Builds the "preview so far" for jobs.previews: the finished clips joined by stream copy.

The clips of one job share their format (the pipeline conforms every clip to the job's target before it
is kept), so a stream copy is enough: no re-encode, a fraction of a second for minutes of video.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage

from .assembly import concat_copy
from .storage_io import local_copy


def build_preview(clips: Sequence[tuple[str, float]], name: str) -> None:
    """Join the stored `clips` ((storage name, seconds shown) in order) into the storage name `name`."""
    with tempfile.TemporaryDirectory(prefix="preview-") as tmp:
        work = Path(tmp)
        paths = [local_copy(clip, work) for clip, _ in clips]
        joined = concat_copy(paths, work / "preview.mp4", durations=[seconds for _, seconds in clips])
        if default_storage.exists(name):  # built meanwhile by a parallel request: same takes, same file
            return
        with open(joined, "rb") as handle:
            saved = default_storage.save(name, File(handle, name=Path(name).name))
        if saved != name:  # lost a race to an identical file: keep one
            default_storage.delete(saved)
