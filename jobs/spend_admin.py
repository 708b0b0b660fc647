"""The spend ledger and webhook deliveries in the operators' console (read-only).

The ledger's list sums whatever it shows: filter by kind, provider, owner or date, and the totals of
that selection (spent = render + wasted, saved by the cache, billed seconds) appear above the list.

Registered on import; jobs/admin.py imports this module (`from . import spend_admin`). Registration
is guarded, so importing it twice is harmless.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest

from . import ledger
from .models import SpendEntry, WebhookEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # the ledger is written by jobs.services only

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class SpendEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "kind",
        "amount_usd",
        "billed_seconds",
        "owner",
        "job",
        "segment_index",
        "provider",
        "model",
        "size",
        "provider_task_id",
        "note",
    )
    list_filter = (
        "kind",
        "provider",
        "model",
        ("owner", admin.RelatedOnlyFieldListFilter),
        ("created_at", admin.DateFieldListFilter),
    )
    list_select_related = ("owner", "job")
    search_fields = ("=provider_task_id", "=job__id", "owner__username")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")

    def changelist_view(self, request: HttpRequest, extra_context=None):
        response = super().changelist_view(request, extra_context=extra_context)
        # A TemplateResponse renders after this returns, so a message added now shows on this page.
        changelist = (getattr(response, "context_data", None) or {}).get("cl")
        if changelist is not None:
            totals = ledger.totals(changelist.queryset)
            self.message_user(
                request,
                f"Total of this selection: ${totals.spent_usd:.2f} spent (${totals.render_usd:.2f} rendered, "
                f"${totals.wasted_usd:.2f} lost renders) for {totals.billed_seconds:g} billed seconds; "
                f"${totals.saved_usd:.2f} saved by the render cache.",
                messages.INFO,
            )
        return response


class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "type", "outcome", "video_id", "segment", "event_id")
    list_filter = ("type", "outcome", "provider")
    search_fields = ("=event_id", "=video_id")
    ordering = ("-received_at",)


for model, model_admin in ((SpendEntry, SpendEntryAdmin), (WebhookEvent, WebhookEventAdmin)):
    if not admin.site.is_registered(model):
        admin.site.register(model, model_admin)
