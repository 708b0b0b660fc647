"""Input serializers: they check the *shape* of a request (strict JSON types, known keys, list sizes)
and translate API vocabulary (segmentation_mode) into a jobs.planning.JobSpec. What a value *means* (is
the duration within bounds, is the strategy or model known, is the prompt too long) is checked once,
in jobs.planning and the services, and comes back as a field error in the same shape.

Input is strict JSON: numbers must be JSON numbers (not "10"), booleans JSON booleans, text JSON strings,
and unknown keys are refused, so a typo such as "segment_second" is an error instead of a silent default.

The unknown-keys rule, for every request body (JSON objects at any depth, and multipart parts): a key
the serializer does not declare is a 400 naming that key, and a multipart part sent twice is a 400
naming that part. StrictInputSerializer is the one place that applies it; the OpenAPI document says
so with `additionalProperties: false` (jobs.api.schema.document_input_limits). Query strings are not
bodies: parameters a view does not document are ignored, as HTTP caches and proxies add their own.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Collection, Mapping
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.functional import cached_property
from rest_framework import serializers
from rest_framework.utils.serializer_helpers import BindingDict

from jobs.planning import JobSpec

from .exceptions import RequestTooLarge

SEGMENTATION_MODES = ("auto", "manual")


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


def _fresh(field: serializers.Field) -> serializers.Field:
    def copied(value: Any) -> Any:
        return copy.deepcopy(value) if isinstance(value, serializers.Field) else value

    args = [copied(value) for value in field._args]
    return field.__class__(*args, **{key: copied(value) for key, value in field._kwargs.items()})


def repeated_parts(data: Any, *, many: Collection[str] = ()) -> dict[str, list[str]]:
    """Field errors for the parts of a multipart body (a QueryDict) sent more than once, except `many`:
    Django would keep only the last one, silently."""
    if not hasattr(data, "getlist"):
        return {}
    return {
        str(key): [f"This part was sent {count} times; send it once."]
        for key in data
        if key not in many and (count := len(data.getlist(key))) > 1
    }


# Field sets already built and bound, per serializer class, for the next serializer of that class to
# take: building a create's seventeen fields (and the segment list's) took a third of the CPU of
# validating it. A set belongs to one serializer at a time, from its first use of `fields` until its
# is_valid() returns (list.pop and list.append are atomic, so two threads never take the same set).
_SPARE_FIELDS: dict[type, list[BindingDict]] = {}
# Enough for every request thread of a busy process; past it a finished set is left to be collected.
SPARE_FIELD_SETS = 64


@receiver(setting_changed)
def _forget_spare_fields(**kwargs: Any) -> None:
    # Some fields take their bounds from settings when built (VideoJobSpecSerializer.get_fields).
    _SPARE_FIELDS.clear()


class StrictInputSerializer(serializers.Serializer):
    # Refuses keys it does not know (and repeated multipart parts), reported per key alongside the
    # other field errors.

    @cached_property
    def fields(self) -> BindingDict:
        try:
            fields = _SPARE_FIELDS.get(type(self), []).pop()
        except IndexError:
            return serializers.Serializer.fields.func(self)  # built and bound as DRF does
        # Bound before: only the parent changes (bind() again would refuse the source it set itself).
        fields.serializer = self
        for field in fields.values():
            field.parent = self
        return fields

    def is_valid(self, *, raise_exception: bool = False) -> bool:
        try:
            return super().is_valid(raise_exception=raise_exception)
        finally:
            # Validated: its answers (validated_data, errors) are kept, its fields go back for the next
            # serializer of its class. Asking for `fields` again builds a new set.
            fields = self.__dict__.pop("fields", None)
            if fields is not None:
                for field in fields.values():
                    field.parent = None
                fields.serializer = None
                spare = _SPARE_FIELDS.setdefault(type(self), [])
                if len(spare) < SPARE_FIELD_SETS:
                    spare.append(fields)

    def get_fields(self) -> dict[str, serializers.Field]:
        # DRF deep-copies every declared field, arguments and all, for each instance: a third of the
        # CPU of validating a create. Each field is built anew from its arguments instead, copying only
        # the arguments that are fields themselves (a ListField's child binds to its new parent); the
        # others (help text, choices, bounds, validators, which DRF does not copy either) are only read.
        return {name: _fresh(field) for name, field in self._declared_fields.items()}

    def to_internal_value(self, data: Any) -> Any:
        unknown: dict[str, list[str]] = {}
        if isinstance(data, Mapping):
            accepted = sorted(name for name, field in self.fields.items() if not field.read_only)
            unknown = {
                str(key): [f"Unknown field. Accepted fields: {', '.join(accepted)}."]
                for key in data
                if key not in self.fields
            }
            unknown.update(repeated_parts(data))
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


def most_segments() -> int:
    """A size bound on lists of segments, not a meaning: a huge list is refused before any planning work
    (the planner's own limits say exactly how many fit)."""
    return math.ceil(settings.MAX_DURATION_SECONDS / settings.MIN_SEGMENT_SECONDS)


class SegmentPromptSerializer(StrictInputSerializer):
    prompt = StrictCharField(help_text="What happens in this segment.")


class VideoJobSpecSerializer(StrictInputSerializer):
    """What defines a job: the story, its length, how it is split and how it is rendered."""

    title = StrictCharField(required=False, allow_blank=True, default="", help_text="At most 200 characters.")
    prompt = StrictCharField(help_text="The whole story; it is split into segments (MAX_JOB_PROMPT_CHARS).")
    duration_seconds = StrictFloatField(
        help_text="Length of the finished video (MIN_DURATION_SECONDS to MAX_DURATION_SECONDS)."
    )
    segment_seconds = StrictFloatField(
        required=False, help_text="Planned length of each segment (DEFAULT_SEGMENT_SECONDS when omitted)."
    )
    segmentation_mode = serializers.ChoiceField(
        choices=SEGMENTATION_MODES,
        default="auto",
        help_text="auto: a strategy splits the prompt; manual: one prompt per segment in `segments`.",
    )
    strategy = StrictCharField(
        required=False,
        help_text="A strategy from GET /api/strategies/ (default: even; manual in manual mode).",
    )
    segments = serializers.ListField(child=SegmentPromptSerializer(), required=False)
    continuity = StrictCharField(
        default="parallel",
        help_text="parallel: all segments at once; chain: each starts from the previous clip's last "
        "frame; reference: every segment uses the job's reference image.",
    )
    reference_fit = StrictCharField(default="cover", help_text="cover (crop to fill) or pad (letterbox).")
    provider = StrictCharField(required=False, help_text="A provider from GET /api/providers/.")
    model = StrictCharField(
        required=False, allow_blank=True, help_text="Empty: the provider's default model."
    )
    size = StrictCharField(required=False, help_text="WIDTHxHEIGHT, e.g. 1280x720.")
    fps = StrictIntegerField(required=False, help_text="Frames per second, 1 to 120.")
    fallback_models = serializers.ListField(
        child=StrictCharField(),
        required=False,
        max_length=10,
        help_text='Up to 3 "provider:model" (or "provider" for its default) to render a segment on when its '
        "provider is down (connection errors, 5xx, capacity refusals past the retry limit; never after a "
        "content refusal).",
    )
    render = StrictBooleanField(default=True, help_text="Start rendering at once.")
    use_cache = StrictBooleanField(
        default=True,
        help_text="Reuse an identical finished clip of yours instead of paying for it again; false asks for "
        "a fresh take of every segment.",
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["segments"] = serializers.ListField(
            child=SegmentPromptSerializer(),
            required=False,
            max_length=most_segments(),
            help_text="Manual mode only: one {prompt} per segment, in order.",
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
                attrs["strategy"] = settings.DEFAULT_STRATEGY
        if errors:
            raise serializers.ValidationError(errors)
        attrs["manual_prompts"] = [item["prompt"] for item in segments or ()]
        return attrs


def job_spec(data: dict[str, Any]) -> JobSpec:
    """The validated request as the domain's JobSpec."""
    return JobSpec(
        title=data["title"],
        prompt=data["prompt"],
        duration_seconds=data["duration_seconds"],
        segment_seconds=data.get("segment_seconds"),
        strategy=data["strategy"],
        manual_prompts=data["manual_prompts"],
        continuity=data["continuity"],
        reference_fit=data["reference_fit"],
        provider=data.get("provider"),
        model=data.get("model", ""),
        size=data.get("size"),
        fps=data.get("fps"),
        use_cache=data["use_cache"],
        fallback_models=data.get("fallback_models", ()),
    )


# Fields of the create request that other apps handle (jobs.api.extensions); not part of the job's spec.
EXTENSION_FIELDS = ("callback_url",)


class VideoJobCreateSerializer(VideoJobSpecSerializer):
    """A new job. With render true (the default) it starts rendering at once."""

    callback_url = serializers.CharField(
        required=False,
        max_length=2000,
        write_only=True,
        help_text="Receive this job's job.completed, job.failed and segment.completed events at this URL, "
        "signed per the Standard Webhooks spec; the 201 body's `callback.secret` (whsec_...) is the "
        "signing secret, shown only then. https and a public host only.",
    )


class VideoJobEstimateSerializer(VideoJobSpecSerializer):
    """The create fields (the same payload may be sent); nothing is stored. title, render, continuity,
    reference_fit, fps and use_cache do not change the estimate (cache hits are not subtracted: an
    estimate is what the job costs at most)."""

    callback_url = serializers.CharField(
        required=False, max_length=2000, write_only=True, help_text="Accepted and ignored (see create)."
    )


class SegmentUpdateSerializer(StrictInputSerializer):
    prompt = StrictCharField(
        help_text="The new prompt (at most MAX_SEGMENT_PROMPT_CHARS); marks the segment as manually written."
    )


class PlanCardSerializer(StrictInputSerializer):
    prompt = StrictCharField(
        help_text="What happens in this card's segment (at most MAX_SEGMENT_PROMPT_CHARS)."
    )
    source = StrictIntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=0,
        max_value=1_000_000,
        help_text="The index of the current segment this card comes from: that segment's reference images "
        "follow the card (when several cards name one segment, the first keeps them). Null or absent: a "
        "new card. A segment no card names loses its images.",
    )


class VideoJobPlanSerializer(StrictInputSerializer):
    """A draft's new plan: its cards in order, each becoming one segment."""

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["segments"] = serializers.ListField(
            child=PlanCardSerializer(),
            min_length=1,
            max_length=most_segments(),
            help_text="The cards in order: one segment of the job's segment_seconds each (snapped to the "
            "model's clip lengths as at creation), so the duration follows the cards.",
        )
        return fields


class RerenderSerializer(StrictInputSerializer):
    segments = serializers.ListField(
        child=StrictIntegerField(min_value=0, max_value=1_000_000),
        min_length=1,
        max_length=10_000,
        help_text="Indexes of the segments to render again.",
    )


class ReferenceImageUploadSerializer(StrictInputSerializer):
    # Not ImageField: the service checks the content with Pillow (type, bytes, pixels, bombs).
    image = serializers.FileField(help_text="PNG, JPEG or WebP; checked by content, not by name.")
    segment_index = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=1_000_000,
        help_text="Attach to one segment instead of the whole job.",
    )


# --- Multipart create: the job's JSON plus its images, in one request --------------------------------

MAX_IMAGES_PER_CREATE = 4
# Room for the multipart framing and the other fields around the images themselves.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class VideoJobMultipartCreateSerializer(serializers.Serializer):
    # For the schema: the parts of a multipart create.
    job = serializers.CharField(help_text="The job as JSON, exactly the body of a JSON create.")
    reference_image = serializers.ListField(
        child=serializers.FileField(), required=False, help_text="Reference images for the whole job."
    )


def check_declared_length(request: Any, limit: int, *, extra: int = 0, part: str = "image") -> None:
    """Refuse an oversized body from its declared length, before Django spools it to disk: 413, naming
    the part. `limit` is what the files may take; `extra` what other fields may (the job's JSON)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit + extra + MULTIPART_OVERHEAD_BYTES:
        raise RequestTooLarge(f"{part}: the upload is larger than {limit} bytes")


def check_create_length(request: Any) -> None:
    """A multipart create's size bound, from its declared length (nothing read yet)."""
    if request.content_type.startswith("multipart/"):
        check_declared_length(
            request,
            settings.UPLOAD_MAX_BYTES * MAX_IMAGES_PER_CREATE,
            extra=4 * settings.MAX_JOB_PROMPT_CHARS,
        )


def multipart_job(request: Any) -> tuple[Any, list[Any]]:
    """(the job's JSON object, the uploaded images) of a multipart create; shape errors per part."""
    errors = {
        name: ["Unknown part. Accepted parts: job, reference_image."]
        for name in sorted(set(request.data) - {"job", "reference_image"})
    }
    errors.update(repeated_parts(request.data, many={"reference_image"}))
    if any(not isinstance(item, UploadedFile) for item in request.data.getlist("reference_image")):
        errors["reference_image"] = ["Each reference_image part must be a file (PNG, JPEG or WebP)."]
    raw = request.data.get("job")
    if "job" not in errors:
        if raw is None:
            errors["job"] = ["The part `job` is missing: send the job as JSON in a text part named job."]
        elif not isinstance(raw, str):
            errors["job"] = ["The part `job` must be a text field holding the job as JSON, not a file."]
    if errors:
        raise serializers.ValidationError(errors)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise serializers.ValidationError({"job": ["The part `job` is not valid JSON."]}) from None
    images = request.FILES.getlist("reference_image")
    if len(images) > MAX_IMAGES_PER_CREATE:
        raise serializers.ValidationError(
            {"reference_image": [f"at most {MAX_IMAGES_PER_CREATE} images may come with a job"]}
        )
    return body, images
