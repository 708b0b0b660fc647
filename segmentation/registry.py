"""Strategy registry: `@register("name")` on a strategy function, `get_strategy(name)` to look one up.

The admin, the API and the CLI build their choices from `strategy_names()`, so a new strategy appears
everywhere by being registered.
"""

from __future__ import annotations

from collections.abc import Callable

from .types import SegmentationContext, SegmentationError, SegmentSpec

Strategy = Callable[[str, float, float, SegmentationContext], list[SegmentSpec]]

_STRATEGIES: dict[str, Strategy] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register(name: str, *, description: str = "") -> Callable[[Strategy], Strategy]:
    def decorator(func: Strategy) -> Strategy:
        if name in _STRATEGIES and _STRATEGIES[name] is not func:
            raise ValueError(f"segmentation strategy {name!r} is already registered")
        _STRATEGIES[name] = func
        doc_lines = (func.__doc__ or "").strip().splitlines()
        _DESCRIPTIONS[name] = description or (doc_lines[0] if doc_lines else name)
        return func

    return decorator


def _load_builtins() -> None:
    # Importing the package registers the built-in strategies.
    from . import strategies  # noqa: F401


def get_strategy(name: str) -> Strategy:
    _load_builtins()
    try:
        return _STRATEGIES[name]
    except KeyError:
        known = ", ".join(sorted(_STRATEGIES)) or "none"
        raise SegmentationError(
            f"unknown strategy {name!r}; choose one of: {known}", field="strategy"
        ) from None


def strategy_names() -> list[str]:
    _load_builtins()
    return sorted(_STRATEGIES)


def strategy_choices() -> list[tuple[str, str]]:
    _load_builtins()
    return [(name, _DESCRIPTIONS.get(name, name)) for name in sorted(_STRATEGIES)]


def segment_prompt(
    strategy: str, prompt: str, duration: float, segment_length: float, context: SegmentationContext
) -> list[SegmentSpec]:
    """Look up `strategy` and run it."""
    return get_strategy(strategy)(prompt, duration, segment_length, context)
