"""The one seam through which work leaves jobs for the workers.

jobs decides *that* a run starts (services queue its segments); rendering decides *how* (Celery or the
in-process runner, which segment first). rendering plugs its starter in at start-up (rendering.apps),
so jobs never imports rendering and the arrows point one way (docs/architecture.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.db import transaction

RunStarter = Callable[[str, int], None]

_start_run: RunStarter | None = None


def register_run_starter(starter: RunStarter | None) -> None:
    global _start_run
    _start_run = starter


def start_run_after_commit(job_id: uuid.UUID | str, generation: int) -> None:
    """Hand run `generation` of the job to the workers once the queuing transaction commits."""
    starter = _start_run
    if starter is None:
        raise RuntimeError("no run starter is registered (is the rendering app installed?)")
    transaction.on_commit(lambda: starter(str(job_id), generation))
