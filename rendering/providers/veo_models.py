"""Veo 3.1 on Vertex AI in our catalogue: the three GA models' lengths, sizes, prices with and without
audio and inputs, with the source and date of each figure. The provider is rendering.providers.veo."""

from __future__ import annotations

from decimal import Decimal

from .base import ModelSpec

DEFAULT_MODEL = "veo-3.1-fast-generate-001"


# --- catalogue --------------------------------------------------------------------------------------

_SIZES = {"720p": ("1280x720", "720x1280"), "1080p": ("1920x1080", "1080x1920")}
ASPECT_RATIOS = {"1280x720": "16:9", "720x1280": "9:16", "1920x1080": "16:9", "1080x1920": "9:16"}
_AS_OF = "2026-11-30"
_LIMITS_SOURCE = (
    "Vertex AI Veo reference (model-reference/veo-video-generation), Veo 3.1 model pages and "
    "'Extend a Veo video' (cloud.google.com, stored copies): 4/6/8 s, 8 s for 1080p and reference images, "
    "16:9 / 9:16, 720p / 1080p at 24 fps, up to 3 asset reference images (none on lite), extension on "
    "all three GA models"
)


def _prices(
    video: str, audio: str, video_1080p: str | None = None, audio_1080p: str | None = None
) -> dict[str, Decimal]:
    return {
        "720p": Decimal(video),
        "1080p": Decimal(video_1080p or video),
        "720p+audio": Decimal(audio),
        "1080p+audio": Decimal(audio_1080p or audio),
    }


def _model(
    model_id: str, label: str, prices: dict[str, Decimal], *, references: int, price_source: str
) -> ModelSpec:
    """A Veo 3.1 GA model: the lengths, sizes and inputs the three share, its own prices and slots."""
    return ModelSpec(
        provider="veo",
        id=model_id,
        label=label,
        clip_seconds=(4.0, 6.0, 8.0),
        sizes=_SIZES,
        seconds_by_resolution={"1080p": (8.0,)},
        price_per_second=prices,
        first_frame=True,
        last_frame=True,
        reference_images=references,
        reference_seconds=(8.0,) if references else None,  # reference images need 8 s clips
        extension=True,
        audio=True,
        # Veo's prompt limit is 1,024 tokens (LiteLLM's model table); ~4 characters a token.
        max_prompt_chars=4000,
        source=f"{_LIMITS_SOURCE}; prices: {price_source}",
        as_of=_AS_OF,
    )


MODELS: tuple[ModelSpec, ...] = (
    # $0.40/s with audio, $0.20/s video only, same at 720p and 1080p: Google's Vertex pricing page as
    # copied by third parties (e.g. the echo SDK's vertex model table and qingbo's "official" tier).
    _model(
        "veo-3.1-generate-001",
        "Veo 3.1",
        _prices("0.20", "0.40"),
        references=3,
        price_source="Vertex AI pricing page via third-party copies "
        "(/work/shared/providers-2026.md: std $0.40/s)",
    ),
    # Google's launch price, $0.15/s with audio and $0.10/s without; resellers list $0.10-0.12 with audio
    # in 2026. The higher figure is kept so an estimate never undershoots the bill.
    _model(
        "veo-3.1-fast-generate-001",
        "Veo 3.1 Fast",
        _prices("0.10", "0.15"),
        references=3,
        price_source="Vertex AI pricing page via third-party copies "
        "(/work/shared/providers-2026.md: fast $0.10-0.12/s)",
    ),
    # Priced by resolution: $0.05/s (720p) and $0.08/s (1080p) with audio (LiteLLM's model table,
    # Lumenfall), $0.03 / $0.05 without (Lumenfall, from Vertex's Lite pricing). No reference images.
    _model(
        "veo-3.1-lite-generate-001",
        "Veo 3.1 Lite",
        _prices("0.03", "0.05", video_1080p="0.05", audio_1080p="0.08"),
        references=0,
        price_source="LiteLLM model_prices (vertex_ai/veo-3.1-lite-generate-001) and Lumenfall "
        "(/work/shared/providers-2026.md: lite $0.05-0.08/s)",
    ),
)
MODEL_BY_ID = {spec.id: spec for spec in MODELS}
