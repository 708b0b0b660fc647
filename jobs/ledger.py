"""The spend ledger: what each provider render cost, what lost renders cost, what the cache saved.

Money moves through one function, `charge`: it writes the ledger line and adds the amount to the
segment's `cost_usd` and the job's `cost_spent_usd` in the same transaction, so the three can never
disagree (segment = its spent lines, job = its spent lines). It is called only by jobs.render_state,
inside the transaction of the state change it accounts for. Lines outlive their job (SET_NULL): a
deleted job's money still counts against its owner's budget, in the metrics and in "top spenders".
Everything else here is a read.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncMonth
from django.utils import timezone

from .models import Segment, SpendEntry, SpendKind, VideoJob

# The kinds that are money actually spent (cache_saving is money not spent).
SPENT_KINDS = (SpendKind.RENDER, SpendKind.WASTED)
ZERO = Decimal("0")


def charge(
    *,
    segment: Segment,
    kind: str,
    amount_usd: Decimal,
    note: str = "",
    provider_task_id: str | None = None,
) -> SpendEntry | None:
    """Record money for `segment` (its job loaded): the ledger line and both totals, together.

    Nothing is written for a zero amount spent (a free provider, a failure that was not billed); a
    cache saving is written even at zero, as the record that the clip was reused, and changes no total.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("ledger.charge must run inside the transaction of the state change it records")
    if amount_usd < 0:
        raise ValueError(f"a ledger amount cannot be negative, got {amount_usd}")
    if not amount_usd and kind != SpendKind.CACHE_SAVING:
        return None
    job = segment.job
    entry = SpendEntry.objects.create(
        owner_id=job.owner_id,
        job=job,
        segment=segment,
        segment_index=segment.index,
        kind=kind,
        amount_usd=amount_usd,
        billed_seconds=segment.render_seconds,
        provider=segment.render_provider,
        model=segment.render_model,
        size=job.size,
        provider_task_id=segment.provider_task_id if provider_task_id is None else provider_task_id,
        note=note[:300],
    )
    if kind in SPENT_KINDS:
        Segment.objects.filter(id=segment.id).update(cost_usd=F("cost_usd") + amount_usd)
        VideoJob.objects.filter(id=job.id).update(cost_spent_usd=F("cost_spent_usd") + amount_usd)
    return entry


# --- Reads ------------------------------------------------------------------------------------------


def day_start(now: datetime | None = None) -> datetime:
    """Midnight UTC of `now`'s day: budgets use UTC days, the same for every worker and user."""
    now = now or timezone.now()
    return datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)


def month_start(now: datetime | None = None) -> datetime:
    return day_start(now).replace(day=1)


def _sum(queryset: QuerySet[SpendEntry]) -> Decimal:
    return queryset.aggregate(total=Sum("amount_usd"))["total"] or ZERO


def job_spent(job_id: uuid.UUID | str) -> Decimal:
    """Render + wasted lines of one job: equal to the job's cost_spent_usd by construction."""
    return _sum(SpendEntry.objects.filter(job_id=job_id, kind__in=SPENT_KINDS))


def job_saved(job_id: uuid.UUID | str) -> Decimal:
    return _sum(SpendEntry.objects.filter(job_id=job_id, kind=SpendKind.CACHE_SAVING))


def user_spent(owner_id: Any, since: datetime, until: datetime | None = None) -> Decimal:
    """Money `owner` spent (render + wasted) from `since` (inclusive) to `until` (exclusive)."""
    queryset = SpendEntry.objects.filter(owner_id=owner_id, kind__in=SPENT_KINDS, created_at__gte=since)
    if until is not None:
        queryset = queryset.filter(created_at__lt=until)
    return _sum(queryset)


@dataclass(frozen=True)
class Totals:
    spent_usd: Decimal
    render_usd: Decimal
    wasted_usd: Decimal
    saved_usd: Decimal
    billed_seconds: float


def totals(queryset: QuerySet[SpendEntry] | None = None) -> Totals:
    """Sums by kind over any selection of lines (the admin's filtered list, one job, one owner)."""
    queryset = SpendEntry.objects.all() if queryset is None else queryset
    row = queryset.aggregate(
        render=Sum("amount_usd", filter=Q(kind=SpendKind.RENDER)),
        wasted=Sum("amount_usd", filter=Q(kind=SpendKind.WASTED)),
        saved=Sum("amount_usd", filter=Q(kind=SpendKind.CACHE_SAVING)),
        seconds=Sum("billed_seconds", filter=Q(kind__in=SPENT_KINDS)),
    )
    render, wasted = row["render"] or ZERO, row["wasted"] or ZERO
    return Totals(
        spent_usd=render + wasted,
        render_usd=render,
        wasted_usd=wasted,
        saved_usd=row["saved"] or ZERO,
        billed_seconds=row["seconds"] or 0.0,
    )


def spend_by_user(*, period: str = "day", since: datetime | None = None, owner_id: Any = None) -> list[dict]:
    """Per owner per UTC day (or month): spent (render + wasted), wasted and saved, newest first.

    Rows: {"owner_id", "username", "period" (datetime), "spent_usd", "wasted_usd", "saved_usd"}.
    """
    trunc = {"day": TruncDay, "month": TruncMonth}.get(period)
    if trunc is None:
        raise ValueError(f"period must be 'day' or 'month', got {period!r}")
    queryset = SpendEntry.objects.all()
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    if owner_id is not None:
        queryset = queryset.filter(owner_id=owner_id)
    rows = (
        queryset.annotate(period=trunc("created_at", tzinfo=UTC))
        .values("owner_id", "owner__username", "period")
        .annotate(
            spent=Sum("amount_usd", filter=Q(kind__in=SPENT_KINDS)),
            wasted=Sum("amount_usd", filter=Q(kind=SpendKind.WASTED)),
            saved=Sum("amount_usd", filter=Q(kind=SpendKind.CACHE_SAVING)),
        )
        .order_by("-period", "owner__username")
    )
    return [
        {
            "owner_id": row["owner_id"],
            "username": row["owner__username"],
            "period": row["period"],
            "spent_usd": row["spent"] or ZERO,
            "wasted_usd": row["wasted"] or ZERO,
            "saved_usd": row["saved"] or ZERO,
        }
        for row in rows
    ]


def spent_total() -> Decimal:
    """Everything ever spent through this deployment (the spend metric); deleting a job changes nothing."""
    return _sum(SpendEntry.objects.filter(kind__in=SPENT_KINDS))


def top_spenders(*, since: datetime | None = None, limit: int = 10) -> list[dict[str, Any]]:
    """Owners by money spent (render + wasted lines), most first: {"owner_id", "username", "spent_usd",
    "jobs"} where jobs counts the jobs that still exist."""
    queryset = SpendEntry.objects.filter(kind__in=SPENT_KINDS)
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    rows = (
        queryset.values("owner_id", "owner__username")
        .annotate(spent=Sum("amount_usd"), jobs=Count("job", distinct=True))
        .order_by("-spent", "owner__username")[:limit]
    )
    return [
        {
            "owner_id": row["owner_id"],
            "username": row["owner__username"],
            "spent_usd": row["spent"] or ZERO,
            "jobs": row["jobs"],
        }
        for row in rows
    ]
