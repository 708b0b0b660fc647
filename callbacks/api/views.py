"""The webhook API: a user's endpoints (create shows the signing secret once) and the deliveries made
to them. Everything is scoped to the requesting user: another user's endpoint or delivery is a 404."""

from __future__ import annotations

import uuid

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api.filters import VideoJobPagination
from jobs.api.parsers import BoundedJSONParser
from jobs.api.schema import errors

from .. import selectors, services
from ..models import Delivery, WebhookEndpoint
from .serializers import (
    DeliveryDetailSerializer,
    DeliveryFilterSerializer,
    DeliverySerializer,
    EndpointCreatedSerializer,
    EndpointFilterSerializer,
    EndpointInputSerializer,
    EndpointSerializer,
)

TAGS = ["webhooks"]


def _endpoint_parameter() -> OpenApiParameter:
    return OpenApiParameter(
        "endpoint_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The endpoint's id."
    )


def _delivery_parameter() -> OpenApiParameter:
    return OpenApiParameter(
        "delivery_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The delivery's id."
    )


class _Scoped(APIView):
    parser_classes = [BoundedJSONParser]

    def get_endpoint(self, endpoint_id: uuid.UUID) -> WebhookEndpoint:
        endpoint = selectors.endpoint_get(user=self.request.user, endpoint_id=endpoint_id)
        if endpoint is None:
            raise NotFound("Not found.")
        return endpoint

    def get_delivery(self, delivery_id: int) -> Delivery:
        delivery = selectors.delivery_get(user=self.request.user, delivery_id=delivery_id)
        if delivery is None:
            raise NotFound("Not found.")
        return delivery


class EndpointListCreateView(_Scoped):
    pagination_class = VideoJobPagination  # also tells the schema the list is paginated

    @extend_schema(
        operation_id="webhook_endpoints_list",
        tags=TAGS,
        summary="Your webhook endpoints (account-wide, and each job's own callback)",
        parameters=[EndpointFilterSerializer],
        responses={200: EndpointSerializer(many=True), **errors(400, 404)},
    )
    def get(self, request: Request) -> Response:
        filters = EndpointFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        endpoints = selectors.endpoint_list(user=request.user, job_id=filters.validated_data.get("job"))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(endpoints, request, view=self)
        return paginator.get_paginated_response(EndpointSerializer(page, many=True).data)

    @extend_schema(
        operation_id="webhook_endpoints_create",
        tags=TAGS,
        summary="Receive job.completed, job.failed and segment.completed events for all your jobs",
        description="The response carries the endpoint's signing secret (`whsec_...`) once; every event "
        "is signed with it per the Standard Webhooks spec (headers webhook-id, webhook-timestamp, "
        "webhook-signature).",
        request=EndpointInputSerializer,
        responses={201: EndpointCreatedSerializer, **errors(400)},
    )
    def post(self, request: Request) -> Response:
        serializer = EndpointInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = services.endpoint_create(owner=request.user, **serializer.validated_data)
        return Response(EndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[_endpoint_parameter()])
class EndpointDetailView(_Scoped):
    @extend_schema(
        operation_id="webhook_endpoints_retrieve",
        tags=TAGS,
        summary="One endpoint (without its secret)",
        responses={200: EndpointSerializer, **errors(404)},
    )
    def get(self, request: Request, endpoint_id: uuid.UUID) -> Response:
        return Response(EndpointSerializer(self.get_endpoint(endpoint_id)).data)

    @extend_schema(
        operation_id="webhook_endpoints_partial_update",
        tags=TAGS,
        summary="Change an endpoint's URL, description, event types or pause it",
        request=EndpointInputSerializer,
        responses={200: EndpointSerializer, **errors(400, 404)},
    )
    def patch(self, request: Request, endpoint_id: uuid.UUID) -> Response:
        endpoint = self.get_endpoint(endpoint_id)
        serializer = EndpointInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        endpoint = services.endpoint_update(endpoint=endpoint, **serializer.validated_data)
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(
        operation_id="webhook_endpoints_destroy",
        tags=TAGS,
        summary="Stop sending events here (pending deliveries are dropped)",
        responses={204: None, **errors(404)},
    )
    def delete(self, request: Request, endpoint_id: uuid.UUID) -> Response:
        services.endpoint_delete(endpoint=self.get_endpoint(endpoint_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeliveryListView(_Scoped):
    pagination_class = VideoJobPagination

    @extend_schema(
        operation_id="webhook_deliveries_list",
        tags=TAGS,
        summary="Events sent (or being sent) to your endpoints, newest first",
        parameters=[DeliveryFilterSerializer],
        responses={200: DeliverySerializer(many=True), **errors(400, 404)},
    )
    def get(self, request: Request) -> Response:
        filters = DeliveryFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        deliveries = selectors.delivery_list(
            user=request.user,
            endpoint_id=filters.validated_data.get("endpoint"),
            status=filters.validated_data.get("status"),
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(deliveries, request, view=self)
        return paginator.get_paginated_response(DeliverySerializer(page, many=True).data)


@extend_schema(parameters=[_delivery_parameter()])
class DeliveryDetailView(_Scoped):
    @extend_schema(
        operation_id="webhook_deliveries_retrieve",
        tags=TAGS,
        summary="One delivery with its payload and every attempt",
        responses={200: DeliveryDetailSerializer, **errors(404)},
    )
    def get(self, request: Request, delivery_id: int) -> Response:
        return Response(DeliveryDetailSerializer(self.get_delivery(delivery_id)).data)


@extend_schema(parameters=[_delivery_parameter()])
class DeliveryRedeliverView(_Scoped):
    @extend_schema(
        operation_id="webhook_deliveries_redeliver",
        tags=TAGS,
        summary="Send a delivery again now, with a fresh round of attempts",
        request=None,
        responses={202: DeliverySerializer, **errors(404)},
    )
    def post(self, request: Request, delivery_id: int) -> Response:
        delivery = services.delivery_redeliver(delivery=self.get_delivery(delivery_id))
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
