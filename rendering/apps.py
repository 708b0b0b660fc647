from __future__ import annotations

from django.apps import AppConfig


class RenderingConfig(AppConfig):
    name = "rendering"

    def ready(self) -> None:
        # jobs reaches rendering only through seams filled here, so jobs never imports rendering and
        # the arrows point one way (docs/architecture.md).
        from jobs.catalogue import register_catalogue
        from jobs.previews import register_preview_builder
        from jobs.work_queue import register_run_starter

        from . import tasks  # noqa: F401 - registers the task names that rendering.transport sends
        from .dispatch import enqueue_render
        from .preview import build_preview
        from .providers.registry import get_provider, provider_names
        from .reaper import reap_stale
        from .transport import set_sweeper

        register_catalogue(catalogue=lambda name: get_provider(name).catalogue(), names=provider_names)
        register_run_starter(enqueue_render)
        register_preview_builder(build_preview)
        set_sweeper(reap_stale)
