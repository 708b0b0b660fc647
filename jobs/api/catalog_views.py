"""Views of what one may choose and spend: budget, strategies, providers (from the registries)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import budget
from jobs.catalogue import provider_rows
from segmentation.registry import strategy_choices

from .output_serializers import BudgetSerializer, ProviderSerializer, StrategySerializer
from .schema import errors

# --- Budget -------------------------------------------------------------------------------------------


class BudgetView(APIView):
    @extend_schema(
        operation_id="budget_retrieve",
        tags=["budget"],
        summary="Your budget caps, and what you spent and hold in renders in progress today and this month",
        description="Amounts are USD strings with two decimals; a null cap (and remaining) means no cap. "
        "A render is refused (400, field `budget`) when its cost plus spent plus reserved would exceed a "
        "cap; a job whose estimate alone exceeds a cap is refused when it is created.",
        responses={200: BudgetSerializer, **errors()},
    )
    def get(self, request: Request) -> Response:
        return Response(BudgetSerializer(budget.status(request.user)).data)


# --- Catalog ------------------------------------------------------------------------------------------


class StrategyListView(APIView):
    @extend_schema(
        operation_id="strategies_list",
        tags=["catalog"],
        summary="Segmentation strategies (from the registry)",
        responses={200: StrategySerializer(many=True), **errors()},
    )
    def get(self, request: Request) -> Response:
        return Response(
            StrategySerializer(
                [{"name": name, "description": text} for name, text in strategy_choices()], many=True
            ).data
        )


class ProviderListView(APIView):
    @extend_schema(
        operation_id="providers_list",
        tags=["catalog"],
        summary="Video providers with their models, sizes, clip lengths and prices",
        responses={200: ProviderSerializer(many=True), **errors()},
    )
    def get(self, request: Request) -> Response:
        return Response(ProviderSerializer(provider_rows(), many=True).data)
