"""Create-request fields that another app owns (callbacks' `callback_url`): jobs.api declares the field
and hands its value to the app that registered for it, so jobs never imports that app (the same kind
of seam as jobs.events' publisher). With nothing registered the field is refused with a 400."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jobs.errors import InvalidInput
from jobs.models import VideoJob


@dataclass(frozen=True)
class CreateExtension:
    field: str
    # Raises InvalidInput (-> 400 naming the field) before anything is stored.
    check: Callable[[Any], None]
    # After the job is stored: does the app's part and returns keys to add to the 201 body.
    attach: Callable[..., dict[str, Any]]


_extensions: dict[str, CreateExtension] = {}


def register_create_extension(extension: CreateExtension) -> None:
    _extensions[extension.field] = extension


def check_create_extensions(data: Mapping[str, Any]) -> None:
    for field in data:
        extension = _extensions.get(field)
        if extension is None:
            raise InvalidInput({field: ["is not available on this server."]})
        extension.check(data[field])


def attach_create_extensions(*, owner: Any, job: VideoJob, data: Mapping[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    for field, value in data.items():
        extra.update(_extensions[field].attach(owner=owner, job=job, value=value))
    return extra
