from __future__ import annotations

from django.apps import AppConfig


class CallbacksConfig(AppConfig):
    name = "callbacks"
    verbose_name = "Outgoing webhooks"

    def ready(self) -> None:
        # jobs publishes committed state through a seam; we listen beside realtime, so jobs imports
        # neither (docs/architecture.md).
        from jobs.api.extensions import register_create_extension
        from jobs.events import add_listener
        from rendering.transport import add_sweep

        from . import tasks  # noqa: F401 - registers the task names rendering.transport sends
        from .api.job_callback import EXTENSION
        from .listeners import on_job_event
        from .services import deliveries_sweep

        add_listener(on_job_event)
        register_create_extension(EXTENSION)
        # No beat on the embedded default: its runner's sweeper re-sends lost deliveries instead.
        add_sweep(deliveries_sweep)
