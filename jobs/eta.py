"""How long a segment takes to render on a model, from that model's recent takes: the basis of the
elapsed-time and ETA figures the job page shows while a person waits.

A take is made when a segment's render finishes. Segments of a parallel (or reference) job all start
when the run starts, so "take made" minus "run started" is that segment's render time (queueing
included, which is what a person waits for). Chain and bridge jobs render one segment after another,
so their takes would count the wait for the previous segments: they are left out. Cached takes cost no
render time and are left out too.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median

from django.db.models import DurationField, ExpressionWrapper, F

from .models import Continuity, Take

# Enough recent takes to even out a slow one; few enough that a model that got faster shows it soon.
RECENT_TAKES = 25
# Renders longer than this are outliers (a worker that died and was reaped), not a typical wait.
MAX_SECONDS = 6 * 3600


@dataclass(frozen=True)
class RenderTime:
    seconds: float | None  # the median render seconds of one segment; None: no history yet
    samples: int


def segment_render_time(*, provider: str, model: str, limit: int = RECENT_TAKES) -> RenderTime:
    """The median seconds from a run's start to a segment's take on `provider:model`, over its newest
    `limit` uncached takes of parallel-style runs."""
    waited = ExpressionWrapper(F("created_at") - F("segment__job__started_at"), output_field=DurationField())
    rows = (
        Take.objects.filter(
            segment__job__provider=provider,
            segment__job__model=model,
            segment__job__started_at__isnull=False,
            segment__job__started_at__lte=F("created_at"),
            cached=False,
        )
        .exclude(segment__job__continuity__in=[Continuity.CHAIN, Continuity.BRIDGE])
        .annotate(waited=waited)
        .order_by("-created_at")
        .values_list("waited", flat=True)[:limit]
    )
    seconds = [w.total_seconds() for w in rows if w is not None and 0 <= w.total_seconds() <= MAX_SECONDS]
    if not seconds:
        return RenderTime(seconds=None, samples=0)
    return RenderTime(seconds=round(median(seconds), 1), samples=len(seconds))
