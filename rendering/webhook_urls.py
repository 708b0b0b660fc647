"""Provider webhook routes (mounted at /webhooks/ by sora_controller.urls)."""

from django.urls import path

from .webhook_views import sora_webhook

urlpatterns = [path("sora", sora_webhook, name="sora-webhook")]
