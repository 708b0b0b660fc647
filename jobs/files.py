"""Stored files the domain owns (clips, frames, videos, images): removed after the rows that named them."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.core.files.storage import default_storage
from django.db import transaction

log = logging.getLogger(__name__)


def delete_files(names: Iterable[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:  # a leftover file is harmless; a crash here would undo nothing useful
            log.warning("could not delete %s", name, exc_info=True)


def delete_files_after_commit(names: Iterable[str]) -> None:
    """Delete once the transaction that stopped naming them commits (never while a reader may still
    be given the old name)."""
    names = list(names)
    if names:
        transaction.on_commit(lambda: delete_files(names))
