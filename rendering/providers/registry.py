"""Provider registry: `@register_provider("name")` on a VideoProvider class; `get_provider(name)`."""

from __future__ import annotations

from collections.abc import Callable

from .base import CapabilityError, VideoProvider

_PROVIDERS: dict[str, type[VideoProvider]] = {}


def register_provider(name: str) -> Callable[[type[VideoProvider]], type[VideoProvider]]:
    def decorator(cls: type[VideoProvider]) -> type[VideoProvider]:
        if name in _PROVIDERS and _PROVIDERS[name] is not cls:
            raise ValueError(f"provider {name!r} is already registered")
        cls.name = name
        _PROVIDERS[name] = cls
        return cls

    return decorator


def _load_builtins() -> None:
    from . import local, sora  # noqa: F401


def provider_names() -> list[str]:
    _load_builtins()
    return sorted(_PROVIDERS)


def get_provider(name: str) -> VideoProvider:
    _load_builtins()
    try:
        cls = _PROVIDERS[name]
    except KeyError:
        known = ", ".join(sorted(_PROVIDERS))
        raise CapabilityError(
            f"unknown provider {name!r}; choose one of: {known}", field="provider"
        ) from None
    return cls()
