"""REST views on jobs: list, create (plan, store and start in one service call), read, delete, and the
render actions and estimates. Each view validates the request's shape with a serializer, calls one
service (writes) or selector/planner (reads) and serializes the result. Service errors become
400/404/409 in jobs.api.exceptions, never here. Segments and images: segment_views; catalogue:
catalog_views.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from idempotency.decorators import idempotent
from jobs import planning, selectors, services
from jobs.models import VideoJob
from jobs.plan_edit import PlanCard, video_job_plan_update
from jobs.services import ReferenceUpload

from .base import JobAPIView
from .extensions import attach_create_extensions, check_create_extensions
from .filters import VideoJobFilterSerializer, VideoJobPagination
from .input_serializers import (
    EXTENSION_FIELDS,
    MAX_IMAGES_PER_CREATE,
    RerenderSerializer,
    VideoJobCreateSerializer,
    VideoJobEstimateSerializer,
    VideoJobMultipartCreateSerializer,
    VideoJobPlanSerializer,
    check_create_length,
    job_spec,
    multipart_job,
)
from .output_serializers import (
    SAVED_ANNOTATION,
    EstimateSerializer,
    VideoJobDetailSerializer,
    VideoJobListSerializer,
    saved_annotation,
)
from .parsers import BoundedJSONParser
from .schema import action_schema, errors, job_path_parameter
from .throttles import VideoJobCreateThrottle

# --- Jobs ---------------------------------------------------------------------------------------------


class VideoJobListCreateView(JobAPIView):
    pagination_class = VideoJobPagination
    parser_classes = [BoundedJSONParser, MultiPartParser]

    def get_throttles(self) -> list[BaseThrottle]:
        # Only creating is throttled: it stores work and usually starts paid renders.
        if self.request.method == "POST":
            return [VideoJobCreateThrottle()]
        return super().get_throttles()

    @extend_schema(
        operation_id="video_jobs_list",
        tags=["video-jobs"],
        summary="Your jobs, newest first",
        parameters=[VideoJobFilterSerializer],
        responses={200: VideoJobListSerializer(many=True), **errors(400, 404)},
    )
    def get(self, request: Request) -> Response:
        filters = VideoJobFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        # The owner is shown on every row; joined here so a staff listing does not query per row. The
        # cache savings come from the ledger in a subquery, for the same reason.
        queryset = (
            selectors.video_job_list(user=request.user, status=filters.validated_data.get("status"))
            .select_related("owner")
            .annotate(**saved_annotation())
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        data = VideoJobListSerializer(page, many=True, context=self.context()).data
        return paginator.get_paginated_response(data)

    @extend_schema(
        operation_id="video_jobs_create",
        tags=["video-jobs"],
        summary="Create a job (and start rendering it unless render is false)",
        description="JSON: the job. Or multipart/form-data: the job's JSON in the part `job` and up to "
        f"{MAX_IMAGES_PER_CREATE} images in parts named `reference_image` (PNG, JPEG or WebP, for the whole "
        "job), so a job that needs an image (continuity `reference`) is stored and started in one request.",
        request={
            "application/json": VideoJobCreateSerializer,
            "multipart/form-data": VideoJobMultipartCreateSerializer,
        },
        responses={201: VideoJobDetailSerializer, **errors(400, 409, 413, 422, 429)},
    )
    @idempotent(before=check_create_length)
    def post(self, request: Request) -> Response:
        body, uploads = request.data, []
        if request.content_type.startswith("multipart/"):
            check_create_length(request)
            body, uploads = multipart_job(request)
        serializer = VideoJobCreateSerializer(data=body)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        extensions = {name: data[name] for name in EXTENSION_FIELDS if name in data}
        check_create_extensions(extensions)
        extra: dict[str, Any] = {}

        def attach(job: VideoJob) -> None:
            extra.update(attach_create_extensions(owner=request.user, job=job, data=extensions))

        # In the job's own transaction: if another app's part (a callback URL) cannot be stored, no job is
        # either, so a client retrying with its Idempotency-Key after the error gets one job, not two.
        job = services.video_job_submit(
            owner=request.user,
            spec=job_spec(data),
            references=[
                ReferenceUpload(file=upload, field=f"reference_image.{position}")
                for position, upload in enumerate(uploads)
            ],
            render=data["render"],
            also=attach if extensions else None,
            attach_written=True,
        )
        if data["render"]:
            response = self.job_response(job.id, status.HTTP_201_CREATED)
        else:
            # A draft comes back from the service with the rows it wrote attached: answered without
            # reading them back. Nothing rendered yet, so nothing saved by the cache either.
            setattr(job, SAVED_ANNOTATION, Decimal(0))
            response = self.detail_response(job, status.HTTP_201_CREATED)
        response.data.update(extra)
        response["Location"] = request.build_absolute_uri(
            reverse("api:video-job-detail", kwargs={"job_id": job.id})
        )
        return response


@extend_schema(parameters=[job_path_parameter()])
class VideoJobDetailView(JobAPIView):
    deletes_job = True

    @extend_schema(
        operation_id="video_jobs_retrieve",
        tags=["video-jobs"],
        summary="A job with its segments and reference images",
        responses={200: VideoJobDetailSerializer, **errors(404)},
    )
    def get(self, request: Request, job_id: uuid.UUID) -> Response:
        return self.job_response(job_id)

    @extend_schema(
        operation_id="video_jobs_destroy",
        tags=["video-jobs"],
        summary="Delete a job and its files (a running render is cancelled first)",
        responses={204: None, **errors(403, 404)},
    )
    def delete(self, request: Request, job_id: uuid.UUID) -> Response:
        services.video_job_delete(job=self.get_job(job_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(parameters=[job_path_parameter()])
class VideoJobPlanView(JobAPIView):
    # The cards are what the owner wrote: operators may not rewrite them.
    owner_content = True
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        operation_id="video_jobs_plan_update",
        tags=["video-jobs"],
        summary="Replace a draft's segments: reorder, split, merge, add or remove its cards in one request",
        description="The cards are planned exactly as creating a manual-mode job with them would plan them "
        "(the same limits, clip lengths and budget caps), and the job becomes manual. The duration follows "
        "the cards. `source` names the segment a card comes from, so that segment's reference images "
        "follow the card; images of segments no card names are deleted. Only a draft (409 otherwise); "
        "nothing changes on any error.",
        request=VideoJobPlanSerializer,
        responses={200: VideoJobDetailSerializer, **errors(400, 404, 409)},
    )
    def put(self, request: Request, job_id: uuid.UUID) -> Response:
        job = self.get_job(job_id)
        serializer = VideoJobPlanSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        cards = [
            PlanCard(prompt=c["prompt"], source=c["source"]) for c in serializer.validated_data["segments"]
        ]
        video_job_plan_update(job=job, cards=cards)
        return self.job_response(job_id)


# --- Renders ------------------------------------------------------------------------------------------


@extend_schema(parameters=[job_path_parameter()])
class VideoJobRenderView(JobAPIView):
    @action_schema("video_jobs_render", "Start rendering a draft or cancelled job", 400, 409, 422)
    @idempotent
    def post(self, request: Request, job_id: uuid.UUID) -> Response:
        services.video_job_render(job=self.get_job(job_id))
        return self.job_response(job_id, status.HTTP_202_ACCEPTED)


@extend_schema(parameters=[job_path_parameter()])
class VideoJobRetryView(JobAPIView):
    @action_schema("video_jobs_retry", "Render the failed segments of a failed job again", 400, 409, 422)
    @idempotent
    def post(self, request: Request, job_id: uuid.UUID) -> Response:
        services.video_job_retry(job=self.get_job(job_id))
        return self.job_response(job_id, status.HTTP_202_ACCEPTED)


@extend_schema(parameters=[job_path_parameter()])
class VideoJobCancelView(JobAPIView):
    @action_schema("video_jobs_cancel", "Stop a job", 409)
    def post(self, request: Request, job_id: uuid.UUID) -> Response:
        services.video_job_cancel(job=self.get_job(job_id))
        return self.job_response(job_id, status.HTTP_202_ACCEPTED)


@extend_schema(parameters=[job_path_parameter()])
class VideoJobRerenderView(JobAPIView):
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        operation_id="video_jobs_rerender",
        tags=["renders"],
        summary="Render chosen segments of a finished job again and re-assemble",
        request=RerenderSerializer,
        responses={202: VideoJobDetailSerializer, **errors(400, 404, 409, 422)},
    )
    @idempotent
    def post(self, request: Request, job_id: uuid.UUID) -> Response:
        job = self.get_job(job_id)
        serializer = RerenderSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.segment_rerender(job=job, indexes=serializer.validated_data["segments"])
        return self.job_response(job_id, status.HTTP_202_ACCEPTED)


@extend_schema(parameters=[job_path_parameter()])
class VideoJobEstimateView(JobAPIView):
    @extend_schema(
        operation_id="video_jobs_estimate",
        tags=["estimates"],
        summary="Cost and billed seconds of rendering the job's planned segments (nothing is rendered)",
        responses={200: EstimateSerializer, **errors(400, 404)},
    )
    def get(self, request: Request, job_id: uuid.UUID) -> Response:
        plan = planning.plan_for_job(self.get_job(job_id))
        return Response(EstimateSerializer(plan).data)


class EstimateView(APIView):
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        operation_id="estimate",
        tags=["estimates"],
        summary="Plan and price a would-be job from the create fields; nothing is stored",
        request=VideoJobEstimateSerializer,
        responses={200: EstimateSerializer, **errors(400)},
    )
    def post(self, request: Request) -> Response:
        serializer = VideoJobEstimateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        plan = planning.plan_job(job_spec(data), check_budget=False).plan
        return Response(EstimateSerializer(plan).data)
