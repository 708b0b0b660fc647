"""The render cache: an identical segment reuses a finished clip with no provider call (the fake API
counts), any changed input is a miss, and the ledger records what was saved."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command

from jobs import ledger, services
from jobs.models import SegmentStatus, SpendEntry, SpendKind
from rendering import cache
from tests.spend.conftest import ONE_SORA_CLIP

from .conftest import SHOTS, finish, png, render, sora_job

pytestmark = pytest.mark.django_db(transaction=True)


def clips(job) -> list[Path]:
    return [Path(s.clip.path) for s in job.segments.order_by("index")]


def test_the_same_job_twice_costs_once(fake_api, no_caps, user):
    first = render(sora_job(user, prompts=SHOTS))
    second = render(sora_job(user, prompts=SHOTS))

    assert fake_api.stats.creates == 3 and fake_api.stats.downloads == 3
    assert second.cost_spent_usd == Decimal("0") and first.cost_spent_usd == Decimal("1.2")
    saved = SpendEntry.objects.filter(job=second)
    assert sorted((e.kind, e.amount_usd, e.segment_index) for e in saved) == [
        (SpendKind.CACHE_SAVING, Decimal("0.4"), i) for i in range(3)
    ]
    assert ledger.job_saved(second.id) == first.cost_spent_usd
    # The ledger and the provider agree: three billed renders in all.
    assert ledger.totals().spent_usd == Decimal("0.4") * fake_api.stats.creates
    sources = {s.index: s.cached_from_id for s in second.segments.all()}
    assert sources == {s.index: s.id for s in first.segments.all()}
    # Copies, not shared files: the bytes match, the names do not.
    for mine, theirs in zip(clips(second), clips(first), strict=True):
        assert mine != theirs and mine.read_bytes() == theirs.read_bytes()

    services.video_job_delete(job=first)
    assert all(path.exists() for path in clips(second))
    job = finish(services.video_job_reassemble(job=second))
    assert job.status == "completed", job.error


def test_any_changed_input_is_a_miss(fake_api, no_caps, user):
    render(sora_job(user))
    variants = [
        sora_job(user, prompts=["A lighthouse at dawn."]),
        sora_job(user, size="720x1280"),
        sora_job(user, duration_seconds=8, segment_seconds=8),
        sora_job(user, model="sora-2-pro"),
        sora_job(user, fps=24),
    ]
    with_reference = sora_job(user)
    services.reference_image_add(job=with_reference, upload=png())
    variants.append(with_reference)
    for job in variants:
        services.video_job_render(job=job)
    for job in variants:
        job = finish(job)
        assert job.status == "completed", job.error
        assert not job.segments.filter(cached_from__isnull=False).exists()
    assert fake_api.stats.creates == 1 + len(variants)
    keys = {s.cache_key for job in variants for s in job.segments.all()}
    assert len(keys) == len(variants) and "" not in keys


def test_opting_out_and_rerendering_are_fresh_takes(fake_api, no_caps, user):
    render(sora_job(user))
    fresh = render(sora_job(user, use_cache=False))
    assert fake_api.stats.creates == 2 and fresh.cost_spent_usd == Decimal("0.4")
    later = render(sora_job(user))  # a fresh take's clip serves later jobs
    assert fake_api.stats.creates == 2
    assert later.segments.get().cached_from_id == fresh.segments.get().id  # the newest clip
    later = finish(services.segment_rerender(job=later, indexes=[0]))
    assert later.status == "completed" and fake_api.stats.creates == 3
    assert later.segments.get().cached_from_id is None and later.cost_spent_usd == Decimal("0.4")


def test_no_reuse_across_owners_of_vanished_files_or_with_the_cache_off(fake_api, no_caps, user, other_user):
    mine = render(sora_job(user))
    theirs = render(sora_job(other_user))
    assert fake_api.stats.creates == 2 and theirs.segments.get().cached_from_id is None

    no_caps.RENDER_CACHE = False
    off = render(sora_job(user))
    assert fake_api.stats.creates == 3 and off.segments.get().cache_key == ""
    no_caps.RENDER_CACHE = True

    default_storage.delete(mine.segments.get().clip.name)  # the only clip with this key is gone
    again = render(sora_job(user))
    assert fake_api.stats.creates == 4 and again.segments.get().cached_from_id is None


def test_a_chain_hits_link_by_link(fake_api, no_caps, user):
    first = render(sora_job(user, prompts=SHOTS[:2], continuity="chain"))
    second = render(sora_job(user, prompts=SHOTS[:2], continuity="chain"))
    assert fake_api.stats.creates == 2
    assert [s.cached_from_id for s in second.segments.order_by("index")] == [
        s.id for s in first.segments.order_by("index")
    ]
    # The second link's key follows the first link's true last frame: another picture, another key.
    link = first.segments.get(index=1)
    assert cache.segment_cache_key(link) == link.cache_key
    Path(first.segments.get(index=0).last_frame.path).write_bytes(png((1, 2, 3)).getvalue())
    assert cache.segment_cache_key(link) != link.cache_key


def test_the_cli_reports_the_saving_and_no_cache_renders_afresh(fake_api, no_caps, user, tmp_path):
    def cli(*extra: str) -> str:
        out = io.StringIO()
        call_command(
            "render",
            *ONE_SORA_CLIP,
            *extra,
            stdout=out,
        )
        return out.getvalue()

    cli()
    cli("--no-cache")
    assert fake_api.stats.creates == 2
    text = cli()
    assert fake_api.stats.creates == 2
    assert "cost: $0.00 spent (estimate $0.40" in text
    assert "cache: 1 identical clip(s) reused, $0.40 saved" in text
    assert set(SpendEntry.objects.values_list("kind", flat=True)) == {
        SpendKind.RENDER,
        SpendKind.CACHE_SAVING,
    }
    assert SegmentStatus.COMPLETED in set(
        services.Segment.objects.values_list("status", flat=True)  # every clip finished
    )
