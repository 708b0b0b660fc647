"""REST views. Each one validates input with a serializer, calls one service (writes) or selector
(reads, scoped to request.user: another user's job is a 404, staff see all) and serializes the result.
Service errors become 400/404/409 in jobs.api.exceptions, never here.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from jobs import budget, selectors, services
from jobs.models import ReferenceImage, Segment, VideoJob

from .filters import VideoJobFilterSerializer, VideoJobPagination
from .serializers import (
    BudgetSerializer,
    ErrorSerializer,
    EstimateSerializer,
    ProviderSerializer,
    ReferenceImageSerializer,
    ReferenceImageUploadSerializer,
    RerenderSerializer,
    SegmentSerializer,
    SegmentUpdateSerializer,
    StrategySerializer,
    VideoJobCreateSerializer,
    VideoJobDetailSerializer,
    VideoJobEstimateSerializer,
    VideoJobListSerializer,
    provider_rows,
    saved_annotation,
    strategy_rows,
)
from .throttles import VideoJobCreateThrottle

# Room for the multipart framing and the segment_index field around the image itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024

_ERROR_TEXT = {
    400: "Invalid input; `errors` maps each field path to its messages.",
    401: "Not authenticated.",
    403: "Not authenticated (session without CSRF token) or not allowed.",
    404: "No such job (or not yours).",
    409: "The current state does not allow this; `detail` says why.",
    413: "The request body is too large.",
    429: "Too many jobs created; see the Retry-After header.",
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """Schema entries for the error responses of an operation (401/403 apply to every one)."""
    return {
        code: OpenApiResponse(ErrorSerializer, description=_ERROR_TEXT[code])
        for code in sorted({401, 403, *codes})
    }


def _job_path_parameter() -> OpenApiParameter:
    return OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The job's id.")


def _index_path_parameter() -> OpenApiParameter:
    return OpenApiParameter(
        "index", OpenApiTypes.INT, OpenApiParameter.PATH, description="The segment's index (0-based)."
    )


# Loads the job of the URL through the scoped selector, with its segments and images prefetched.
# (A comment, not a docstring: drf-spectacular would copy a docstring into every operation.)
class _JobAPIView(APIView):
    def context(self) -> dict[str, Any]:
        return {"request": self.request, "view": self}

    def get_job(self, job_id: uuid.UUID) -> VideoJob:
        job = selectors.video_job_detail(user=self.request.user, job_id=job_id)
        if job is None:
            raise NotFound("Not found.")
        self.check_may_change(job)
        return job

    def check_may_change(self, job: VideoJob) -> None:
        """Staff may read every job; changing someone else's needs the operator permission (deleting it,
        the delete permission), so a view-only operator cannot act through the API either."""
        user = self.request.user
        if self.request.method in SAFE_METHODS or job.owner_id == user.id:
            return
        needed = (
            "jobs.delete_videojob"
            if self.request.method == "DELETE" and self.deletes_job
            else ("jobs.operate_videojob")
        )
        if not user.has_perm(needed):
            raise PermissionDenied(
                f"this job belongs to someone else; changing it needs the {needed} permission"
            )

    deletes_job = False

    @staticmethod
    def get_segment(job: VideoJob, index: int) -> Segment:
        # Looked up among the prefetched segments: an absurd index is a 404 without reaching the database.
        for segment in job.segments.all():
            if segment.index == index:
                return segment
        raise NotFound(f"Segment {index} does not exist; this job has {len(job.segments.all())} segments.")

    def job_response(self, job_id: uuid.UUID, status_code: int = status.HTTP_200_OK) -> Response:
        job = self.get_job(job_id)
        return Response(VideoJobDetailSerializer(job, context=self.context()).data, status=status_code)


# --- Jobs ---------------------------------------------------------------------------------------------


class VideoJobListCreateView(_JobAPIView):
    pagination_class = VideoJobPagination
    parser_classes = [JSONParser]

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
        request=VideoJobCreateSerializer,
        responses={201: VideoJobDetailSerializer, **errors(400, 429)},
    )
    def post(self, request: Request) -> Response:
        serializer = VideoJobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        # One transaction: a job whose render is refused is not left behind, and the render is handed
        # to the workers only once the job is committed.
        with transaction.atomic():
            job = services.video_job_create(
                owner=request.user,
                title=data["title"],
                prompt=data["prompt"],
                duration_seconds=data["duration_seconds"],
                segment_seconds=data["segment_seconds"],
                strategy=data["strategy"],
                manual_prompts=data["manual_prompts"],
                continuity=data["continuity"],
                reference_fit=data["reference_fit"],
                provider=data["provider"],
                model=data.get("model", ""),
                size=data.get("size"),
                fps=data.get("fps"),
                use_cache=data["use_cache"],
            )
            if data["render"]:
                services.video_job_render(job=job)
        response = self.job_response(job.id, status.HTTP_201_CREATED)
        response["Location"] = request.build_absolute_uri(
            reverse("api:video-job-detail", kwargs={"job_id": job.id})
        )
        return response


@extend_schema(parameters=[_job_path_parameter()])
class VideoJobDetailView(_JobAPIView):
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


# --- Renders ------------------------------------------------------------------------------------------


def _action_schema(operation_id: str, summary: str, *codes: int) -> Any:
    return extend_schema(
        operation_id=operation_id,
        tags=["renders"],
        summary=summary,
        request=None,
        responses={202: VideoJobDetailSerializer, **errors(404, *codes)},
    )


@extend_schema(parameters=[_job_path_parameter()])
class VideoJobRenderView(_JobAPIView):
    @_action_schema("video_jobs_render", "Start rendering a draft or cancelled job", 400, 409)
    def post(self, request: Request, job_id: uuid.UUID) -> Response:
        services.video_job_render(job=self.get_job(job_id))
        return self.job_response(job_id, status.HTTP_202_ACCEPTED)


@extend_schema(parameters=[_job_path_parameter()])
class VideoJobRetryView(_JobAPIView):
    @_action_schema("video_jobs_retry", "Render the failed segments of a failed job again", 400, 409)
    def post(self, request: Request, job_id: uuid.UUID) -> Response:
        services.video_job_retry(job=self.get_job(job_id))
        return self.job_response(job_id, status.HTTP_202_ACCEPTED)


@extend_schema(parameters=[_job_path_parameter()])
class VideoJobCancelView(_JobAPIView):
    @_action_schema("video_jobs_cancel", "Stop a job", 409)
    def post(self, request: Request, job_id: uuid.UUID) -> Response:
        services.video_job_cancel(job=self.get_job(job_id))
        return self.job_response(job_id, status.HTTP_202_ACCEPTED)


@extend_schema(parameters=[_job_path_parameter()])
class VideoJobRerenderView(_JobAPIView):
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="video_jobs_rerender",
        tags=["renders"],
        summary="Render chosen segments of a finished job again and re-assemble",
        request=RerenderSerializer,
        responses={202: VideoJobDetailSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, job_id: uuid.UUID) -> Response:
        job = self.get_job(job_id)
        serializer = RerenderSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.segment_rerender(job=job, indexes=serializer.validated_data["segments"])
        return self.job_response(job_id, status.HTTP_202_ACCEPTED)


@extend_schema(parameters=[_job_path_parameter()])
class VideoJobEstimateView(_JobAPIView):
    @extend_schema(
        operation_id="video_jobs_estimate",
        tags=["estimates"],
        summary="Cost and billed seconds of rendering the job's planned segments (nothing is rendered)",
        responses={200: EstimateSerializer, **errors(400, 404)},
    )
    def get(self, request: Request, job_id: uuid.UUID) -> Response:
        plan = services.video_job_estimate(job=self.get_job(job_id))
        return Response(EstimateSerializer(plan).data)


class EstimateView(APIView):
    parser_classes = [JSONParser]

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
        plan = services.video_job_plan(
            prompt=data["prompt"],
            duration_seconds=data["duration_seconds"],
            segment_seconds=data["segment_seconds"],
            strategy=data["strategy"],
            manual_prompts=data["manual_prompts"],
            provider=data["provider"],
            model=data.get("model", ""),
            size=data.get("size"),
        )
        return Response(EstimateSerializer(plan).data)


# --- Segments -----------------------------------------------------------------------------------------


@extend_schema(parameters=[_job_path_parameter()])
class SegmentListView(_JobAPIView):
    @extend_schema(
        operation_id="segments_list",
        tags=["segments"],
        summary="The job's segments in order",
        responses={200: SegmentSerializer(many=True), **errors(404)},
    )
    def get(self, request: Request, job_id: uuid.UUID) -> Response:
        job = self.get_job(job_id)
        return Response(SegmentSerializer(job.segments.all(), many=True, context=self.context()).data)


@extend_schema(parameters=[_job_path_parameter(), _index_path_parameter()])
class SegmentDetailView(_JobAPIView):
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="segments_retrieve",
        tags=["segments"],
        summary="One segment",
        responses={200: SegmentSerializer, **errors(404)},
    )
    def get(self, request: Request, job_id: uuid.UUID, index: int) -> Response:
        segment = self.get_segment(self.get_job(job_id), index)
        return Response(SegmentSerializer(segment, context=self.context()).data)

    @extend_schema(
        operation_id="segments_partial_update",
        tags=["segments"],
        summary="Override one segment's prompt (refused while that segment renders)",
        request=SegmentUpdateSerializer,
        responses={200: SegmentSerializer, **errors(400, 404, 409)},
    )
    def patch(self, request: Request, job_id: uuid.UUID, index: int) -> Response:
        job = self.get_job(job_id)
        segment = self.get_segment(job, index)
        serializer = SegmentUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        if "prompt" in serializer.validated_data:  # PATCH semantics: an empty object changes nothing
            segment = services.segment_update_prompt(
                job=job, index=index, prompt=serializer.validated_data["prompt"]
            )
        return Response(SegmentSerializer(segment, context=self.context()).data)


@extend_schema(parameters=[_job_path_parameter(), _index_path_parameter()])
class SegmentRerenderView(_JobAPIView):
    @_action_schema(
        "segments_rerender", "Render one segment of a finished job again and re-assemble", 400, 409
    )
    def post(self, request: Request, job_id: uuid.UUID, index: int) -> Response:
        job = self.get_job(job_id)
        self.get_segment(job, index)
        services.segment_rerender(job=job, indexes=[index])
        return self.job_response(job_id, status.HTTP_202_ACCEPTED)


# --- Reference images ---------------------------------------------------------------------------------


@extend_schema(parameters=[_job_path_parameter()])
class ReferenceImageListView(_JobAPIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="reference_images_list",
        tags=["reference-images"],
        summary="The job's reference images",
        responses={200: ReferenceImageSerializer(many=True), **errors(404)},
    )
    def get(self, request: Request, job_id: uuid.UUID) -> Response:
        job = self.get_job(job_id)
        images = job.reference_images.all()
        return Response(ReferenceImageSerializer(images, many=True, context=self.context()).data)

    @extend_schema(
        operation_id="reference_images_create",
        tags=["reference-images"],
        summary="Upload a reference image for the job or one segment (PNG, JPEG or WebP)",
        request={"multipart/form-data": ReferenceImageUploadSerializer},
        responses={201: ReferenceImageSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, job_id: uuid.UUID) -> Response:
        job = self.get_job(job_id)
        # Refuse an oversized body from its declared length, before Django spools it to disk.
        limit = settings.UPLOAD_MAX_BYTES + MULTIPART_OVERHEAD_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            raise ValidationError({"image": [f"the upload is larger than {settings.UPLOAD_MAX_BYTES} bytes"]})
        serializer = ReferenceImageUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        image = services.reference_image_add(
            job=job, upload=data["image"], segment_index=data.get("segment_index")
        )
        return Response(
            ReferenceImageSerializer(image, context=self.context()).data, status=status.HTTP_201_CREATED
        )


@extend_schema(
    parameters=[
        _job_path_parameter(),
        OpenApiParameter("image_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The image's id."),
    ]
)
class ReferenceImageDetailView(_JobAPIView):
    def get_image(self, job_id: uuid.UUID, image_id: int) -> ReferenceImage:
        for image in self.get_job(job_id).reference_images.all():
            if image.id == image_id:
                return image
        raise NotFound("Not found.")

    @extend_schema(
        operation_id="reference_images_retrieve",
        tags=["reference-images"],
        summary="One reference image",
        responses={200: ReferenceImageSerializer, **errors(404)},
    )
    def get(self, request: Request, job_id: uuid.UUID, image_id: int) -> Response:
        image = self.get_image(job_id, image_id)
        return Response(ReferenceImageSerializer(image, context=self.context()).data)

    @extend_schema(
        operation_id="reference_images_destroy",
        tags=["reference-images"],
        summary="Remove a reference image (refused while the job renders)",
        responses={204: None, **errors(404, 409)},
    )
    def delete(self, request: Request, job_id: uuid.UUID, image_id: int) -> Response:
        services.reference_image_delete(image=self.get_image(job_id, image_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


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
        return Response(StrategySerializer(strategy_rows(), many=True).data)


class ProviderListView(APIView):
    @extend_schema(
        operation_id="providers_list",
        tags=["catalog"],
        summary="Video providers with their models, sizes, clip lengths and prices",
        responses={200: ProviderSerializer(many=True), **errors()},
    )
    def get(self, request: Request) -> Response:
        return Response(ProviderSerializer(provider_rows(), many=True).data)
