"""Outgoing webhooks in the operators' console: endpoints (secrets never shown), and every delivery
with its attempts, read-only, with a "redeliver" action that sends the chosen deliveries again."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import services
from .addresses import MAX_URL_LENGTH, url_problems
from .models import CallbackEvent, Delivery, DeliveryAttempt, WebhookEndpoint


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=MAX_URL_LENGTH, assume_scheme="https")

    class Meta:
        model = WebhookEndpoint
        fields = ("url", "description", "event_types", "is_active")

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        problems = url_problems(url)  # the API's rule, so an operator cannot point events inward either
        if problems:
            raise forms.ValidationError(problems)
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ("url", "owner", "job", "is_active", "event_types", "created_at")
    list_filter = ("is_active",)
    search_fields = ("url", "owner__username", "description")
    list_select_related = ("owner", "job")
    # The secret is for the client; operators change where events go, not how they are signed.
    fields = ("owner", "job", "url", "description", "event_types", "is_active", "created_at")
    readonly_fields = ("owner", "job", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # endpoints are made by their owners through the API, which shows the secret once

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool) -> None:
        changed = {name: form.cleaned_data[name] for name in form.changed_data}
        services.endpoint_update(endpoint=obj, **changed)


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ("number", "started_at", "status_code", "latency_ms", "error", "response_excerpt")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "created_at",
    )
    list_filter = ("status", "event__type")
    search_fields = ("event__id", "endpoint__url", "endpoint__owner__username")
    list_select_related = ("event", "endpoint")
    readonly_fields = (
        "event",
        "endpoint",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "created_at",
        "finished_at",
    )
    inlines = [DeliveryAttemptInline]
    actions = ["redeliver"]

    @admin.display(description="Event")
    def event_type(self, delivery: Delivery) -> str:
        return delivery.event.type

    @admin.action(description="Redeliver the selected deliveries now")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        count = 0
        for delivery in queryset:
            services.delivery_redeliver(delivery=delivery)
            count += 1
        self.message_user(request, f"Queued {count} delivery(ies) again.", messages.SUCCESS)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # Read-only models hide actions from users without change permission; redelivering needs the
        # explicit permission to change deliveries.
        if not request.user.has_perm("callbacks.change_delivery"):
            actions.pop("redeliver", None)
        return actions


@admin.register(CallbackEvent)
class CallbackEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "type", "job", "created_at")
    list_filter = ("type",)
    search_fields = ("id", "job__id")
    readonly_fields = ("id", "type", "job", "payload", "created_at")
