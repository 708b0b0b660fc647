"""Money moves only through jobs.ledger.charge, so a segment's cost, its job's spend and the ledger agree
after every way money can move: a render, a render lost to an expired download, a clip reused from the
render cache, a segment that used up its attempts on lost renders, a retry, a re-render and a delete.
The spend metric and "top spenders" read the ledger, so a delete takes nothing away from them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db.models import Q, Sum

from jobs import ledger, operations, services
from jobs.models import JobStatus, Segment, SegmentStatus, SpendEntry, SpendKind, VideoJob

from .conftest import SHOTS, finish, render, sora_job

pytestmark = pytest.mark.django_db(transaction=True)

CLIP = Decimal("0.4")  # one 4 s sora-2 clip


def spent(**lookup: object) -> Decimal:
    lines = SpendEntry.objects.filter(kind__in=ledger.SPENT_KINDS, **lookup)
    return lines.aggregate(total=Sum("amount_usd"))["total"] or Decimal("0")


def assert_money_agrees() -> Decimal:
    """Every segment's cost is its spent lines, every job's spend is its lines and its segments' costs;
    returns the ledger's total."""
    for segment in Segment.objects.all():
        assert segment.cost_usd == spent(segment=segment), (segment, segment.cost_usd)
    for job in VideoJob.objects.all():
        by_segments = job.segments.aggregate(total=Sum("cost_usd"))["total"] or Decimal("0")
        assert job.cost_spent_usd == spent(job=job) == by_segments, (job, job.cost_spent_usd)
    total = spent()
    assert ledger.spent_total() == total
    return total


def metric_spend(client, admin_user) -> float:
    client.force_login(admin_user)
    body = client.get("/metrics").content.decode()
    line = next(row for row in body.splitlines() if row.startswith("sora_spend_usd_total "))
    return float(line.split()[1])


def test_every_way_money_moves_keeps_segment_job_and_ledger_equal(
    fake_api, no_caps, user, settings, client, admin_user
):
    # A render, with its first download lost (billed, unusable: a wasted line, then a new attempt).
    fake_api.config.expire_next_downloads = 1
    first = render(sora_job(user, prompts=SHOTS[:2]))
    assert first.cost_spent_usd == 3 * CLIP
    assert assert_money_agrees() == 3 * CLIP

    # The same shot again: the render cache reuses the clip; nothing is spent, a saving is recorded.
    cached = render(sora_job(user, prompts=SHOTS[:1]))
    assert cached.cost_spent_usd == 0 and ledger.job_saved(cached.id) == CLIP
    assert assert_money_agrees() == 3 * CLIP

    # A segment whose every attempt is lost fails with all the waste charged; a retry renders it.
    settings.SEGMENT_MAX_ATTEMPTS = 2
    fake_api.config.expire_next_downloads = 2
    unlucky = finish(services.video_job_render(job=sora_job(user, prompts=SHOTS[2:], use_cache=False)))
    assert unlucky.status == JobStatus.FAILED
    segment = unlucky.segments.get()
    assert segment.status == SegmentStatus.FAILED and "used all 2 attempts" in segment.error
    assert segment.cost_usd == 2 * CLIP
    assert assert_money_agrees() == 5 * CLIP
    retried = finish(services.video_job_retry(job=unlucky))
    assert retried.status == JobStatus.COMPLETED and retried.cost_spent_usd == 3 * CLIP
    assert assert_money_agrees() == 6 * CLIP

    # A re-render is a fresh take, billed again on the same segment.
    rerendered = finish(services.segment_rerender(job=first, indexes=[1]))
    assert rerendered.status == JobStatus.COMPLETED and rerendered.cost_spent_usd == 4 * CLIP
    assert assert_money_agrees() == 7 * CLIP
    kinds = SpendEntry.objects.filter(job=first).values_list("kind", flat=True)
    assert sorted(kinds) == sorted([SpendKind.RENDER] * 3 + [SpendKind.WASTED])

    # Deleting jobs gives no money back: the ledger, the metric and the top spenders keep it.
    before = metric_spend(client, admin_user)
    assert before == pytest.approx(float(7 * CLIP))
    top = operations.top_spenders()
    for job in (first, unlucky):
        services.video_job_delete(job=VideoJob.objects.get(id=job.id))
    assert assert_money_agrees() == 7 * CLIP
    assert metric_spend(client, admin_user) == before
    # The money stays with its owner; no job that spent it is left (`cached` spent nothing).
    assert operations.top_spenders() == [{**row, "jobs": 0} for row in top]
    assert top[0]["spent_usd"] == 7 * CLIP and top[0]["jobs"] == 2
    assert SpendEntry.objects.filter(Q(job=None) | Q(segment=None)).count() == 7  # 4 + 3 lines


def test_charge_refuses_to_run_outside_the_state_change(user):
    job = sora_job(user)
    segment = job.segments.select_related("job").get()
    with pytest.raises(RuntimeError, match="inside the transaction"):
        ledger.charge(segment=segment, kind=SpendKind.RENDER, amount_usd=CLIP)
    assert not SpendEntry.objects.exists()
