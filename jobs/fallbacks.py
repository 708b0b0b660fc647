"""Fallback models of a job: checked when the job is planned (each usable here, at the job's size and
continuity, none repeated), then used by jobs.render_state.segment_fail_over when a provider stays down."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .catalogue import CapabilityError, ModelSpec, continuity_lacks, provider_catalogue
from .errors import InvalidInput

if TYPE_CHECKING:
    from .planning import JobSpec, Plan

MAX_FALLBACKS = 3


def check_fallbacks(spec: JobSpec, primary: ModelSpec, size: str, plan: Plan) -> tuple[list[str], list[str]]:
    """The fallback models as "provider:model", each usable here at the job's size and continuity; and,
    in words, the segments a fallback could not take over (its clips are shorter than the segment)."""
    if isinstance(spec.fallback_models, str) or not all(isinstance(f, str) for f in spec.fallback_models):
        raise InvalidInput(
            'fallback_models must be a list of "provider:model" texts', field="fallback_models"
        )
    if len(spec.fallback_models) > MAX_FALLBACKS:
        raise InvalidInput(f"at most {MAX_FALLBACKS} fallback models", field="fallback_models")
    chosen, notes, errors = [], [], []
    primary_key = f"{primary.provider}:{primary.id}"  # the provider's own name, whatever alias was used
    for number, text in enumerate(spec.fallback_models, start=1):
        name, _, model_id = text.partition(":")
        try:
            catalogue = provider_catalogue(name.strip())
            missing = catalogue.missing_settings()
            if missing:  # said, and the rest of the entry still checked
                errors.append(
                    f"fallback {number} ({text}): set {' and '.join(missing)} to use {catalogue.provider}"
                )
            model = catalogue.model(model_id.strip())
            model.check_size(size)
            lacking = continuity_lacks(spec.continuity, model)
            if lacking:
                raise CapabilityError(lacking, field="continuity")
        except CapabilityError as exc:
            errors.append(f"fallback {number} ({text}): {exc.message}")
            continue
        key = f"{catalogue.provider}:{model.id}"
        if key == primary_key or key in chosen:
            errors.append(f"fallback {number} ({text}) repeats a model already in the list")
            continue
        chosen.append(key)
        lengths = model.lengths_for(size)
        short = [s.index + 1 for s in plan.segments if lengths and s.planned_seconds > max(lengths) + 1e-9]
        if short:
            notes.append(f"{key} renders at most {max(lengths):g} s, so it cannot take over segments {short}")
    if errors:
        raise InvalidInput({"fallback_models": errors})
    return chosen, notes
