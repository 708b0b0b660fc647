"""The spend ledger: one line per billed render (and per lost render), written with the state change,
always summing to the job's cost_spent_usd, outliving deleted jobs, and summable per user per day or
month."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from jobs import ledger, services
from jobs.models import SpendEntry, SpendKind

from .conftest import SHOTS, render, sora_job

pytestmark = pytest.mark.django_db(transaction=True)


def lines(job) -> list[tuple[str, int, Decimal, float]]:
    return sorted(
        (e.kind, e.segment_index, e.amount_usd, e.billed_seconds) for e in SpendEntry.objects.filter(job=job)
    )


def test_every_billed_render_is_a_line_and_the_lines_sum_to_the_jobs_spend(fake_api, no_caps, user):
    job = render(sora_job(user, prompts=SHOTS))
    assert lines(job) == [(SpendKind.RENDER, i, Decimal("0.4"), 4.0) for i in range(3)]
    entry = SpendEntry.objects.filter(job=job).first()
    assert (entry.owner, entry.provider, entry.model, entry.size) == (user, "sora", "sora-2", "1280x720")
    assert entry.provider_task_id.startswith("video_")
    assert job.cost_spent_usd == ledger.job_spent(job.id) == Decimal("1.2") == job.cost_estimate_usd


def test_a_lost_render_is_a_wasted_line(fake_api, no_caps, user):
    fake_api.config.expire_next_downloads = 1
    job = render(sora_job(user, prompts=SHOTS[:2]))
    kinds = [kind for kind, *_ in lines(job)]
    assert sorted(kinds) == [SpendKind.RENDER, SpendKind.RENDER, SpendKind.WASTED]
    wasted = SpendEntry.objects.get(job=job, kind=SpendKind.WASTED)
    assert "download expired" in wasted.note and wasted.amount_usd == Decimal("0.4")
    assert job.cost_spent_usd == ledger.job_spent(job.id) == Decimal("1.2")
    totals = ledger.totals(SpendEntry.objects.filter(job=job))
    assert (totals.render_usd, totals.wasted_usd, totals.spent_usd, totals.billed_seconds) == (
        Decimal("0.8"),
        Decimal("0.4"),
        Decimal("1.2"),
        12.0,
    )


def test_lines_outlive_the_job_so_deleting_it_gives_no_budget_back(fake_api, no_caps, user):
    job = render(sora_job(user))
    services.video_job_delete(job=job)
    entry = SpendEntry.objects.get()
    assert entry.job is None and entry.segment is None and entry.segment_index == 0
    assert ledger.user_spent(user.id, ledger.day_start()) == Decimal("0.4")


def test_sums_per_user_per_day_and_month(db):
    users = get_user_model()
    alice, bob = users.objects.create(username="a"), users.objects.create(username="b")
    today = ledger.day_start()
    yesterday = today - timedelta(hours=1)
    for owner, amount, kind, when in (
        (alice, "1.00", SpendKind.RENDER, today),
        (alice, "0.40", SpendKind.WASTED, today),
        (alice, "2.00", SpendKind.CACHE_SAVING, today),
        (alice, "3.00", SpendKind.RENDER, yesterday),
        (bob, "0.50", SpendKind.RENDER, today),
    ):
        SpendEntry.objects.create(
            owner=owner, kind=kind, amount_usd=Decimal(amount), provider="sora", created_at=when
        )
    daily = ledger.spend_by_user(period="day", since=yesterday)
    got = {(r["username"], r["period"]): (r["spent_usd"], r["wasted_usd"], r["saved_usd"]) for r in daily}
    assert got == {
        ("a", today): (Decimal("1.4"), Decimal("0.4"), Decimal("2")),
        ("a", ledger.day_start(yesterday)): (Decimal("3"), Decimal("0"), Decimal("0")),
        ("b", today): (Decimal("0.5"), Decimal("0"), Decimal("0")),
    }
    monthly = ledger.spend_by_user(period="month", owner_id=alice.id)
    assert sum(r["spent_usd"] for r in monthly) == Decimal("4.4")
    assert ledger.user_spent(alice.id, today) == Decimal("1.4")
    with pytest.raises(ValueError):
        ledger.spend_by_user(period="week")
