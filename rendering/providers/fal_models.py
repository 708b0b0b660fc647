"""fal's models in our catalogue: per model family, its ModelSpec (lengths, sizes, prices with and
without audio, inputs, with the source and date of each figure) and how its endpoints take their inputs
(field names for the duration, aspect ratio, first and last frame, reference images). The provider
(rendering.providers.fal) picks an endpoint per segment from these."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .base import ModelSpec, ProviderError

AS_OF = "2026-11-30"
SCHEMAS = "fal-ai/fal-js libs/types/src/video/types.gen.ts @973a3095"


# --- how each model takes its inputs -----------------------------------------------------------------


@dataclass(frozen=True)
class FalEndpoint:
    """One endpoint of a model family and the optional fields it takes (names are per FalInputs)."""

    id: str
    duration: bool = True
    aspect_ratio: bool = False
    resolution: bool = False
    audio: bool = False
    seed: bool = False
    first_frame: str | None = None  # field name of the first frame, where it takes one
    last_frame: str | None = None  # field name of the last frame
    references: str | None = None  # field name of the reference image list


@dataclass(frozen=True)
class FalInputs:
    """The input field names of one model family, and which endpoint serves which kind of segment."""

    text_to_video: FalEndpoint
    image_to_video: FalEndpoint | None = None
    # A separate endpoint for first + last frame (Veo); else the last frame rides on image_to_video.
    first_last_to_video: FalEndpoint | None = None
    reference_to_video: FalEndpoint | None = None
    duration_field: str = "duration"
    duration_format: str = "{:g}"  # Kling/Wan/Seedance: "5"; Veo: "8s"
    aspect_ratio_field: str = "aspect_ratio"
    resolution_field: str = "resolution"
    audio_field: str = "generate_audio"
    seed_field: str = "seed"

    def endpoints(self) -> tuple[FalEndpoint, ...]:
        found = (self.text_to_video, self.image_to_video, self.first_last_to_video, self.reference_to_video)
        return tuple(e for e in found if e is not None)


@dataclass(frozen=True)
class FalModel:
    spec: ModelSpec
    inputs: FalInputs


def _kling(family: str, label: str, price: str, page: str, *, tail: bool) -> FalModel:
    return FalModel(
        ModelSpec(
            provider="fal",
            id=family,
            label=label,
            clip_seconds=(5.0, 10.0),
            sizes={"1080p": ("1920x1080", "1080x1920")},
            price_per_second={"*": Decimal(price)},
            first_frame=True,
            last_frame=tail,
            max_prompt_chars=2500,
            source=f"{page}; input schema {SCHEMAS}",
            as_of=AS_OF,
        ),
        FalInputs(
            text_to_video=FalEndpoint(f"{family}/text-to-video", aspect_ratio=True),
            # No aspect_ratio on image-to-video: the clip takes the first frame's shape.
            image_to_video=FalEndpoint(
                f"{family}/image-to-video",
                first_frame="image_url",
                last_frame="tail_image_url" if tail else None,
            ),
        ),
    )


def _veo(family: str, label: str, prices: dict[str, str], *, references: bool) -> FalModel:
    def endpoint(path: str, **fields: Any) -> FalEndpoint:
        # Every Veo endpoint takes aspect_ratio, resolution and generate_audio.
        return FalEndpoint(path, aspect_ratio=True, resolution=True, audio=True, **fields)

    return FalModel(
        ModelSpec(
            provider="fal",
            id=family,
            label=label,
            clip_seconds=(4.0, 6.0, 8.0),
            sizes={
                "720p": ("1280x720", "720x1280"),
                "1080p": ("1920x1080", "1080x1920"),
                "4k": ("3840x2160", "2160x3840"),
            },
            price_per_second={key: Decimal(value) for key, value in prices.items()},
            first_frame=True,
            last_frame=True,
            reference_images=3 if references else 0,
            reference_seconds=(8.0,) if references else None,  # reference-to-video renders only 8 s
            audio=True,
            max_prompt_chars=20000,
            source=(
                f"fal.ai/models/{family}/llms.txt and .../first-last-frame-to-video/llms.txt (per-second "
                f"prices with/without audio, 720p/1080p vs 4k; 24 fps); input schema {SCHEMAS}"
            ),
            as_of=AS_OF,
        ),
        FalInputs(
            text_to_video=endpoint(family, seed=True),
            image_to_video=endpoint(f"{family}/image-to-video", seed=True, first_frame="image_url"),
            first_last_to_video=endpoint(
                f"{family}/first-last-frame-to-video",
                seed=True,
                first_frame="first_frame_url",
                last_frame="last_frame_url",
            ),
            # Reference-to-video takes no seed (and only 8 s clips).
            reference_to_video=endpoint(f"{family}/reference-to-video", references="image_urls")
            if references
            else None,
            duration_format="{:g}s",
        ),
    )


# Seedance bills video tokens: height x width x fps x seconds / 1024, at $2.4 per million with audio and
# $1.2 without (fal's page); at 24 fps a second of 720p is 21,600 tokens and of 1080p 48,600.
def _seedance_price(width: int, height: int, per_million: str) -> Decimal:
    tokens = Decimal(width * height * 24) / Decimal(1024)
    return tokens * Decimal(per_million) / Decimal(1_000_000)


FAL_MODELS: tuple[FalModel, ...] = (
    _kling(
        "fal-ai/kling-video/v2.5-turbo/pro",
        "Kling 2.5 Turbo Pro",
        "0.07",
        "fal.ai/models/fal-ai/kling-video/v2.5-turbo/pro/image-to-video/llms.txt ($0.35 per 5 s, $0.07 "
        "per extra second)",
        tail=True,
    ),
    _kling(
        "fal-ai/kling-video/v2.1/master",
        "Kling 2.1 Master",
        "0.28",
        "fal.ai/models/fal-ai/kling-video/v2.1/master/text-to-video/llms.txt ($1.40 per 5 s, $0.28 per "
        "extra second)",
        tail=False,
    ),
    FalModel(
        ModelSpec(
            provider="fal",
            id="fal-ai/wan-25-preview",
            label="Wan 2.5 (preview)",
            clip_seconds=(5.0, 10.0),
            sizes={"720p": ("1280x720", "720x1280"), "1080p": ("1920x1080", "1080x1920")},
            # Wan 2.5 always renders a soundtrack, at the same price.
            price_per_second={
                "720p": Decimal("0.10"),
                "720p+audio": Decimal("0.10"),
                "1080p": Decimal("0.15"),
                "1080p+audio": Decimal("0.15"),
            },
            first_frame=True,
            audio=True,
            max_prompt_chars=800,
            source=(
                "prices: inference.sh/apps/falai.md (fal's Wan 2.5: $0.05/$0.10/$0.15 per s at "
                "480p/720p/1080p; fal's own page is not in the stored copies); durations, 800-char "
                f"prompt and 360-2000 px first frame: input schema {SCHEMAS}"
            ),
            as_of=AS_OF,
        ),
        FalInputs(
            text_to_video=FalEndpoint(
                "fal-ai/wan-25-preview/text-to-video", aspect_ratio=True, resolution=True, seed=True
            ),
            image_to_video=FalEndpoint(
                "fal-ai/wan-25-preview/image-to-video", resolution=True, seed=True, first_frame="image_url"
            ),
        ),
    ),
    FalModel(
        ModelSpec(
            provider="fal",
            id="fal-ai/bytedance/seedance/v1.5/pro",
            label="Seedance 1.5 Pro",
            clip_seconds=tuple(float(s) for s in range(4, 13)),
            sizes={"720p": ("1280x720", "720x1280"), "1080p": ("1920x1080", "1080x1920")},
            price_per_second={
                "720p": _seedance_price(1280, 720, "1.2"),
                "720p+audio": _seedance_price(1280, 720, "2.4"),
                "1080p": _seedance_price(1920, 1080, "1.2"),
                "1080p+audio": _seedance_price(1920, 1080, "2.4"),
            },
            first_frame=True,
            last_frame=True,
            audio=True,
            source=(
                "fal.ai/models/fal-ai/bytedance/seedance/v1.5/pro/image-to-video/llms.txt ($2.4 per million "
                "video tokens with audio, $1.2 without; tokens = h*w*fps*s/1024; '720p 5 s with audio "
                f"roughly $0.26'); input schema {SCHEMAS}"
            ),
            as_of=AS_OF,
        ),
        FalInputs(
            text_to_video=FalEndpoint(
                "fal-ai/bytedance/seedance/v1.5/pro/text-to-video",
                aspect_ratio=True,
                resolution=True,
                audio=True,
                seed=True,
            ),
            # Seedance's image-to-video defaults aspect_ratio to 16:9 whatever the image: always send it.
            image_to_video=FalEndpoint(
                "fal-ai/bytedance/seedance/v1.5/pro/image-to-video",
                aspect_ratio=True,
                resolution=True,
                audio=True,
                seed=True,
                first_frame="image_url",
                last_frame="end_image_url",
            ),
        ),
    ),
    FalModel(
        ModelSpec(
            provider="fal",
            id="fal-ai/minimax/hailuo-02/pro",
            label="MiniMax Hailuo 02 Pro",
            clip_seconds=(6.0,),
            sizes={"1080p": ("1920x1080",)},
            price_per_second={"*": Decimal("0.08")},
            first_frame=True,
            last_frame=True,
            max_prompt_chars=2000,
            source=(
                "fal.ai/models/fal-ai/minimax/hailuo-02/pro/text-to-video ('$0.08/sec. A single 6 second "
                f"video will cost $0.48'; 1080p); input schema {SCHEMAS} (no duration field: 6 s)"
            ),
            as_of=AS_OF,
        ),
        FalInputs(
            text_to_video=FalEndpoint("fal-ai/minimax/hailuo-02/pro/text-to-video", duration=False),
            image_to_video=FalEndpoint(
                "fal-ai/minimax/hailuo-02/pro/image-to-video",
                duration=False,
                first_frame="image_url",
                last_frame="end_image_url",
            ),
        ),
    ),
    _veo(
        "fal-ai/veo3.1/fast",
        "Veo 3.1 Fast (fal)",
        {
            "720p": "0.10",
            "720p+audio": "0.15",
            "1080p": "0.10",
            "1080p+audio": "0.15",
            "4k": "0.30",
            "4k+audio": "0.35",
        },
        references=False,
    ),
    _veo(
        "fal-ai/veo3.1",
        "Veo 3.1 (fal)",
        {
            "720p": "0.20",
            "720p+audio": "0.40",
            "1080p": "0.20",
            "1080p+audio": "0.40",
            "4k": "0.40",
            "4k+audio": "0.60",
        },
        references=True,
    ),
)

MODELS: tuple[ModelSpec, ...] = tuple(model.spec for model in FAL_MODELS)
_BY_ID: dict[str, FalModel] = {model.spec.id: model for model in FAL_MODELS}


def fal_model(model_id: str) -> FalModel:
    try:
        return _BY_ID[model_id]
    except KeyError:
        raise ProviderError(
            f"unknown fal model {model_id!r}; this provider offers: {', '.join(_BY_ID)}",
            permanent=True,
            code="invalid_request",
        ) from None
