"""Moving files between the storage backend (disk or S3) and the local paths that ffmpeg needs."""

from __future__ import annotations

import shutil
from pathlib import Path

from django.core.files.storage import default_storage


def local_copy(name: str, work_dir: Path) -> Path:
    """A local path holding the stored file `name`: the file itself on disk storage, else a download."""
    try:
        return Path(default_storage.path(name))
    except NotImplementedError:  # remote storage (S3): fetch a copy
        target = work_dir / Path(name).name
        with default_storage.open(name, "rb") as source, open(target, "wb") as dest:
            shutil.copyfileobj(source, dest, length=1024 * 1024)
        return target
