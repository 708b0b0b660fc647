"""The ledger in the operators' console: read-only, and the list sums what it shows."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib import admin

import jobs.spend_admin  # noqa: F401  (registers the ledger's admin)
from jobs.models import SpendEntry, SpendKind, WebhookEvent

pytestmark = pytest.mark.django_db


def test_the_ledger_list_sums_the_selection(admin_client, user, other_user):
    for owner, kind, amount, seconds in (
        (user, SpendKind.RENDER, "1.20", 12),
        (user, SpendKind.WASTED, "0.40", 4),
        (user, SpendKind.CACHE_SAVING, "0.80", 8),
        (other_user, SpendKind.RENDER, "3.00", 10),
    ):
        SpendEntry.objects.create(
            owner=owner, kind=kind, amount_usd=Decimal(amount), billed_seconds=seconds, provider="sora"
        )
    page = admin_client.get("/admin/jobs/spendentry/", {"owner__id__exact": user.id})
    assert page.status_code == 200
    assert (
        "Total of this selection: $1.60 spent ($1.20 rendered, $0.40 lost renders) for 16 billed seconds; "
        "$0.80 saved by the render cache." in page.content.decode()
    )
    everything = admin_client.get("/admin/jobs/spendentry/").content.decode()
    assert "Total of this selection: $4.60 spent" in everything
    assert admin_client.get("/admin/jobs/spendentry/add/").status_code == 403


def test_webhook_deliveries_are_listed(admin_client):
    WebhookEvent.objects.create(
        event_id="evt_1", type="video.completed", video_id="video_1", outcome="advanced"
    )
    assert admin.site.is_registered(WebhookEvent)
    assert "evt_1" in admin_client.get("/admin/jobs/webhookevent/").content.decode()
