"""Reads for the operators' console: what the fleet is doing, what it costs, what goes wrong.

Every function is a handful of aggregate queries, independent of how many jobs exist.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.utils import timezone

from . import budget, ledger
from .models import JobStatus, Segment, SegmentStatus, SpendEntry, SpendKind, VideoJob


@dataclass
class SpendWindow:
    label: str
    since: datetime
    spent_usd: Decimal  # render + lost renders (ledger)
    cap_usd: Decimal | None
    cap_setting: str
    wasted_usd: Decimal = Decimal("0")  # of spent_usd: renders billed but lost (expired downloads)
    saved_usd: Decimal = Decimal("0")  # not spent: clips reused by the render cache


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


def spend_windows(now: datetime | None = None) -> list[SpendWindow]:
    """Fleet spend today and this month (UTC days, as the budgets count them), beside the per-user caps
    that apply to each window.

    From the spend ledger: spent is every billed render plus every render lost to an expired download,
    dated when it was billed (lines outlive deleted jobs); saved is what the render cache did not spend.
    One aggregate query for both windows.
    """
    now = now or timezone.now()
    day, month = ledger.day_start(now), ledger.month_start(now)
    windows = [("Today", day, "BUDGET_USER_DAILY_USD"), ("This month", month, "BUDGET_USER_MONTHLY_USD")]
    sums: dict[str, Any] = {}
    for key, (_, since, _) in enumerate(windows):
        in_window = Q(created_at__gte=since)
        sums[f"spent{key}"] = Sum("amount_usd", filter=in_window & Q(kind__in=ledger.SPENT_KINDS))
        sums[f"wasted{key}"] = Sum("amount_usd", filter=in_window & Q(kind=SpendKind.WASTED))
        sums[f"saved{key}"] = Sum("amount_usd", filter=in_window & Q(kind=SpendKind.CACHE_SAVING))
    # Only this month's lines are read (the month starts on or before the day).
    row = SpendEntry.objects.filter(created_at__gte=month).aggregate(**sums)
    zero = Decimal("0")
    return [
        SpendWindow(
            label,
            since,
            row[f"spent{key}"] or zero,
            budget.cap(cap_name),  # read as the budget checks read it
            cap_name,
            wasted_usd=row[f"wasted{key}"] or zero,
            saved_usd=row[f"saved{key}"] or zero,
        )
        for key, (label, since, cap_name) in enumerate(windows)
    ]


def top_spenders(days: int = 30, limit: int = 10) -> list[dict[str, Any]]:
    """Who spent most in the last `days`, from the ledger (deleted jobs still count)."""
    return ledger.top_spenders(since=timezone.now() - timedelta(days=days), limit=limit)


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
