from __future__ import annotations

from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"

    def ready(self) -> None:
        # jobs publishes through a seam so that it never imports realtime (docs/architecture.md).
        from jobs.events import register_publisher

        from .broadcast import publish

        register_publisher(publish)
