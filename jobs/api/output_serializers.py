"""Output serializers: they only read attributes of objects the selectors loaded with their relations
prefetched, so queries do not grow with the number of rows. A segment's shape is jobs.events.segment_state,
the same for the API, the socket's snapshot and its events; SegmentSerializer declares its fields for the
OpenAPI schema and renders through it.

Jobs and reference images render the same way: the serializers declare their fields (the schema), and
`to_representation` builds the dict directly, because DRF's field-by-field machinery cost more than
the rest of a job detail request. tests/api/test_output_shapes.py renders every one both ways (through
the declared fields and through the direct path) and holds them equal.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

from django.db import models
from django.db.models import OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs import ledger
from jobs.events import UrlOf, file_url, relative_url, segment_state
from jobs.models import JobStatus, ReferenceImage, SegmentStatus, SpendEntry, SpendKind, VideoJob

SEGMENTATION_MODES = ("auto", "manual")

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


# Render values exactly as the declared fields do: a Decimal as _money() ("1.2000"), a datetime as
# DRF's DateTimeField (ISO 8601 in the current time zone, "Z" for UTC).
_MONEY_FORMAT = serializers.DecimalField(max_digits=12, decimal_places=4)
_DATETIME_FORMAT = serializers.DateTimeField()


def _datetime(value: Any) -> str | None:
    return _DATETIME_FORMAT.to_representation(value) if value else None


def _url_of(context: dict[str, Any]) -> UrlOf:
    """A stored file's URL as the declared FileFields render it: absolute when a request is at hand."""
    request = context.get("request")
    if request is None:
        return relative_url
    return request.build_absolute_uri


# The attribute a queryset annotated with saved_annotation() carries.
SAVED_ANNOTATION = "saved_by_cache_usd"


def saved_annotation() -> dict[str, Any]:
    """`queryset.annotate(**saved_annotation())`: each job's cache savings from the ledger, as one
    correlated subquery (so a page of jobs costs no extra query)."""
    return {SAVED_ANNOTATION: _saved_expression()}


@functools.cache
def _saved_expression() -> Coalesce:
    # Built once (building it cost about a twentieth of a job detail request): a query resolves a
    # copy of each expression it is given, never the expression itself, so one serves every query.
    lines = (
        SpendEntry.objects.filter(job=OuterRef("pk"), kind=SpendKind.CACHE_SAVING)
        .order_by()
        .values("job")
        .annotate(total=Sum("amount_usd"))
        .values("total")
    )
    return Coalesce(
        Subquery(lines, output_field=models.DecimalField(max_digits=10, decimal_places=4)),
        Value(Decimal("0")),
        output_field=models.DecimalField(max_digits=10, decimal_places=4),
    )


def _file_url(source: str, help_text: str) -> serializers.FileField:
    # DRF's FileField renders the storage URL (absolute when the request is in the context), or null.
    return serializers.FileField(source=source, read_only=True, allow_null=True, help_text=help_text)


class SegmentSerializer(serializers.Serializer):
    # Declared for the schema; rendered by jobs.events.segment_state (one shape for API, snapshot, events).
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
    clip_url = serializers.URLField(read_only=True, allow_null=True, help_text="The rendered clip.")
    thumbnail_url = serializers.URLField(read_only=True, allow_null=True, help_text="A still of the clip.")
    last_frame_url = serializers.URLField(
        read_only=True, allow_null=True, help_text="The clip's exact last frame."
    )
    cached = serializers.BooleanField(
        read_only=True,
        help_text="The clip is a copy of an identical finished clip (the render cache): nothing was billed.",
    )
    rendered_by = serializers.CharField(
        read_only=True, help_text='"provider:model" that rendered the clip (a fallback after a failover).'
    )
    take = serializers.IntegerField(
        read_only=True, help_text="The number of the take (a kept render) in use; 0: none yet."
    )
    updated_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return segment_state(instance, url_of=_url_of(self.context))


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

    def to_representation(self, instance: ReferenceImage) -> dict[str, Any]:
        return reference_image_state(instance, url_of=_url_of(self.context))

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_segment_index(self, image: ReferenceImage) -> int | None:
        return image_segment_index(image)


def image_segment_index(image: ReferenceImage) -> int | None:
    """The index of the segment an image guides (None: the whole job), without a query per image."""
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


def reference_image_state(image: ReferenceImage, *, url_of: UrlOf) -> dict[str, Any]:
    """ReferenceImageSerializer's fields, built directly."""
    return {
        "id": image.id,
        "url": file_url(image, "image", url_of),
        "segment_index": image_segment_index(image),
        "content_type": image.content_type,
        "width": image.width,
        "height": image.height,
        "size_bytes": image.size_bytes,
        "sha256": image.sha256,
        "created_at": _datetime(image.created_at),
    }


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
    fallback_models = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text='"provider:model" to render a segment on when its provider is down, in order.',
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
    version = serializers.IntegerField(
        source="version_number",
        read_only=True,
        help_text="The number of the version output_url is (0: none yet); every version is kept.",
    )
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    started_at = serializers.DateTimeField(read_only=True, allow_null=True)
    finished_at = serializers.DateTimeField(read_only=True, allow_null=True)

    def to_representation(self, instance: VideoJob) -> dict[str, Any]:
        return job_common_state(instance, url_of=_url_of(self.context))

    @extend_schema_field(EnumField(enum_name="SegmentationModeEnum", values=list(SEGMENTATION_MODES)))
    def get_segmentation_mode(self, job: VideoJob) -> str:
        return segmentation_mode(job)

    @extend_schema_field(_money())
    def get_cost_saved_usd(self, job: VideoJob) -> str:
        return _MONEY_FORMAT.to_representation(cost_saved(job))


def segmentation_mode(job: VideoJob) -> str:
    return "manual" if job.strategy == "manual" else "auto"


def cost_saved(job: VideoJob) -> Decimal:
    # The list and the detail annotate it (SAVED_ANNOTATION: a subquery of the query that loads the
    # jobs); a job loaded without it asks the ledger (one query, however many segments).
    saved = getattr(job, SAVED_ANNOTATION, None)
    return ledger.job_saved(job.id) if saved is None else saved


def job_common_state(job: VideoJob, *, url_of: UrlOf) -> dict[str, Any]:
    """_JobCommonSerializer's fields, built directly, in their declared order."""
    return {
        "id": str(job.id),
        "owner": job.owner.get_username(),
        "title": job.title,
        "prompt": job.prompt,
        "duration_seconds": float(job.duration_seconds),
        "segment_seconds": float(job.segment_seconds),
        "segmentation_mode": segmentation_mode(job),
        "strategy": job.strategy,
        "continuity": job.continuity,
        "reference_fit": job.reference_fit,
        "provider": job.provider,
        "model": job.model,
        "size": job.size,
        "fps": int(job.fps),
        "status": job.status,
        "progress": float(job.progress),
        "error": job.error,
        "cost_estimate_usd": _MONEY_FORMAT.to_representation(job.cost_estimate_usd),
        "billed_seconds_estimate": float(job.billed_seconds_estimate),
        "cost_spent_usd": _MONEY_FORMAT.to_representation(job.cost_spent_usd),
        "cost_saved_usd": _MONEY_FORMAT.to_representation(cost_saved(job)),
        "fallback_models": [str(name) for name in job.fallback_models],
        "use_cache": bool(job.use_cache),
        "notices": [str(notice) for notice in job.notices],
        "output_url": file_url(job, "output_video", url_of),
        "poster_url": file_url(job, "poster_image", url_of),
        "output_duration_seconds": None
        if job.output_duration_seconds is None
        else float(job.output_duration_seconds),
        "version": int(job.version_number),
        "created_at": _datetime(job.created_at),
        "updated_at": _datetime(job.updated_at),
        "started_at": _datetime(job.started_at),
        "finished_at": _datetime(job.finished_at),
    }


class VideoJobListSerializer(_JobCommonSerializer):
    """A job in the list (without its segments)."""

    # Reads the counts that selectors.video_job_list annotates.

    segment_count = serializers.IntegerField(read_only=True)
    segments_done = serializers.IntegerField(read_only=True)

    def to_representation(self, instance: VideoJob) -> dict[str, Any]:
        return {
            **super().to_representation(instance),
            "segment_count": int(instance.segment_count),
            "segments_done": int(instance.segments_done),
        }


class VideoJobDetailSerializer(_JobCommonSerializer):
    """A job with its segments and reference images."""

    # Reads only what selectors.video_job_detail prefetched: queries do not grow with the number of
    # segments or images.

    segment_count = serializers.SerializerMethodField()
    segments = SegmentSerializer(many=True, read_only=True)
    reference_images = ReferenceImageSerializer(many=True, read_only=True)

    def to_representation(self, instance: VideoJob) -> dict[str, Any]:
        url_of = _url_of(self.context)
        segments = instance.segments.all()
        return {
            **job_common_state(instance, url_of=url_of),
            "segment_count": len(segments),
            "segments": [segment_state(segment, url_of=url_of) for segment in segments],
            "reference_images": [
                reference_image_state(image, url_of=url_of) for image in instance.reference_images.all()
            ],
        }

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


class ModelSerializer(serializers.Serializer):
    id = serializers.CharField(read_only=True, help_text="Send this as `model`.")
    label = serializers.CharField(read_only=True)
    clip_seconds = serializers.ListField(
        child=serializers.FloatField(),
        read_only=True,
        allow_null=True,
        help_text="Clip lengths the model renders; null: any length. Plans are made of these lengths.",
    )
    sizes = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text='WIDTHxHEIGHT sizes by resolution, e.g. {"720p": ["1280x720", "720x1280"]}; empty: any.',
    )
    seconds_by_resolution = serializers.DictField(
        child=serializers.ListField(child=serializers.FloatField()),
        help_text="Where a resolution allows fewer lengths (Veo: 1080p only at 8 s).",
    )
    price_per_second = serializers.DictField(
        child=serializers.DecimalField(max_digits=12, decimal_places=6),
        help_text='USD per second by resolution, "+audio" where a soundtrack costs more, "*" for any.',
    )
    features = serializers.ListField(
        child=serializers.CharField(),
        help_text="text_to_video, first_frame, last_frame, reference_images, extension, audio.",
    )
    reference_images = serializers.IntegerField(
        read_only=True, help_text="How many reference images it takes."
    )
    max_prompt_chars = serializers.IntegerField(read_only=True)
    source = serializers.CharField(read_only=True, help_text="Where the figures come from.")
    as_of = serializers.CharField(read_only=True, help_text="When they were read (YYYY-MM-DD).")


class ProviderSerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True, help_text="Send this as `provider`.")
    label = serializers.CharField(read_only=True)
    aliases = serializers.ListField(child=serializers.CharField(), help_text="Older names still accepted.")
    available = serializers.BooleanField(
        read_only=True, help_text="False: this server lacks its credentials; a job naming it is refused."
    )
    missing_settings = serializers.ListField(
        child=serializers.CharField(), help_text="The environment variables to set to make it available."
    )
    default_model = serializers.CharField(read_only=True)
    models = ModelSerializer(many=True, read_only=True)


class ErrorSerializer(serializers.Serializer):
    """The body of every 4xx response."""

    detail = serializers.CharField(help_text="One-line summary.")
    code = serializers.CharField(help_text="Machine-readable: invalid, not_found, illegal_transition, ...")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text='400 only: field path -> messages, e.g. {"segments.1.prompt": ["..."]}.',
    )
