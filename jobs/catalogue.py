"""The model catalogue: per provider model, the clip lengths it renders, its sizes per resolution, its
price per second and the inputs it takes (first frame, last frame, reference images, extension, audio).

It lives here, below planning, because planning and pricing need it; the provider plugins
(rendering.providers) fill it at start-up through `register_catalogue`, so jobs never imports
rendering. Defaults ship in each provider's code with the source and date of every figure; an operator
overrides prices or adds models with a TOML file named by PROVIDER_CATALOG_FILE (jobs.catalogue_file),
without a deploy. See docs/architecture.md, "Adding a provider".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings

from .sizes import parse_size

MONEY_QUANTUM = Decimal("0.0001")


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
    # Lengths allowed when reference images are sent, where the model restricts them (Veo: 8 s).
    reference_seconds: tuple[float, ...] | None = None
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
    # Where a gateway serves this model, when it is not the provider's configured base URL (the Videos
    # protocol behind Azure for one model and LiteLLM for another), and the environment variable that
    # holds that gateway's key.
    endpoint: str = ""
    api_key_env: str = ""
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

    def check_size(self, size: str) -> str:
        try:
            parse_size(size)
        except ValueError as exc:
            raise CapabilityError(str(exc), field="size") from None
        offered = self.all_sizes()
        if offered is not None and size not in offered:
            raise CapabilityError(
                f"size {size!r} is not offered by {self.id}; choose one of: {', '.join(offered)}",
                field="size",
            )
        return size

    def lengths_for(self, size: str, *, references: bool = False) -> tuple[float, ...] | None:
        """The clip lengths the model renders at `size` (None: any length), with reference images when
        `references`."""
        lengths = self.seconds_by_resolution.get(self.resolution_of(size)) or self.clip_seconds
        if references and self.reference_seconds:
            lengths = tuple(s for s in (lengths or self.reference_seconds) if s in self.reference_seconds)
        return lengths

    def price(self, size: str, *, audio: bool = False) -> Decimal:
        """USD per rendered second at `size`, with a soundtrack when `audio`."""
        resolution = self.resolution_of(size)
        keys = [f"{resolution}+audio", "*+audio"] if audio else []
        keys += [resolution, "*"]
        for key in keys:
            if key and key in self.price_per_second:
                return self.price_per_second[key]
        raise CapabilityError(f"the catalogue has no price for {self.id} at {size}", field="size")

    def cost(self, seconds: float, size: str, *, audio: bool = False) -> Decimal:
        # Providers bill whole seconds; round up so the estimate never undershoots.
        whole = Decimal(math.ceil(seconds - 1e-9))
        return (self.price(size, audio=audio) * whole).quantize(MONEY_QUANTUM)

    def features(self) -> list[str]:
        names = [
            ("text_to_video", self.text_to_video),
            ("first_frame", self.first_frame),
            ("last_frame", self.last_frame),
            ("reference_images", self.reference_images > 0),
            ("extension", self.extension),
            ("audio", self.audio),
        ]
        return [name for name, present in names if present]


@dataclass(frozen=True)
class ProviderCatalogue:
    """What one provider offers: its models, its default, and the settings it needs to render."""

    provider: str
    models: tuple[ModelSpec, ...]
    default_model: str
    # Settings that must be set before the provider can render (e.g. FAL_KEY).
    requires: tuple[str, ...] = ()
    label: str = ""
    # Other names a job may give for this provider (the Videos protocol was first called "sora").
    aliases: tuple[str, ...] = ()

    def model(self, model_id: str = "") -> ModelSpec:
        chosen = model_id or self.default_model
        for spec in self.models:
            if spec.id == chosen:
                return spec
        offered = ", ".join(spec.id for spec in self.models)
        raise CapabilityError(f"unknown model {chosen!r}; {self.provider} offers: {offered}", field="model")

    def missing_settings(self) -> list[str]:
        """The required settings that are not set: the provider is unavailable until they are."""
        return [name for name in self.requires if not getattr(settings, name, "")]


# What each continuity mode needs of the model, in words for the refusal.
_CONTINUITY_NEEDS: dict[str, tuple[Callable[[ModelSpec], bool], str]] = {
    "chain": (lambda m: m.first_frame, "a model that starts a clip from a given first frame"),
    "bridge": (
        lambda m: m.first_frame and m.last_frame,
        "a model that renders between a given first and last frame",
    ),
    "reference": (
        lambda m: m.reference_images > 0 or m.first_frame,
        "a model that takes reference images or a first frame",
    ),
}


def continuity_lacks(continuity: str, model: ModelSpec) -> str:
    """Why `model` cannot do `continuity` ("continuity 'bridge' needs ..."), or "" when it can."""
    needs = _CONTINUITY_NEEDS.get(continuity)
    if needs is None or needs[0](model):
        return ""
    return f"continuity {continuity!r} needs {needs[1]}"


# --- The seam: filled by the provider plugins at start-up ------------------------------------------

CatalogueSource = Callable[[str], ProviderCatalogue]
NamesSource = Callable[[], list[str]]

_catalogue: CatalogueSource | None = None
_names: NamesSource | None = None


def register_catalogue(*, catalogue: CatalogueSource, names: NamesSource) -> None:
    """Called once by rendering's AppConfig.ready(): how to read a provider's catalogue by name."""
    global _catalogue, _names
    _catalogue, _names = catalogue, names


def _source() -> tuple[CatalogueSource, NamesSource]:
    if _catalogue is None or _names is None:
        raise RuntimeError("no provider catalogue is registered (is the rendering app installed?)")
    return _catalogue, _names


def provider_catalogue(name: str) -> ProviderCatalogue:
    """Provider `name`'s catalogue with the operator's file applied; CapabilityError(field="provider")
    for an unknown name."""
    from .catalogue_file import apply_overrides

    catalogue, _ = _source()
    return apply_overrides(catalogue(name))


def provider_names() -> list[str]:
    _, names = _source()
    return names()


def model_spec(provider: str, model: str = "") -> ModelSpec:
    return provider_catalogue(provider).model(model)


def check_available(catalogue: ProviderCatalogue) -> None:
    """Refuse a provider that cannot render here, naming the settings to set."""
    missing = catalogue.missing_settings()
    if missing:
        raise CapabilityError(
            f"provider {catalogue.provider!r} is not configured on this server: set {' and '.join(missing)}",
            field="provider",
        )


def provider_rows() -> list[dict[str, Any]]:
    """Every provider with its models, what each renders and costs, and whether it can be used here: the
    one listing that the API, the workspace, the admin and `manage.py providers` show."""
    rows = []
    for name in provider_names():
        catalogue = provider_catalogue(name)
        missing = catalogue.missing_settings()
        rows.append(
            {
                "name": catalogue.provider,
                "label": catalogue.label or catalogue.provider,
                "aliases": list(catalogue.aliases),
                "available": not missing,
                "missing_settings": missing,
                "default_model": catalogue.default_model,
                "models": [model_row(spec) for spec in catalogue.models],
            }
        )
    return rows


def model_row(spec: ModelSpec) -> dict[str, Any]:
    return {
        "id": spec.id,
        "label": spec.label or spec.id,
        "clip_seconds": list(spec.clip_seconds) if spec.clip_seconds is not None else None,
        "sizes": {resolution: list(sizes) for resolution, sizes in spec.sizes.items()},
        "seconds_by_resolution": {res: list(lengths) for res, lengths in spec.seconds_by_resolution.items()},
        "reference_seconds": list(spec.reference_seconds) if spec.reference_seconds else None,
        "price_per_second": dict(spec.price_per_second),
        "features": spec.features(),
        "reference_images": spec.reference_images,
        "max_prompt_chars": spec.max_prompt_chars,
        "source": spec.source,
        "as_of": spec.as_of,
    }
