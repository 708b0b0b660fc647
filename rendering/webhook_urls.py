"""Provider webhook routes (mounted at /webhooks/ by sora_controller.urls)."""

from django.urls import path

from .webhook_views import fal_webhook, sora_webhook

urlpatterns = [
    path("sora", sora_webhook, name="sora-webhook"),
    # rendering.providers.fal.WEBHOOK_PATH: what FalProvider sends as `fal_webhook`.
    path("fal", fal_webhook, name="fal-webhook"),
]
