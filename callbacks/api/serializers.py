"""Shapes of the webhook API: endpoints in and out, deliveries and their attempts out."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from jobs.api.input_serializers import StrictInputSerializer

from ..addresses import MAX_URL_LENGTH, url_problems
from ..models import Delivery, DeliveryAttempt, EventType, WebhookEndpoint


def validate_callback_url(value: str) -> str:
    """The one URL rule (callbacks.addresses) as a serializer validator, for any field that takes one."""
    problems = url_problems(value)
    if problems:
        raise serializers.ValidationError(problems)
    return value


class CallbackUrlField(serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", MAX_URL_LENGTH)
        super().__init__(validators=[validate_callback_url], **kwargs)


class EndpointInputSerializer(StrictInputSerializer):
    url = CallbackUrlField(
        help_text="Where events are POSTed: https (see ALLOW_HTTP_CALLBACKS), a public host."
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EventType.choices),
        required=False,
        max_length=len(EventType.choices),
        help_text="The event types to send here; empty or left out: all of them.",
    )
    is_active = serializers.BooleanField(required=False, help_text="Paused endpoints receive nothing.")


class EndpointSerializer(serializers.ModelSerializer):
    job = serializers.UUIDField(source="job_id", read_only=True, allow_null=True)

    class Meta:
        model = WebhookEndpoint
        fields = ("id", "url", "description", "event_types", "is_active", "job", "created_at")
        read_only_fields = fields


class EndpointCreatedSerializer(EndpointSerializer):
    secret = serializers.CharField(
        read_only=True,
        help_text="The Standard Webhooks signing secret (whsec_...). Shown only in this response: keep it.",
    )

    class Meta(EndpointSerializer.Meta):
        fields = (*EndpointSerializer.Meta.fields, "secret")
        read_only_fields = fields


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ("number", "started_at", "status_code", "latency_ms", "error")
        read_only_fields = fields


class DeliverySerializer(serializers.ModelSerializer):
    event_id = serializers.CharField(read_only=True, help_text="The webhook-id header of every attempt.")
    event_type = serializers.CharField(source="event.type", read_only=True)
    endpoint = serializers.UUIDField(source="endpoint_id", read_only=True)
    job = serializers.UUIDField(source="event.job_id", read_only=True)

    class Meta:
        model = Delivery
        fields = (
            "id",
            "event_id",
            "event_type",
            "endpoint",
            "job",
            "status",
            "attempts",
            "last_status_code",
            "last_error",
            "next_attempt_at",
            "created_at",
            "finished_at",
        )
        read_only_fields = fields


class DeliveryDetailSerializer(DeliverySerializer):
    attempt_log = AttemptSerializer(many=True, read_only=True)
    payload = serializers.JSONField(source="event.payload", read_only=True)

    class Meta(DeliverySerializer.Meta):
        fields = (*DeliverySerializer.Meta.fields, "payload", "attempt_log")
        read_only_fields = fields


class DeliveryFilterSerializer(serializers.Serializer):
    endpoint = serializers.UUIDField(required=False, help_text="Only deliveries to this endpoint.")
    status = serializers.ChoiceField(
        choices=["pending", "succeeded", "failed"], required=False, help_text="Only deliveries in this state."
    )


class EndpointFilterSerializer(serializers.Serializer):
    job = serializers.UUIDField(required=False, help_text="Only this job's own callback.")
