"""The model catalogue: per provider model, the clip lengths it renders, its sizes per resolution, its
price per second and the inputs it takes. It lives here, below planning, because planning and pricing
need it; the provider plugins (rendering.providers) fill it at start-up through `register_catalogue`,
so jobs never imports rendering. See docs/architecture.md, "Adding a provider".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


class CapabilityError(ValueError):
    """A request that the provider cannot serve (size, model, length). `field` names the input."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class ModelSpec:
    """One model of one provider, as the catalogue lists it. Figures carry their source and date."""

    provider: str
    # The provider's model id: "veo-3.1-fast-generate-001", or for fal an endpoint family such as
    # "fal-ai/kling-video/v2.1/master" whose text-to-video / image-to-video endpoints are picked per segment.
    id: str
    label: str = ""
    # The clip lengths the model renders; None: any length (the local renderer).
    clip_seconds: tuple[float, ...] | None = None
    # Resolution name -> the WIDTHxHEIGHT sizes offered at it, e.g. {"720p": ("1280x720", "720x1280")}.
    # Empty: any even WIDTHxHEIGHT.
    sizes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Lengths allowed per resolution where the model restricts them (Veo: 1080p only at 8 s).
    seconds_by_resolution: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    # USD per rendered second by resolution ("720p"), with "+audio" where audio is priced apart
    # ("720p+audio"); "*" applies to any resolution not listed.
    price_per_second: Mapping[str, Decimal] = field(default_factory=dict)
    text_to_video: bool = True
    first_frame: bool = False
    last_frame: bool = False
    reference_images: int = 0  # how many reference ("asset", "ingredient") images it takes
    extension: bool = False  # native extension of a previous clip
    audio: bool = False  # renders a soundtrack
    max_prompt_chars: int = 32000
    # The provider refuses a first-frame image that is not exactly the clip's size (the Videos protocol).
    reference_must_match_size: bool = False
    source: str = ""  # where the figures come from
    as_of: str = ""  # the date they were read, YYYY-MM-DD

    def resolution_of(self, size: str) -> str:
        for name, sizes in self.sizes.items():
            if size in sizes:
                return name
        return ""

    def all_sizes(self) -> tuple[str, ...] | None:
        if not self.sizes:
            return None
        return tuple(s for sizes in self.sizes.values() for s in sizes)


@dataclass(frozen=True)
class Capabilities:
    """What one provider offers, across its models (the planner's and the API's view of it)."""

    models: tuple[str, ...]
    default_model: str
    # None: any even WIDTHxHEIGHT is accepted.
    sizes: tuple[str, ...] | None
    # None: any length is rendered exactly; else the provider renders only these lengths.
    clip_seconds: tuple[float, ...] | None
    # USD per rendered second, by "model" or, more specific, "model@WIDTHxHEIGHT".
    price_per_second: dict[str, Decimal] = field(default_factory=dict)
    max_prompt_chars: int = 32000
    supports_reference_image: bool = True
    # Sizes per model where a model offers fewer than `sizes`.
    sizes_by_model: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The provider refuses a reference image that is not exactly the clip's size (the Videos API).
    reference_must_match_size: bool = False

    def check_model(self, model: str) -> str:
        chosen = model or self.default_model
        if chosen not in self.models:
            raise CapabilityError(
                f"unknown model {chosen!r}; this provider offers: {', '.join(self.models)}", field="model"
            )
        return chosen

    def check_size(self, size: str, model: str = "") -> str:
        from .sizes import parse_size

        try:
            parse_size(size)
        except ValueError as exc:
            raise CapabilityError(str(exc), field="size") from None
        allowed = self.sizes_by_model.get(model) or self.sizes
        if allowed is not None and size not in allowed:
            who = f"model {model}" if model in self.sizes_by_model else "this provider"
            raise CapabilityError(
                f"size {size!r} is not offered by {who}; choose one of: {', '.join(allowed)}", field="size"
            )
        return size

    def billed_seconds(self, seconds: float) -> float:
        """The clip length the provider renders (and bills) for a segment of `seconds`.

        Providers with a fixed set of lengths render the nearest allowed length at or above the
        segment; assembly trims the extra.
        """
        if self.clip_seconds is None:
            return seconds
        for allowed in sorted(self.clip_seconds):
            if allowed + 1e-9 >= seconds:
                return float(allowed)
        longest = max(self.clip_seconds)
        raise CapabilityError(
            f"segments of {seconds:g} s are longer than this provider's longest clip ({longest:g} s); "
            f"use segment_seconds of at most {longest:g}",
            field="segment_seconds",
        )

    def price(self, model: str, size: str = "") -> Decimal:
        if size and f"{model}@{size}" in self.price_per_second:
            return self.price_per_second[f"{model}@{size}"]
        return self.price_per_second.get(model, Decimal("0"))

    def cost(self, model: str, billed_seconds: float, size: str = "") -> Decimal:
        # Providers bill whole seconds; round up so the estimate never undershoots.
        seconds = Decimal(math.ceil(billed_seconds - 1e-9))
        return (self.price(model, size) * seconds).quantize(Decimal("0.0001"))


# --- The seam: filled by the provider plugins at start-up ------------------------------------------

CapabilitiesSource = Callable[[str], Capabilities]
NamesSource = Callable[[], list[str]]

_capabilities: CapabilitiesSource | None = None
_names: NamesSource | None = None


def register_catalogue(*, capabilities: CapabilitiesSource, names: NamesSource) -> None:
    """Called once by rendering's AppConfig.ready(): how to read a provider's capabilities by name."""
    global _capabilities, _names
    _capabilities, _names = capabilities, names


def provider_capabilities(name: str) -> Capabilities:
    """The capabilities of provider `name`; CapabilityError(field="provider") for an unknown name."""
    if _capabilities is None:
        raise RuntimeError("no provider catalogue is registered (is the rendering app installed?)")
    return _capabilities(name)


def provider_names() -> list[str]:
    if _names is None:
        raise RuntimeError("no provider catalogue is registered (is the rendering app installed?)")
    return _names()


def provider_rows() -> list[dict[str, Any]]:
    """Every provider with its models, sizes, lengths and prices: the one listing that the API, the
    workspace, the admin and `manage.py providers` show."""
    rows = []
    for name in provider_names():
        caps = provider_capabilities(name)
        rows.append(
            {
                "name": name,
                "models": list(caps.models),
                "default_model": caps.default_model,
                "sizes": list(caps.sizes) if caps.sizes is not None else None,
                "sizes_by_model": {model: list(sizes) for model, sizes in caps.sizes_by_model.items()},
                "clip_seconds": list(caps.clip_seconds) if caps.clip_seconds is not None else None,
                "price_per_second": dict(caps.price_per_second),
                "max_prompt_chars": caps.max_prompt_chars,
                "supports_reference_image": caps.supports_reference_image,
            }
        )
    return rows
