from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from idempotency.services import idempotency_key_purge


class Command(BaseCommand):
    help = "Delete Idempotency-Key records older than IDEMPOTENCY_KEY_TTL_SECONDS."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"purged {idempotency_key_purge()} expired idempotency keys")
