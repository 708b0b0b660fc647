"""Planning: one job spec in, a validated and priced plan out. Nothing is written.

The API's create and estimate endpoints, the CLI, the workspace and the admin all plan through
`plan_job`, so a job is checked, split and priced the same way wherever it comes from. Planning runs
outside any transaction: a strategy may call a planning model over HTTP (`llm`, up to LLM_TIMEOUT
seconds), and holding a transaction open meanwhile would write-lock the whole database on SQLite.

Meaning lives here, not in the serializers: bounds on lengths and prompts (through the segmentation
context), known strategies, providers, models and sizes (through the model catalogue), fps, continuity
and the budget's per-job estimate check. Errors are InvalidInput with the offending field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from django.conf import settings

from segmentation.registry import segment_prompt
from segmentation.text import validate_prompt
from segmentation.timing import validate_duration, validate_segment_length
from segmentation.types import SegmentationContext, SegmentationError

from . import budget
from .catalogue import (
    CapabilityError,
    ModelSpec,
    check_available,
    continuity_lacks,
    model_spec,
    provider_catalogue,
)
from .errors import InvalidInput
from .fallbacks import check_fallbacks
from .models import Continuity, ReferenceFit, Segment, VideoJob
from .sizes import normalize_size, parse_size

MONEY_QUANTUM = Decimal("0.0001")


@dataclass(frozen=True)
class JobSpec:
    """Everything that defines a job, as a person or a program asks for it."""

    prompt: str
    duration_seconds: float
    segment_seconds: float | None = None
    strategy: str = ""  # empty: settings.DEFAULT_STRATEGY
    manual_prompts: Sequence[str] = ()
    continuity: str = Continuity.PARALLEL
    reference_fit: str = ReferenceFit.COVER
    provider: str | None = None
    model: str = ""
    size: str | None = None
    fps: int | None = None
    title: str = ""
    use_cache: bool = True
    # "provider:model" (or "provider" for its default model) to render on when the provider is down.
    fallback_models: Sequence[str] = ()


@dataclass(frozen=True)
class PlannedSegment:
    index: int
    prompt: str
    is_manual: bool
    start_seconds: float
    end_seconds: float
    render_seconds: float
    cost_usd: Decimal

    @property
    def planned_seconds(self) -> float:
        return round(self.end_seconds - self.start_seconds, 3)

    @property
    def trimmed_seconds(self) -> float:
        # Rendered (and billed) beyond the plan; cut at assembly.
        return round(self.render_seconds - self.planned_seconds, 3)


@dataclass(frozen=True)
class Plan:
    provider: str
    model: str
    size: str
    price_per_second: Decimal
    billed_seconds: float
    cost_usd: Decimal
    segments: list[PlannedSegment]

    @property
    def planned_seconds(self) -> float:
        return round(sum(s.planned_seconds for s in self.segments), 3)

    @property
    def trimmed_seconds(self) -> float:
        return round(self.billed_seconds - self.planned_seconds, 3)


@dataclass(frozen=True)
class CheckedJob:
    """A spec that passed every check, with its plan: what video_job_submit stores."""

    spec: JobSpec
    duration_seconds: float
    segment_seconds: float
    fps: int
    plan: Plan
    notices: list[str] = field(default_factory=list)
    fallback_models: list[str] = field(default_factory=list)


def _choice(value: str, choices: Sequence[str], name: str) -> str:
    if value not in choices:
        raise InvalidInput(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}", field=name)
    return value


def segmentation_context(
    manual_prompts: Sequence[str] = (), *, clip_lengths: Sequence[float] | None = None
) -> SegmentationContext:
    """The limits every strategy enforces, from settings (the one place they are read)."""
    return SegmentationContext(
        manual_prompts=tuple(manual_prompts),
        max_segment_prompt_chars=settings.MAX_SEGMENT_PROMPT_CHARS,
        min_duration_seconds=settings.MIN_DURATION_SECONDS,
        max_duration_seconds=settings.MAX_DURATION_SECONDS,
        min_segment_seconds=settings.MIN_SEGMENT_SECONDS,
        max_segment_seconds=settings.MAX_SEGMENT_SECONDS,
        max_prompt_chars=settings.MAX_JOB_PROMPT_CHARS,
        clip_lengths=tuple(clip_lengths) if clip_lengths else None,
    )


def render_length(planned: float, lengths: Sequence[float] | None) -> float:
    """What the model renders (and bills) for a slice of `planned` seconds: the slice itself when any
    length is rendered, else the shortest length that covers it (the extra is trimmed at assembly)."""
    if not lengths:
        return planned
    for allowed in sorted(lengths):
        if allowed + 1e-9 >= planned:
            return float(allowed)
    longest = max(lengths)
    raise CapabilityError(
        f"a segment of {planned:g} s is longer than the model's longest clip ({longest:g} s)",
        field="segment_seconds",
    )


def price_segments(
    provider: str, model: ModelSpec, size: str, rows: Sequence[tuple[int, str, bool, float, float]]
) -> Plan:
    """Price segments given as (index, prompt, is_manual, start, end) on a model at a size.
    Raises CapabilityError for what the model cannot render."""
    lengths = model.lengths_for(size)
    segments = []
    for index, prompt, is_manual, start, end in rows:
        render_seconds = render_length(end - start, lengths)
        segments.append(
            PlannedSegment(
                index=index,
                prompt=prompt,
                is_manual=is_manual,
                start_seconds=start,
                end_seconds=end,
                render_seconds=render_seconds,
                cost_usd=model.cost(render_seconds, size),
            )
        )
    return Plan(
        provider=provider,
        model=model.id,
        size=size,
        price_per_second=model.price(size),
        billed_seconds=round(sum(s.render_seconds for s in segments), 3),
        cost_usd=sum((s.cost_usd for s in segments), Decimal("0")).quantize(MONEY_QUANTUM),
        segments=segments,
    )


def uses_reference_slots(continuity: str, model: ModelSpec) -> bool:
    """True when the job's images go on the model's reference slots (rendering.frames sends them)."""
    return continuity == Continuity.REFERENCE and model.reference_images > 0


def _check_prompts_fit(model: ModelSpec, prompts: Sequence[str], *, manual: bool) -> None:
    too_long = [i for i, prompt in enumerate(prompts) if len(prompt) > model.max_prompt_chars]
    if not too_long:
        return
    if manual:
        # The person's own prompts: each message on its card's path (segments.<i>.prompt).
        raise InvalidInput(
            {
                f"segments.{i}.prompt": [
                    f"segment prompt {i + 1} is {len(prompts[i])} characters long; {model.id} reads at "
                    f"most {model.max_prompt_chars}"
                ]
                for i in too_long
            }
        )
    raise InvalidInput(
        f"segment prompts {[i + 1 for i in too_long]} exceed {model.id}'s {model.max_prompt_chars}-character "
        "limit",
        field="segments",
    )


def _check_model(spec: JobSpec, provider: str, size: str) -> ModelSpec:
    """The model the job names (or the provider's default), checked against the size, the continuity
    and this server's configuration; every problem reported at once."""
    errors: dict[str, list[str]] = {}
    try:
        catalogue = provider_catalogue(provider)
    except CapabilityError as exc:
        raise InvalidInput(exc.message, field=exc.field) from None
    try:
        check_available(catalogue)
    except CapabilityError as exc:
        errors.setdefault(exc.field, []).append(exc.message)
    try:
        model = catalogue.model(spec.model)
    except CapabilityError as exc:
        errors.setdefault(exc.field, []).append(exc.message)
        raise InvalidInput(errors) from None
    try:
        model.check_size(size)
    except CapabilityError as exc:
        errors.setdefault(exc.field, []).append(exc.message)
    lacking = continuity_lacks(spec.continuity, model)
    if lacking:
        errors.setdefault("continuity", []).append(f"{lacking}; {model.id} does not")
    if errors:
        raise InvalidInput(errors)
    return model


def _default_size(provider: str, model_id: str) -> str:
    """DEFAULT_VIDEO_SIZE where the model renders it, else the model's first size of the same shape (a
    job that names no size on Kling 2.1, which renders only 1080p, gets 1920x1080)."""
    default = settings.DEFAULT_VIDEO_SIZE
    try:
        offered = provider_catalogue(provider).model(model_id).all_sizes()
    except CapabilityError:
        return default  # reported by _check_model
    if not offered or default in offered:
        return default
    width, height = parse_size(default)
    same_shape = [s for s in offered if (parse_size(s)[0] >= parse_size(s)[1]) == (width >= height)]
    return (same_shape or list(offered))[0]


def _snap_manual(
    rows: list[tuple[int, str, bool, float, float]], lengths: Sequence[float]
) -> tuple[list[tuple[int, str, bool, float, float]], list[str]]:
    """Manual slices snapped one by one to the nearest length the model renders (a tie goes to the longer
    one), so no second is paid for and thrown away; returns the new slices and what changed, in words."""
    snapped, changes, start = [], [], 0.0
    for index, prompt, is_manual, begin, end in rows:
        planned = end - begin
        length = min(sorted(lengths), key=lambda allowed: (abs(allowed - planned), -allowed))
        if abs(length - planned) > 1e-9:
            changes.append(f"segment {index + 1} {planned:g} s -> {length:g} s")
        snapped.append((index, prompt, is_manual, round(start, 3), round(start + length, 3)))
        start += length
    notices = []
    if changes:
        notices.append(
            "The model renders only clips of "
            f"{', '.join(f'{a:g}' for a in sorted(lengths))} s, so the manual segments were snapped: "
            f"{'; '.join(changes)}. The video is {start:g} s long."
        )
    return snapped, notices


def _check_fields(spec: JobSpec, context: SegmentationContext) -> tuple[float, float, int]:
    """The checks of single fields, all made before any is reported, so a person sees every mistake
    at once. Returns (duration, segment length, fps)."""
    errors: dict[str, list[str]] = {}
    checked: dict[str, Any] = {}

    def check(name: str, run: Callable[[], Any]) -> None:
        try:
            checked[name] = run()
        except (SegmentationError, InvalidInput) as exc:
            for field_name, messages in _messages(exc, name).items():
                errors.setdefault(field_name, []).extend(messages)

    def fps() -> int:
        value = settings.DEFAULT_FPS if spec.fps is None else spec.fps
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 120:
            raise InvalidInput("fps must be a whole number from 1 to 120", field="fps")
        return value

    def title() -> str:
        if not isinstance(spec.title, str) or len(spec.title) > 200:
            raise InvalidInput("the title must be text of at most 200 characters", field="title")
        return spec.title

    length = settings.DEFAULT_SEGMENT_SECONDS if spec.segment_seconds is None else spec.segment_seconds
    check("prompt", lambda: validate_prompt(spec.prompt, context))
    check("duration_seconds", lambda: validate_duration(spec.duration_seconds, context))
    check("segment_seconds", lambda: validate_segment_length(length, context))
    check("continuity", lambda: _choice(spec.continuity, Continuity.values, "continuity"))
    check("reference_fit", lambda: _choice(spec.reference_fit, ReferenceFit.values, "reference_fit"))
    check("fps", fps)
    check("title", title)
    if spec.manual_prompts and spec.strategy != "manual":
        errors["segments"] = ["segment prompts were given but the strategy is not 'manual'"]
    elif any(not isinstance(p, str) for p in spec.manual_prompts):
        errors["segments"] = ["every segment prompt must be text"]
    if errors:
        raise InvalidInput(errors)
    return checked["duration_seconds"], checked["segment_seconds"], checked["fps"]


def _messages(exc: SegmentationError | InvalidInput, default_field: str) -> dict[str, list[str]]:
    if isinstance(exc, InvalidInput):
        return exc.errors
    return {exc.field or default_field: [exc.message]}


def plan_job(spec: JobSpec, *, check_budget: bool = True) -> CheckedJob:
    """Check every field of `spec`, split the prompt into lengths the model renders and price the
    segments. Raises InvalidInput. `check_budget=False` prices a job without refusing it for its cost
    (the live estimate)."""
    duration, seg_len, fps = _check_fields(spec, segmentation_context(spec.manual_prompts))
    provider = spec.provider or settings.DEFAULT_PROVIDER
    size = spec.size or _default_size(provider, spec.model)
    try:
        size = normalize_size(size)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="size") from None
    model = _check_model(spec, provider, size)
    lengths = model.lengths_for(size, references=uses_reference_slots(spec.continuity, model))
    strategy = spec.strategy or settings.DEFAULT_STRATEGY
    manual = strategy == "manual"
    # Automatic strategies plan in lengths the model renders; a person's own segments are snapped below.
    context = segmentation_context(spec.manual_prompts, clip_lengths=None if manual else lengths)
    notices: list[str] = []
    try:
        specs = segment_prompt(strategy, spec.prompt, duration, seg_len, context)
        _check_prompts_fit(model, [s.prompt for s in specs], manual=manual)
        rows = [(s.index, s.prompt, s.is_manual, s.start_seconds, s.end_seconds) for s in specs]
        if manual and lengths:
            rows, notices = _snap_manual(rows, lengths)
            duration = rows[-1][4]
        plan = price_segments(provider, model, size, rows)
    except (SegmentationError, CapabilityError) as exc:
        raise InvalidInput(exc.message, field=exc.field) from None
    if check_budget:
        budget.check_estimate(
            estimate_usd=plan.cost_usd,
            billed_seconds=plan.billed_seconds,
            price_per_second=plan.price_per_second,
        )
    fallbacks, uncovered = check_fallbacks(spec, model, size, plan)
    notices = [str(n) for n in context.extra.get("notices", [])] + notices + uncovered
    return CheckedJob(spec, duration, seg_len, fps, plan, notices, fallbacks)


def job_spec_of(job: VideoJob, **changes: Any) -> JobSpec:
    """The spec a stored job was made from, as far as the job keeps it (its stored model and size, so
    the job's provider defaults do not matter any more), with `changes` applied: what a copy or an edit
    of the job is planned from."""
    return replace(
        JobSpec(
            title=job.title,
            prompt=job.prompt,
            duration_seconds=job.duration_seconds,
            segment_seconds=job.segment_seconds,
            strategy=job.strategy,
            continuity=job.continuity,
            reference_fit=job.reference_fit,
            provider=job.provider,
            model=job.model,
            size=job.size,
            fps=job.fps,
            use_cache=job.use_cache,
            fallback_models=tuple(job.fallback_models or ()),
        ),
        **changes,
    )


def plan_for_job(job: VideoJob) -> Plan:
    """Billed seconds and cost of rendering `job`'s segments as they stand; nothing is rendered.
    Reads job.segments.all(), so a prefetched job costs no extra query."""
    return plan_for_segments(job, list(job.segments.all()))


def plan_for_segments(job: VideoJob, segments: Sequence[Segment]) -> Plan:
    rows = [(s.index, s.prompt, s.is_manual, s.start_seconds, s.end_seconds) for s in segments]
    try:
        return price_segments(job.provider, model_spec(job.provider, job.model), job.size, rows)
    except CapabilityError as exc:
        # The job was valid when stored; the provider's configuration has changed since.
        raise InvalidInput(exc.message, field=exc.field) from None
