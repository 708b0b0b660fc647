"""Input serializers (plain Serializers: they validate, the services write) and output serializers (they
only read attributes of objects the selectors loaded with their relations prefetched).

Input is strict JSON: numbers must be JSON numbers (not "10"), booleans JSON booleans, text JSON strings,
and unknown keys are refused, so a typo such as "segment_second" is an error instead of a silent default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs import ledger
from jobs.models import (
    Continuity,
    JobStatus,
    ReferenceFit,
    ReferenceImage,
    Segment,
    SegmentStatus,
    SpendEntry,
    SpendKind,
    VideoJob,
)
from rendering.providers.registry import get_provider, provider_names
from segmentation.registry import strategy_choices, strategy_names

SEGMENTATION_MODES = ("auto", "manual")
DEFAULT_STRATEGY = "even"


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


# --- Strict JSON fields -----------------------------------------------------------------------------


class StrictCharField(serializers.CharField):
    # Text only: DRF's CharField would turn 123 into "123".

    default_error_messages = {"invalid": "Must be a string, not {kind}."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid", kind=_kind(data))
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    # A finite JSON number: no numeric strings, no booleans, no NaN or infinity.

    default_error_messages = {
        "invalid": "Must be a number, not {kind}.",
        "not_finite": "Must be a finite number.",
    }

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid", kind=_kind(data))
        try:
            value = float(data)
        except OverflowError:  # an integer with hundreds of digits
            self.fail("not_finite")
        if not math.isfinite(value):
            self.fail("not_finite")
        return value


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "Must be a whole number, not {kind}."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid", kind=_kind(data))
        if isinstance(data, float):
            if not (math.isfinite(data) and data.is_integer()):
                self.fail("invalid", kind=f"the fraction {data!r}")
            data = int(data)
        return data


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be true or false, not {kind}."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", kind=_kind(data))
        return data


def _choice_field(choices: list[str], what: str, **kwargs: Any) -> serializers.ChoiceField:
    listed = ", ".join(choices)
    return serializers.ChoiceField(
        choices=choices,
        error_messages={"invalid_choice": f'unknown {what} "{{input}}"; choose one of: {listed}'},
        **kwargs,
    )


def _seconds_field(low: float, high: float, **kwargs: Any) -> StrictFloatField:
    return StrictFloatField(
        min_value=low,
        max_value=high,
        error_messages={
            "min_value": f"Must be between {low:g} and {high:g} seconds.",
            "max_value": f"Must be between {low:g} and {high:g} seconds.",
        },
        **kwargs,
    )


class StrictInputSerializer(serializers.Serializer):
    # Refuses keys it does not know, reported per key alongside the other field errors.

    def to_internal_value(self, data: Any) -> Any:
        unknown: dict[str, list[str]] = {}
        if isinstance(data, Mapping):
            accepted = sorted(name for name, field in self.fields.items() if not field.read_only)
            unknown = {
                str(key): [f"Unknown field. Accepted fields: {', '.join(accepted)}."]
                for key in data
                if key not in self.fields
            }
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **unknown}) from None
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


# --- Input --------------------------------------------------------------------------------------------


class SegmentPromptSerializer(StrictInputSerializer):
    prompt = StrictCharField(help_text="What happens in this segment.")

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["prompt"] = StrictCharField(
            max_length=settings.MAX_SEGMENT_PROMPT_CHARS, help_text="What happens in this segment."
        )
        return fields


class VideoJobSpecSerializer(StrictInputSerializer):
    """What defines a job: the story, its length, how it is split and how it is rendered."""

    # Limits and choices are read when the serializer is built (get_fields), from settings and from the
    # strategy and provider registries, so validation and the schema always show what is accepted.

    title = StrictCharField(required=False, allow_blank=True, max_length=200, default="")
    prompt = StrictCharField(help_text="The whole story; it is split into segments.")
    duration_seconds = StrictFloatField(help_text="Length of the finished video.")
    segment_seconds = StrictFloatField(required=False, help_text="Planned length of each segment.")
    segmentation_mode = serializers.ChoiceField(
        choices=SEGMENTATION_MODES,
        default="auto",
        help_text="auto: a strategy splits the prompt; manual: one prompt per segment in `segments`.",
    )
    strategy = serializers.CharField(required=False)
    segments = serializers.ListField(child=SegmentPromptSerializer(), required=False)
    continuity = _choice_field(
        list(Continuity.values),
        "continuity",
        default=Continuity.PARALLEL,
        help_text="parallel: all segments at once; chain: each starts from the previous clip's last "
        "frame; reference: every segment uses the job's reference image.",
    )
    reference_fit = _choice_field(list(ReferenceFit.values), "reference_fit", default=ReferenceFit.COVER)
    provider = serializers.CharField(required=False)
    model = StrictCharField(
        required=False, allow_blank=True, max_length=80, help_text="Empty: the provider's default model."
    )
    size = StrictCharField(required=False, max_length=20, help_text="WIDTHxHEIGHT, e.g. 1280x720.")
    fps = StrictIntegerField(required=False, min_value=1, max_value=120)
    render = StrictBooleanField(default=True, help_text="Start rendering at once.")
    use_cache = StrictBooleanField(
        default=True,
        help_text="Reuse an identical finished clip of yours instead of paying for it again; false asks for "
        "a fresh take of every segment.",
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["prompt"] = StrictCharField(
            max_length=settings.MAX_JOB_PROMPT_CHARS, help_text="The whole story; it is split into segments."
        )
        fields["duration_seconds"] = _seconds_field(
            settings.MIN_DURATION_SECONDS, settings.MAX_DURATION_SECONDS, help_text="Length of the video."
        )
        fields["segment_seconds"] = _seconds_field(
            settings.MIN_SEGMENT_SECONDS,
            settings.MAX_SEGMENT_SECONDS,
            default=settings.DEFAULT_SEGMENT_SECONDS,
            help_text="Planned length of each segment.",
        )
        strategies = strategy_choices()
        fields["strategy"] = _choice_field(
            [name for name, _ in strategies],
            "strategy",
            required=False,
            help_text="Default: even (auto mode), manual (manual mode). "
            + "; ".join(f"{name}: {description}" for name, description in strategies),
        )
        # Bounded so that a huge list is refused before any planning work.
        most = math.ceil(settings.MAX_DURATION_SECONDS / settings.MIN_SEGMENT_SECONDS)
        fields["segments"] = serializers.ListField(
            child=SegmentPromptSerializer(),
            required=False,
            max_length=most,
            help_text="Manual mode only: one {prompt} per segment, in order.",
        )
        fields["provider"] = _choice_field(
            provider_names(), "provider", default=settings.DEFAULT_PROVIDER, help_text="Video provider."
        )
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        strategy = attrs.get("strategy")
        segments = attrs.get("segments")
        if attrs["segmentation_mode"] == "manual":
            if strategy not in (None, "manual"):
                errors["strategy"] = [
                    "segmentation_mode 'manual' uses the 'manual' strategy; "
                    f"leave strategy out, not {strategy!r}"
                ]
            if not segments:
                errors["segments"] = [
                    "segmentation_mode 'manual' needs segments: a list of {\"prompt\": ...}, one per segment"
                ]
            attrs["strategy"] = "manual"
        else:
            if segments is not None:
                errors["segments"] = ["segments are only accepted with segmentation_mode 'manual'"]
            if strategy == "manual":
                errors["strategy"] = ["strategy 'manual' needs segmentation_mode 'manual' and segments"]
            if strategy is None:
                names = [n for n in strategy_names() if n != "manual"]
                attrs["strategy"] = DEFAULT_STRATEGY if DEFAULT_STRATEGY in names else names[0]
        if errors:
            raise serializers.ValidationError(errors)
        attrs["manual_prompts"] = [item["prompt"] for item in segments or ()]
        return attrs


class VideoJobCreateSerializer(VideoJobSpecSerializer):
    """A new job. With render true (the default) it starts rendering at once."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if attrs["render"] and attrs["continuity"] == Continuity.REFERENCE:
            # Said here, before anything is stored: the service would refuse the render anyway.
            raise serializers.ValidationError(
                {
                    "continuity": [
                        "continuity 'reference' needs a reference image before rendering: create with "
                        "render false, upload the image, then POST .../render/"
                    ]
                }
            )
        return attrs


class VideoJobEstimateSerializer(VideoJobSpecSerializer):
    """The create fields (the same payload may be sent); nothing is stored. title, render, continuity,
    reference_fit, fps and use_cache do not change the estimate (cache hits are not subtracted: an
    estimate is what the job costs at most)."""


class SegmentUpdateSerializer(StrictInputSerializer):
    prompt = StrictCharField(help_text="The new prompt; marks the segment as manually written.")

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["prompt"] = StrictCharField(
            max_length=settings.MAX_SEGMENT_PROMPT_CHARS,
            help_text="The new prompt; marks the segment as manually written.",
        )
        return fields


class RerenderSerializer(StrictInputSerializer):
    segments = serializers.ListField(
        child=StrictIntegerField(min_value=0, max_value=1_000_000),
        min_length=1,
        max_length=10_000,
        help_text="Indexes of the segments to render again.",
    )


class ReferenceImageUploadSerializer(serializers.Serializer):
    # Not ImageField: the service checks the content with Pillow (type, bytes, pixels, bombs).
    image = serializers.FileField(help_text="PNG, JPEG or WebP; checked by content, not by name.")
    segment_index = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=1_000_000,
        help_text="Attach to one segment instead of the whole job.",
    )


# --- Output -------------------------------------------------------------------------------------------


class EnumField(serializers.CharField):
    # A read-only string from a fixed set, documented as a named enum component (see below).

    def __init__(self, *, enum_name: str, values: list[str], **kwargs: Any) -> None:
        self.enum_name = enum_name
        self.values = values
        super().__init__(read_only=True, **kwargs)


class _EnumFieldExtension(OpenApiSerializerFieldExtension):
    # Job and segment statuses are both called "status" with different value sets; spectacular's own
    # enum naming would collide on that name and warn, so each set is registered under its own name.
    target_class = EnumField

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        field: EnumField = self.target
        component = ResolvedComponent(
            name=field.enum_name,
            type=ResolvedComponent.SCHEMA,
            object=field.enum_name,
            schema={"type": "string", "enum": field.values},
        )
        auto_schema.registry.register_on_missing(component)
        return component.ref


def JobStatusField() -> EnumField:
    return EnumField(enum_name="JobStatusEnum", values=list(JobStatus.values))


def SegmentStatusField() -> EnumField:
    return EnumField(enum_name="SegmentStatusEnum", values=list(SegmentStatus.values))


def _money(**kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=12, decimal_places=4, read_only=True, **kwargs)


# Renders a Decimal the way the _money() fields do ("1.2000").
_MONEY_FORMAT = serializers.DecimalField(max_digits=12, decimal_places=4)

# The attribute a queryset annotated with saved_annotation() carries.
SAVED_ANNOTATION = "saved_by_cache_usd"


def saved_annotation() -> dict[str, Any]:
    """`queryset.annotate(**saved_annotation())`: each job's cache savings from the ledger, as one
    correlated subquery (so a page of jobs costs no extra query)."""
    lines = (
        SpendEntry.objects.filter(job=OuterRef("pk"), kind=SpendKind.CACHE_SAVING)
        .order_by()
        .values("job")
        .annotate(total=Sum("amount_usd"))
        .values("total")
    )
    return {
        SAVED_ANNOTATION: Coalesce(
            Subquery(lines, output_field=models.DecimalField(max_digits=10, decimal_places=4)),
            Value(Decimal("0")),
            output_field=models.DecimalField(max_digits=10, decimal_places=4),
        )
    }


def _file_url(source: str, help_text: str) -> serializers.FileField:
    # DRF's FileField renders the storage URL (absolute when the request is in the context), or null.
    return serializers.FileField(source=source, read_only=True, allow_null=True, help_text=help_text)


class SegmentSerializer(serializers.Serializer):
    index = serializers.IntegerField(read_only=True)
    prompt = serializers.CharField(read_only=True)
    is_manual = serializers.BooleanField(read_only=True, help_text="A person wrote or overrode this prompt.")
    start_seconds = serializers.FloatField(read_only=True)
    end_seconds = serializers.FloatField(read_only=True)
    duration_seconds = serializers.FloatField(read_only=True)
    render_seconds = serializers.FloatField(
        read_only=True, help_text="What the provider renders and bills; the extra is trimmed."
    )
    status = SegmentStatusField()
    progress = serializers.FloatField(read_only=True)
    provider_status = serializers.CharField(read_only=True)
    attempts = serializers.IntegerField(read_only=True)
    error = serializers.CharField(read_only=True)
    cost_usd = _money()
    clip_url = _file_url("clip", "The rendered clip.")
    thumbnail_url = _file_url("thumbnail", "A still of the clip.")
    last_frame_url = _file_url("last_frame", "The clip's exact last frame.")
    cached = serializers.SerializerMethodField(
        help_text="The clip is a copy of an identical finished clip (the render cache): nothing was billed."
    )
    updated_at = serializers.DateTimeField(read_only=True)

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_cached(self, segment: Segment) -> bool:
        return segment.cached_from_id is not None


class ReferenceImageSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    url = _file_url("image", "The stored image.")
    segment_index = serializers.SerializerMethodField(
        help_text="The segment this image guides; null when it belongs to the whole job."
    )
    content_type = serializers.CharField(read_only=True)
    width = serializers.IntegerField(read_only=True)
    height = serializers.IntegerField(read_only=True)
    size_bytes = serializers.IntegerField(read_only=True)
    sha256 = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_segment_index(self, image: ReferenceImage) -> int | None:
        if image.segment_id is None:
            return None
        # Answer from what is already loaded (the job's prefetched segments, or the segment the
        # service attached), so listing images never costs a query per image.
        if ReferenceImage.segment.is_cached(image):
            return image.segment.index
        if ReferenceImage.job.is_cached(image) and "segments" in getattr(
            image.job, "_prefetched_objects_cache", {}
        ):
            for segment in image.job.segments.all():
                if segment.id == image.segment_id:
                    return segment.index
        return image.segment.index


class _JobCommonSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    owner = serializers.CharField(source="owner.get_username", read_only=True)
    title = serializers.CharField(read_only=True)
    prompt = serializers.CharField(read_only=True)
    duration_seconds = serializers.FloatField(read_only=True)
    segment_seconds = serializers.FloatField(read_only=True)
    segmentation_mode = serializers.SerializerMethodField(
        help_text="manual when the job was made from per-segment prompts."
    )
    strategy = serializers.CharField(read_only=True)
    continuity = serializers.CharField(read_only=True)
    reference_fit = serializers.CharField(read_only=True)
    provider = serializers.CharField(read_only=True)
    model = serializers.CharField(read_only=True)
    size = serializers.CharField(read_only=True)
    fps = serializers.IntegerField(read_only=True)
    status = JobStatusField()
    progress = serializers.FloatField(read_only=True)
    error = serializers.CharField(read_only=True)
    cost_estimate_usd = _money()
    billed_seconds_estimate = serializers.FloatField(read_only=True)
    cost_spent_usd = _money()
    cost_saved_usd = serializers.SerializerMethodField(
        help_text="What the render cache saved this job: the price of the clips it reused."
    )
    use_cache = serializers.BooleanField(
        read_only=True, help_text="Identical finished clips are reused instead of rendered again."
    )
    notices = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="What a person should know about how the job was planned (e.g. a planner's fallback).",
    )
    output_url = _file_url("output_video", "The finished video.")
    poster_url = _file_url("poster_image", "A poster frame of the finished video.")
    output_duration_seconds = serializers.FloatField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    started_at = serializers.DateTimeField(read_only=True, allow_null=True)
    finished_at = serializers.DateTimeField(read_only=True, allow_null=True)

    @extend_schema_field(EnumField(enum_name="SegmentationModeEnum", values=list(SEGMENTATION_MODES)))
    def get_segmentation_mode(self, job: VideoJob) -> str:
        return "manual" if job.strategy == "manual" else "auto"

    @extend_schema_field(_money())
    def get_cost_saved_usd(self, job: VideoJob) -> str:
        # The list annotates it (SAVED_ANNOTATION: one subquery for the page); a single job asks the
        # ledger (one query, however many segments).
        saved = getattr(job, SAVED_ANNOTATION, None)
        if saved is None:
            saved = ledger.job_saved(job.id)
        return _MONEY_FORMAT.to_representation(saved)


class VideoJobListSerializer(_JobCommonSerializer):
    """A job in the list (without its segments)."""

    # Reads the counts that selectors.video_job_list annotates.

    segment_count = serializers.IntegerField(read_only=True)
    segments_done = serializers.IntegerField(read_only=True)


class VideoJobDetailSerializer(_JobCommonSerializer):
    """A job with its segments and reference images."""

    # Reads only what selectors.video_job_detail prefetched: queries do not grow with the number of
    # segments or images.

    segment_count = serializers.SerializerMethodField()
    segments = SegmentSerializer(many=True, read_only=True)
    reference_images = ReferenceImageSerializer(many=True, read_only=True)

    @extend_schema_field(OpenApiTypes.INT)
    def get_segment_count(self, job: VideoJob) -> int:
        return len(job.segments.all())


class PlannedSegmentSerializer(serializers.Serializer):
    index = serializers.IntegerField(read_only=True)
    prompt = serializers.CharField(read_only=True)
    is_manual = serializers.BooleanField(read_only=True)
    start_seconds = serializers.FloatField(read_only=True)
    end_seconds = serializers.FloatField(read_only=True)
    planned_seconds = serializers.FloatField(read_only=True)
    render_seconds = serializers.FloatField(read_only=True, help_text="Rendered and billed.")
    trimmed_seconds = serializers.FloatField(read_only=True, help_text="Billed but cut at assembly.")
    cost_usd = _money()


class EstimateSerializer(serializers.Serializer):
    provider = serializers.CharField(read_only=True)
    model = serializers.CharField(read_only=True)
    size = serializers.CharField(read_only=True)
    price_per_second = _money(help_text="USD per rendered second.")
    planned_seconds = serializers.FloatField(read_only=True)
    billed_seconds = serializers.FloatField(read_only=True)
    trimmed_seconds = serializers.FloatField(
        read_only=True, help_text="Billed minus planned: rendered at an allowed clip length, then cut."
    )
    cost_usd = _money()
    segments = PlannedSegmentSerializer(many=True, read_only=True)


def _budget_money(help_text: str) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=12, decimal_places=2, read_only=True, allow_null=True, help_text=help_text
    )


class BudgetWindowSerializer(serializers.Serializer):
    cap_usd = _budget_money("The cap of this window; null: no cap.")
    spent_usd = _budget_money("Spent in this window (billed renders and lost renders, from the ledger).")
    reserved_usd = _budget_money("What your renders in progress may still spend (queued and rendering).")
    remaining_usd = _budget_money("Cap minus spent minus reserved, never below 0; null: no cap.")
    since = serializers.DateTimeField(read_only=True, help_text="Start of the window (UTC midnight).")


class BudgetSerializer(serializers.Serializer):
    """Your budget caps and where you stand: per job, per UTC day and per UTC month."""

    job_max_usd = _budget_money("The most one job may cost (BUDGET_JOB_MAX_USD); null: no cap.")
    daily = BudgetWindowSerializer(read_only=True, help_text="Today (UTC); cap: BUDGET_USER_DAILY_USD.")
    monthly = BudgetWindowSerializer(
        read_only=True, help_text="This month (UTC); cap: BUDGET_USER_MONTHLY_USD."
    )


class StrategySerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)


class ProviderSerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True)
    models = serializers.ListField(child=serializers.CharField(), read_only=True)
    default_model = serializers.CharField(read_only=True)
    sizes = serializers.ListField(
        child=serializers.CharField(), read_only=True, allow_null=True, help_text="null: any even WxH."
    )
    sizes_by_model = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
    clip_seconds = serializers.ListField(
        child=serializers.FloatField(),
        read_only=True,
        allow_null=True,
        help_text="Lengths the provider renders; null: any length.",
    )
    price_per_second = serializers.DictField(
        child=serializers.DecimalField(max_digits=12, decimal_places=4),
        help_text='USD per second by "model" or "model@WIDTHxHEIGHT".',
    )
    max_prompt_chars = serializers.IntegerField(read_only=True)
    supports_reference_image = serializers.BooleanField(read_only=True)


def provider_rows() -> list[dict[str, Any]]:
    rows = []
    for name in provider_names():
        caps = get_provider(name).capabilities()
        rows.append(
            {
                "name": name,
                "models": list(caps.models),
                "default_model": caps.default_model,
                "sizes": list(caps.sizes) if caps.sizes is not None else None,
                "sizes_by_model": {k: list(v) for k, v in getattr(caps, "sizes_by_model", {}).items()},
                "clip_seconds": list(caps.clip_seconds) if caps.clip_seconds is not None else None,
                "price_per_second": {k: Decimal(v) for k, v in caps.price_per_second.items()},
                "max_prompt_chars": caps.max_prompt_chars,
                "supports_reference_image": caps.supports_reference_image,
            }
        )
    return rows


def strategy_rows() -> list[dict[str, str]]:
    return [{"name": name, "description": description} for name, description in strategy_choices()]


class ErrorSerializer(serializers.Serializer):
    """The body of every 4xx response."""

    detail = serializers.CharField(help_text="One-line summary.")
    code = serializers.CharField(help_text="Machine-readable: invalid, not_found, illegal_transition, ...")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text='400 only: field path -> messages, e.g. {"segments.1.prompt": ["..."]}.',
    )
