"""Failover: a segment whose provider stays down (5xx past TRANSIENT_RETRIES) renders on the job's next
fallback model, re-planned, re-priced and charged there, and says which model rendered it; a content
refusal never fails over."""

from __future__ import annotations

from decimal import Decimal

import pytest

from jobs import ledger, services
from jobs.errors import InvalidInput
from jobs.models import JobStatus, SegmentStatus, SpendEntry
from rendering import poll_schedule
from rendering.transport import inprocess_runner

pytestmark = pytest.mark.django_db(transaction=True)

VEO_FAST = "veo-3.1-fast-generate-001"


@pytest.fixture(autouse=True)
def _quick_retries(settings, monkeypatch):
    settings.TRANSIENT_RETRIES = 2
    settings.X264_PRESET = "ultrafast"
    monkeypatch.setattr(poll_schedule, "POLL_MIN_SECONDS", 0.1)
    # Backoff between the two failed tries: a fraction of a second, not the production 1-60 s.
    monkeypatch.setattr("rendering.tasks.backoff_seconds", lambda failures, retry_after: 0.1)


def job(user, prompt: str, **fields):
    return services.video_job_create(
        owner=user,
        prompt=prompt,
        duration_seconds=16,
        segment_seconds=8,
        provider="sora",
        size="1280x720",
        fallback_models=[f"veo:{VEO_FAST}"],
        use_cache=False,
        **fields,
    )


def finish(job):
    assert inprocess_runner().wait_idle(timeout=120)
    job.refresh_from_db()
    return job


def test_a_provider_that_stays_down_hands_its_segments_to_the_fallback(user, fake_api, vertex):
    fake_api.config.server_errors_next = 1000  # the gateway answers 500 to everything
    made = job(user, "A lighthouse at dusk. Waves break on the rocks.")
    assert made.fallback_models == [f"veo:{VEO_FAST}"]
    done = finish(services.video_job_render(job=made))
    assert done.status == JobStatus.COMPLETED, done.error
    segments = list(done.segments.order_by("index"))
    assert [s.rendered_by for s in segments] == [f"veo:{VEO_FAST}"] * 2
    assert vertex.stats.creates == 2 and fake_api.stats.creates == 0
    # Charged at the fallback's price (Veo Fast $0.10/s x 8 s), on the fallback's ledger lines.
    lines = SpendEntry.objects.filter(job=done)
    assert {(e.provider, e.model, e.amount_usd) for e in lines} == {("veo", VEO_FAST, Decimal("0.8"))}
    assert done.cost_spent_usd == ledger.job_spent(done.id) == Decimal("1.6")


def test_a_content_refusal_never_fails_over(user, fake_api, vertex):
    done = finish(services.video_job_render(job=job(user, "A FORBIDDEN door. It opens.")))
    assert done.status == JobStatus.FAILED
    refused = done.segments.get(index=0)
    assert refused.status == SegmentStatus.FAILED and "moderation_blocked" in refused.error
    assert refused.rendered_by == "" and vertex.stats.creates == 0


def test_fallbacks_are_checked_when_the_job_is_planned(user, settings):
    settings.FAL_KEY = ""
    with pytest.raises(InvalidInput) as refused:
        services.video_job_create(
            owner=user,
            prompt="A b. C d.",
            duration_seconds=16,
            segment_seconds=8,
            provider="sora",
            size="1280x720",
            fallback_models=["fal", "veo:veo-9", "sora:sora-2"],
        )
    messages = refused.value.errors["fallback_models"]
    assert "fallback 1 (fal): set FAL_KEY to use fal" in messages
    assert any("unknown model 'veo-9'" in m for m in messages)
    assert any("repeats a model" in m for m in messages)
