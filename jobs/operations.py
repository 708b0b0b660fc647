"""Reads for the operators' console: what the fleet is doing, what it costs, what goes wrong.

Every function is a handful of aggregate queries, independent of how many jobs exist.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.utils import timezone

from .models import JobStatus, Segment, SegmentStatus, VideoJob


@dataclass
class SpendWindow:
    label: str
    since: datetime
    spent_usd: Decimal
    cap_usd: Decimal | None
    cap_setting: str


@dataclass
class WorkerHealth:
    mode: str  # "embedded" or "celery"
    alive: list[str] = field(default_factory=list)
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.mode == "embedded" or bool(self.alive)


def jobs_by_status() -> list[tuple[str, str, int]]:
    counts = dict(VideoJob.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return [(value, label, counts.get(value, 0)) for value, label in JobStatus.choices]


def segments_in_flight_by_provider() -> list[dict[str, Any]]:
    rows = (
        Segment.objects.filter(status__in=[SegmentStatus.QUEUED, SegmentStatus.RENDERING])
        .values("job__provider")
        .annotate(
            queued=Count("id", filter=Q(status=SegmentStatus.QUEUED)),
            rendering=Count("id", filter=Q(status=SegmentStatus.RENDERING)),
        )
        .order_by("job__provider")
    )
    return [
        {"provider": r["job__provider"], "queued": r["queued"], "rendering": r["rendering"]} for r in rows
    ]


def _cap(name: str) -> Decimal | None:
    value = getattr(settings, name, None)
    if value in (None, "", 0, "0"):
        return None
    return Decimal(str(value))


def spend_windows(now: datetime | None = None) -> list[SpendWindow]:
    """Fleet spend today and this month (UTC), beside the per-user caps that apply to each window.

    Spend is what segments were charged (render and lost renders), counted when the segment was last
    updated: a good approximation until a segment is re-rendered on another day.
    """
    now = now or timezone.now()
    day = datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)
    month = day.replace(day=1)
    windows = []
    for label, since, cap_name in (
        ("Today", day, "BUDGET_USER_DAILY_USD"),
        ("This month", month, "BUDGET_USER_MONTHLY_USD"),
    ):
        spent = Segment.objects.filter(updated_at__gte=since).aggregate(total=Sum("cost_usd"))["total"]
        windows.append(SpendWindow(label, since, spent or Decimal("0"), _cap(cap_name), cap_name))
    return windows


def top_spenders(days: int = 30, limit: int = 10) -> list[dict[str, Any]]:
    since = timezone.now() - timedelta(days=days)
    return list(
        VideoJob.objects.filter(created_at__gte=since)
        .values("owner__username")
        .annotate(spent=Sum("cost_spent_usd"), estimated=Sum("cost_estimate_usd"), jobs=Count("id"))
        .order_by("-spent")[:limit]
    )


_VOLATILE = re.compile(r"\b(video_[0-9a-f]+|[0-9a-f]{8}-[0-9a-f-]{27,}|\d+(\.\d+)?)\b")


def failure_reasons(limit: int = 10, sample: int = 2000) -> list[tuple[str, int]]:
    """The most frequent reasons segments failed, with ids and numbers blanked so alike errors group."""
    errors = (
        Segment.objects.filter(status=SegmentStatus.FAILED)
        .exclude(error="")
        .order_by("-updated_at")
        .values_list("error", flat=True)[:sample]
    )
    counter = Counter(_VOLATILE.sub("#", error.splitlines()[0])[:160] for error in errors)
    return counter.most_common(limit)


def worker_health(timeout: float = 1.0) -> WorkerHealth:
    if settings.TASK_RUNNER != "celery":
        return WorkerHealth(
            mode="embedded",
            detail=(
                f"embedded default: tasks run inside the web process on {settings.INPROCESS_WORKERS} threads"
            ),
        )
    from sora_controller.celery import app

    try:
        replies = app.control.ping(timeout=timeout) or []
    except Exception as exc:  # the broker itself is down: say so instead of failing the page
        return WorkerHealth(mode="celery", detail=f"cannot reach the broker: {type(exc).__name__}: {exc}")
    alive = sorted(name for reply in replies for name in reply)
    detail = f"{len(alive)} worker(s) answered a ping within {timeout:g} s"
    return WorkerHealth(mode="celery", alive=alive, detail=detail)
