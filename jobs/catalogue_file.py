"""The operator's catalogue file (PROVIDER_CATALOG_FILE, TOML): override a model's figures or add models,
with no deploy of code. Read when it changes (by modification time), checked strictly: an unknown key or
a wrong type stops with a message naming the file and the entry.

    [[models]]                      # change what a shipped model costs
    provider = "fal"
    id = "fal-ai/kling-video/v2.1/master"
    price_per_second = { "*" = "0.25" }

    [[models]]                      # add a model a gateway serves over the Videos protocol
    provider = "openai-videos"
    id = "gemini/veo-3.1-fast-generate-001"
    clip_seconds = [4, 6, 8]
    sizes = { "720p" = ["1280x720", "720x1280"] }
    price_per_second = { "720p" = "0.15" }
    endpoint = "https://litellm.example.com/v1"
    api_key_env = "LITELLM_API_KEY"

    [providers.fal]
    default_model = "fal-ai/kling-video/v2.5-turbo/pro"
"""

from __future__ import annotations

import dataclasses
import threading
import tomllib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .catalogue import ModelSpec, ProviderCatalogue

_FIELDS = {f.name: f for f in dataclasses.fields(ModelSpec)}
_lock = threading.Lock()
_cache: dict[str, tuple[float, dict[str, Any]]] = {}


def _fail(path: str, where: str, message: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"PROVIDER_CATALOG_FILE {path}: {where}: {message}")


def _lengths(value: Any, path: str, where: str, name: str) -> tuple[float, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise _fail(path, where, f"{name} must be a list of positive numbers of seconds")
    return tuple(sorted(float(v) for v in value))


def _convert(name: str, value: Any, path: str, where: str) -> Any:
    """A TOML value as the ModelSpec field wants it, or a message naming what is wrong."""
    if name in {"clip_seconds", "reference_seconds"}:
        return _lengths(value, path, where, name)
    if name == "seconds_by_resolution":
        if not isinstance(value, dict):
            raise _fail(path, where, f"{name} must be a table of resolution = [lengths]")
        return {str(k): _lengths(v, path, where, f"{name}.{k}") for k, v in value.items()}
    if name == "sizes":
        if not isinstance(value, dict) or not all(
            isinstance(v, list) and all(isinstance(s, str) for s in v) for v in value.values()
        ):
            raise _fail(path, where, 'sizes must be a table of resolution = ["WIDTHxHEIGHT", ...]')
        return {str(k): tuple(v) for k, v in value.items()}
    if name == "price_per_second":
        if not isinstance(value, dict):
            raise _fail(path, where, 'price_per_second must be a table such as { "720p" = "0.10" }')
        prices = {}
        for key, price in value.items():
            try:
                amount = Decimal(str(price))
            except InvalidOperation:
                raise _fail(path, where, f"price_per_second.{key} is not a number: {price!r}") from None
            if not amount.is_finite() or amount < 0:
                raise _fail(path, where, f"price_per_second.{key} must be a number of dollars >= 0")
            prices[str(key)] = amount
        return prices
    expected = _FIELDS[name].type
    if expected == "bool":
        if not isinstance(value, bool):
            raise _fail(path, where, f"{name} must be true or false")
        return value
    if expected == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _fail(path, where, f"{name} must be a whole number >= 0")
        return value
    if not isinstance(value, str):
        raise _fail(path, where, f"{name} must be text")
    return value


def _load(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ImproperlyConfigured(f"PROVIDER_CATALOG_FILE {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ImproperlyConfigured(f"PROVIDER_CATALOG_FILE {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"models", "providers"})
    if unknown:
        raise _fail(path, "top level", f"unknown keys {unknown}; use [[models]] and [providers.NAME]")
    models: dict[str, list[dict[str, Any]]] = {}
    for number, entry in enumerate(data.get("models", []), start=1):
        where = f"models entry {number}"
        if not isinstance(entry, dict) or not isinstance(entry.get("provider"), str) or not entry.get("id"):
            raise _fail(path, where, "each [[models]] needs a provider and an id")
        fields = {}
        for name, value in entry.items():
            if name in {"provider", "id"}:
                continue
            if name not in _FIELDS:
                raise _fail(path, where, f"unknown key {name!r}; known: {', '.join(sorted(_FIELDS))}")
            fields[name] = _convert(name, value, path, where)
        models.setdefault(entry["provider"], []).append({"id": str(entry["id"]), "fields": fields})
    providers = data.get("providers", {})
    for name, table in providers.items():
        if not isinstance(table, dict) or set(table) - {"default_model"}:
            raise _fail(path, f"providers.{name}", "only default_model may be set")
    return {"models": models, "providers": providers}


def overrides() -> dict[str, Any]:
    """The parsed file (empty without PROVIDER_CATALOG_FILE), re-read when its modification time changes."""
    path = settings.PROVIDER_CATALOG_FILE
    if not path:
        return {"models": {}, "providers": {}}
    try:
        mtime = Path(path).stat().st_mtime
    except OSError:
        raise ImproperlyConfigured(f"PROVIDER_CATALOG_FILE {path} does not exist") from None
    with _lock:
        cached = _cache.get(path)
        if cached is None or cached[0] != mtime:
            _cache[path] = (mtime, _load(path))
        return _cache[path][1]


def apply_overrides(catalogue: ProviderCatalogue) -> ProviderCatalogue:
    data = overrides()
    names = {catalogue.provider, *catalogue.aliases}
    entries = [entry for name in names for entry in data["models"].get(name, [])]
    defaults = [data["providers"][name] for name in names if name in data["providers"]]
    if not entries and not defaults:
        return catalogue
    models = list(catalogue.models)
    for entry in entries:
        index = next((i for i, spec in enumerate(models) if spec.id == entry["id"]), None)
        if index is None:
            models.append(ModelSpec(provider=catalogue.provider, id=entry["id"], **entry["fields"]))
        else:
            models[index] = dataclasses.replace(models[index], **entry["fields"])
    default = (
        defaults[0].get("default_model", catalogue.default_model) if defaults else catalogue.default_model
    )
    if default not in {spec.id for spec in models}:
        raise ImproperlyConfigured(
            f"PROVIDER_CATALOG_FILE {settings.PROVIDER_CATALOG_FILE}: providers.{catalogue.provider}."
            f"default_model {default!r} is not one of its models"
        )
    return dataclasses.replace(catalogue, models=tuple(models), default_model=default)
