"""Provider registry. The providers a deployment offers are classes named by dotted path in
settings.VIDEO_PROVIDERS, so a team adds its own provider without editing this module; each class
registers itself under its name with `@register_provider("name")`. `get_provider(name)` builds one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .base import CapabilityError, VideoProvider

_PROVIDERS: dict[str, type[VideoProvider]] = {}
_loaded: tuple[str, ...] = ()
_lock = threading.Lock()


def register_provider(
    name: str, *, aliases: tuple[str, ...] = ()
) -> Callable[[type[VideoProvider]], type[VideoProvider]]:
    """Register a provider class under `name` (and older `aliases` jobs may still name)."""

    def decorator(cls: type[VideoProvider]) -> type[VideoProvider]:
        for key in (name, *aliases):
            if key in _PROVIDERS and _PROVIDERS[key] is not cls:
                raise ValueError(f"provider {key!r} is already registered")
            _PROVIDERS[key] = cls
        cls.name = name
        return cls

    return decorator


def _load_configured() -> None:
    """Import every class named in VIDEO_PROVIDERS (once per value of the setting)."""
    global _loaded
    paths = tuple(settings.VIDEO_PROVIDERS)
    if paths == _loaded:
        return
    with _lock:
        for path in paths:
            try:
                cls = import_string(path)
            except ImportError as exc:
                raise ImproperlyConfigured(
                    f"VIDEO_PROVIDERS names {path!r}, which cannot be imported: {exc}"
                ) from exc
            if not (isinstance(cls, type) and issubclass(cls, VideoProvider) and cls.name):
                raise ImproperlyConfigured(
                    f"VIDEO_PROVIDERS names {path!r}, which is not a VideoProvider registered with "
                    "@register_provider"
                )
        _loaded = paths


def _offered() -> dict[str, type[VideoProvider]]:
    _load_configured()
    offered = {import_string(path) for path in _loaded}
    return {name: cls for name, cls in _PROVIDERS.items() if cls in offered}


def provider_names() -> list[str]:
    """The offered providers by their own names (aliases are accepted, not listed)."""
    return sorted({cls.name for cls in _offered().values()})


def get_provider(name: str) -> VideoProvider:
    offered = _offered()
    try:
        cls = offered[name]
    except KeyError:
        raise CapabilityError(
            f"unknown provider {name!r}; choose one of: {', '.join(provider_names())}", field="provider"
        ) from None
    return cls()
