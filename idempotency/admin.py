"""Idempotency keys in the admin, read-only: what a client's retries will be answered with."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import IdempotencyKey


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(admin.ModelAdmin):
    list_display = ("key", "owner", "method", "path", "state", "response_status", "created_at", "expires_at")
    list_filter = ("state",)
    search_fields = ("key", "owner__username", "path")
    list_select_related = ("owner",)
    readonly_fields = [f.name for f in IdempotencyKey._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
