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
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings

from segmentation.registry import segment_prompt
from segmentation.text import validate_prompt
from segmentation.timing import validate_duration, validate_segment_length
from segmentation.types import SegmentationContext, SegmentationError

from . import budget
from .catalogue import Capabilities, CapabilityError, provider_capabilities
from .errors import InvalidInput
from .models import Continuity, ReferenceFit, Segment, VideoJob

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


def _choice(value: str, choices: Sequence[str], name: str) -> str:
    if value not in choices:
        raise InvalidInput(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}", field=name)
    return value


def segmentation_context(manual_prompts: Sequence[str] = ()) -> SegmentationContext:
    """The limits every strategy enforces, from settings (the one place they are read)."""
    return SegmentationContext(
        manual_prompts=tuple(manual_prompts),
        max_segment_prompt_chars=settings.MAX_SEGMENT_PROMPT_CHARS,
        min_duration_seconds=settings.MIN_DURATION_SECONDS,
        max_duration_seconds=settings.MAX_DURATION_SECONDS,
        min_segment_seconds=settings.MIN_SEGMENT_SECONDS,
        max_segment_seconds=settings.MAX_SEGMENT_SECONDS,
        max_prompt_chars=settings.MAX_JOB_PROMPT_CHARS,
    )


def price_segments(
    provider: str, model: str, size: str, rows: Sequence[tuple[int, str, bool, float, float]]
) -> Plan:
    """Price segments given as (index, prompt, is_manual, start, end) on provider/model/size.
    Raises CapabilityError for what the provider cannot render."""
    caps = provider_capabilities(provider)
    chosen = caps.check_model(model)
    segments = []
    for index, prompt, is_manual, start, end in rows:
        render_seconds = caps.billed_seconds(end - start)
        segments.append(
            PlannedSegment(
                index=index,
                prompt=prompt,
                is_manual=is_manual,
                start_seconds=start,
                end_seconds=end,
                render_seconds=render_seconds,
                cost_usd=caps.cost(chosen, render_seconds, size),
            )
        )
    return Plan(
        provider=provider,
        model=chosen,
        size=size,
        price_per_second=caps.price(chosen, size),
        billed_seconds=round(sum(s.render_seconds for s in segments), 3),
        cost_usd=sum((s.cost_usd for s in segments), Decimal("0")).quantize(MONEY_QUANTUM),
        segments=segments,
    )


def _check_prompts_fit(caps: Capabilities, prompts: Sequence[str]) -> None:
    too_long = [i + 1 for i, prompt in enumerate(prompts) if len(prompt) > caps.max_prompt_chars]
    if too_long:
        raise InvalidInput(
            f"segment prompts {too_long} exceed this provider's {caps.max_prompt_chars}-character limit",
            field="segments",
        )


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
    """Check every field of `spec`, split the prompt and price the segments. Raises InvalidInput.
    `check_budget=False` prices a job without refusing it for its cost (the live estimate)."""
    context = segmentation_context(spec.manual_prompts)
    duration, seg_len, fps = _check_fields(spec, context)
    provider = spec.provider or settings.DEFAULT_PROVIDER
    size = spec.size or settings.DEFAULT_VIDEO_SIZE
    try:
        strategy = spec.strategy or settings.DEFAULT_STRATEGY
        specs = segment_prompt(strategy, spec.prompt, duration, seg_len, context)
        caps = provider_capabilities(provider)
        caps.check_size(size, caps.check_model(spec.model))
        _check_prompts_fit(caps, [s.prompt for s in specs])
        rows = [(s.index, s.prompt, s.is_manual, s.start_seconds, s.end_seconds) for s in specs]
        plan = price_segments(provider, spec.model, size, rows)
    except (SegmentationError, CapabilityError) as exc:
        raise InvalidInput(exc.message, field=exc.field) from None
    if check_budget:
        budget.check_estimate(
            estimate_usd=plan.cost_usd,
            billed_seconds=plan.billed_seconds,
            price_per_second=plan.price_per_second,
        )
    notices = [str(n) for n in context.extra.get("notices", [])]
    return CheckedJob(spec, duration, seg_len, fps, plan, notices)


def plan_for_job(job: VideoJob) -> Plan:
    """Billed seconds and cost of rendering `job`'s segments as they stand; nothing is rendered.
    Reads job.segments.all(), so a prefetched job costs no extra query."""
    return plan_for_segments(job, list(job.segments.all()))


def plan_for_segments(job: VideoJob, segments: Sequence[Segment]) -> Plan:
    rows = [(s.index, s.prompt, s.is_manual, s.start_seconds, s.end_seconds) for s in segments]
    try:
        return price_segments(job.provider, job.model, job.size, rows)
    except CapabilityError as exc:
        # The job was valid when stored; the provider's configuration has changed since.
        raise InvalidInput(exc.message, field=exc.field) from None
