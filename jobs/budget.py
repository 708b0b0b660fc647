"""Budget caps: per job (BUDGET_JOB_MAX_USD) and per user per UTC day and month
(BUDGET_USER_DAILY_USD, BUDGET_USER_MONTHLY_USD). Unset or 0 means no cap.

Checked by jobs.services before anything is queued, so a refused render makes no provider call:

- at creation, the job's whole estimate against every cap (a job that could never run is refused
  early);
- whenever a run starts (render, retry, re-render), what that run will render (its segments' billed
  seconds x price; cache hits are not subtracted, so the check is conservative) against the per-job
  cap on top of what the job already spent, and against the daily and monthly caps on top of what
  the owner already spent in the window (the ledger) plus what the owner's other runs in progress
  may still spend (their queued and rendering segments: a reservation, so two renders started
  together cannot both slip under a cap). The owner's row is locked while checking, so concurrent
  starts by one owner are checked one after the other.

A refusal is InvalidInput(field="budget") whose message names the cap's setting and the numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from . import ledger
from .catalogue import CapabilityError, model_spec
from .errors import InvalidInput
from .models import IN_FLIGHT_SEGMENT_STATUSES, RENDERING_JOB_STATUSES, Segment, VideoJob

ZERO = Decimal("0")


def money(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def cap(name: str) -> Decimal | None:
    """A cap from settings as a Decimal, or None when there is no cap."""
    value = getattr(settings, name, None)
    if value in (None, "", 0):
        return None
    value = Decimal(str(value))
    return value if value > 0 else None


# --- What a run costs ------------------------------------------------------------------------------


def segments_cost(segments: Iterable[Segment], *, provider: str, model: str, size: str) -> Decimal:
    """Billed seconds x price of rendering `segments` once each on one provider/model at one size."""
    try:
        spec = model_spec(provider, model)
        return sum((spec.cost(s.render_seconds, size) for s in segments), ZERO)
    except CapabilityError:
        return ZERO  # a provider or model no longer offered bills nothing through us


def run_cost(job: VideoJob, segment_ids: Iterable[int]) -> Decimal:
    return _priced(list(Segment.objects.filter(job=job, id__in=list(segment_ids)).select_related("job")))


def reserved(owner_id: Any, *, exclude_job_id: Any = None) -> Decimal:
    """What the owner's runs in progress may still spend: their queued and rendering segments, priced."""
    pending = Segment.objects.filter(
        job__owner_id=owner_id, job__status__in=RENDERING_JOB_STATUSES, status__in=IN_FLIGHT_SEGMENT_STATUSES
    ).select_related("job")
    if exclude_job_id is not None:
        pending = pending.exclude(job_id=exclude_job_id)
    return _priced(list(pending))


def _priced(segments: list[Segment]) -> Decimal:
    """Segments priced on the model each renders on (the job's, or a fallback's after a failover)."""
    groups: dict[tuple[str, str, str], list[Segment]] = {}
    for segment in segments:
        key = (segment.render_provider, segment.render_model, segment.job.size)
        groups.setdefault(key, []).append(segment)
    return sum((segments_cost(rows, provider=p, model=m, size=s) for (p, m, s), rows in groups.items()), ZERO)


# --- Status (for the API, the workspace and the CLI) -----------------------------------------------


@dataclass(frozen=True)
class Window:
    setting: str  # the cap's setting name, e.g. BUDGET_USER_DAILY_USD
    label: str  # "daily" / "monthly"
    period: str  # "today" / "this month"
    since: datetime
    cap_usd: Decimal | None
    spent_usd: Decimal
    reserved_usd: Decimal

    @property
    def used_usd(self) -> Decimal:
        return self.spent_usd + self.reserved_usd

    @property
    def remaining_usd(self) -> Decimal | None:
        return None if self.cap_usd is None else max(ZERO, self.cap_usd - self.used_usd)


def windows(owner_id: Any, *, now: datetime | None = None, exclude_job_id: Any = None) -> list[Window]:
    now = now or timezone.now()
    held = reserved(owner_id, exclude_job_id=exclude_job_id)
    result = []
    for setting, label, period, since in (
        ("BUDGET_USER_DAILY_USD", "daily", "today", ledger.day_start(now)),
        ("BUDGET_USER_MONTHLY_USD", "monthly", "this month", ledger.month_start(now)),
    ):
        result.append(
            Window(
                setting=setting,
                label=label,
                period=period,
                since=since,
                cap_usd=cap(setting),
                spent_usd=ledger.user_spent(owner_id, since),
                reserved_usd=held,
            )
        )
    return result


def status(owner: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """The owner's caps and where they stand, JSON-friendly (amounts as strings, None for no cap)."""

    def text(value: Decimal | None) -> str | None:
        return None if value is None else f"{value:.2f}"

    job_cap = cap("BUDGET_JOB_MAX_USD")
    return {
        "job_max_usd": text(job_cap),
        **{
            w.label: {
                "cap_usd": text(w.cap_usd),
                "spent_usd": text(w.spent_usd),
                "reserved_usd": text(w.reserved_usd),
                "remaining_usd": text(w.remaining_usd),
                "since": w.since.isoformat(),
            }
            for w in windows(owner.pk, now=now)
        },
    }


# --- Checks (called by jobs.services) --------------------------------------------------------------


def check_estimate(*, estimate_usd: Decimal, billed_seconds: float, price_per_second: Decimal) -> None:
    """At creation: refuse a job whose whole estimate is over a cap on its own (it could never run)."""
    if not estimate_usd:
        return
    what = (
        f"this job is estimated at {money(estimate_usd)} ({billed_seconds:g} billed seconds at "
        f"{money(price_per_second)}/s)"
    )
    for setting, label in (
        ("BUDGET_JOB_MAX_USD", "the per-job budget"),
        ("BUDGET_USER_DAILY_USD", "your daily budget"),
        ("BUDGET_USER_MONTHLY_USD", "your monthly budget"),
    ):
        limit = cap(setting)
        if limit is not None and estimate_usd > limit:
            raise InvalidInput(
                f"{what}; {label} ({setting}) is {money(limit)}. Shorten the video, choose a cheaper "
                "model or size, or ask an operator to raise the cap.",
                field="budget",
            )


def check_run(*, job: VideoJob, segment_ids: Iterable[int], now: datetime | None = None) -> Decimal:
    """Refuse a run of `job` rendering `segment_ids` that would go over a cap; return its cost.

    Call inside the transaction that queues the run: the owner's row is locked so concurrent starts by
    the same owner are checked in turn and each sees the others' reservations.
    """
    cost = run_cost(job, segment_ids)
    if not cost:
        return cost  # nothing billable to render (a free provider, or a re-assembly)
    job_cap = cap("BUDGET_JOB_MAX_USD")
    if job_cap is not None and job.cost_spent_usd + cost > job_cap:
        already = f" and this job has already spent {money(job.cost_spent_usd)}" if job.cost_spent_usd else ""
        raise InvalidInput(
            f"this render would cost {money(cost)}; the per-job budget (BUDGET_JOB_MAX_USD) is "
            f"{money(job_cap)}{already}",
            field="budget",
        )
    if cap("BUDGET_USER_DAILY_USD") is None and cap("BUDGET_USER_MONTHLY_USD") is None:
        return cost
    # Serialise starts per owner (a row lock on PostgreSQL; SQLite's IMMEDIATE transactions already
    # serialise every writer).
    list(get_user_model().objects.select_for_update().filter(pk=job.owner_id).values_list("pk"))
    for window in windows(job.owner_id, now=now, exclude_job_id=job.id):
        if window.cap_usd is None or window.used_usd + cost <= window.cap_usd:
            continue
        if window.reserved_usd:
            used = (
                f"{money(window.used_usd)} is already spent or reserved {window.period} "
                f"({money(window.spent_usd)} spent, {money(window.reserved_usd)} held by renders in "
                "progress)"
            )
        else:
            used = f"{money(window.spent_usd)} is already spent {window.period}"
        raise InvalidInput(
            f"this render would cost {money(cost)}; your {window.label} budget ({window.setting}) is "
            f"{money(window.cap_usd)} and {used}",
            field="budget",
        )
    return cost


def check_failover(*, segment: Segment, cost: Decimal, now: datetime | None = None) -> None:
    """Refuse moving a rendering segment onto a fallback model that costs `cost` when that would go over
    a cap: the per-job cap on top of what the job spent, and the owner's windows with this segment's
    reservation at its new price. Call inside the failover's transaction."""
    job = segment.job
    old = _priced([segment])
    job_cap = cap("BUDGET_JOB_MAX_USD")
    if job_cap is not None and job.cost_spent_usd + cost > job_cap:
        raise InvalidInput(
            f"moving segment {segment.index + 1} to a fallback model would cost {money(cost)}; the per-job "
            f"budget (BUDGET_JOB_MAX_USD) is {money(job_cap)} and this job has spent "
            f"{money(job.cost_spent_usd)}",
            field="budget",
        )
    for window in windows(job.owner_id, now=now):
        if window.cap_usd is not None and window.used_usd - old + cost > window.cap_usd:
            raise InvalidInput(
                f"moving segment {segment.index + 1} to a fallback model would cost {money(cost)}; your "
                f"{window.label} budget ({window.setting}) of {money(window.cap_usd)} would be exceeded",
                field="budget",
            )
