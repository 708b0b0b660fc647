"""Views on a job's segments and reference images."""

from __future__ import annotations

import uuid

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from idempotency.decorators import idempotent
from jobs import services
from jobs.models import ReferenceImage

from .base import JobAPIView
from .input_serializers import ReferenceImageUploadSerializer, SegmentUpdateSerializer, check_declared_length
from .output_serializers import ReferenceImageSerializer, SegmentSerializer
from .parsers import BoundedJSONParser
from .schema import action_schema, errors, index_path_parameter, job_path_parameter

# --- Segments -----------------------------------------------------------------------------------------


@extend_schema(parameters=[job_path_parameter()])
class SegmentListView(JobAPIView):
    @extend_schema(
        operation_id="segments_list",
        tags=["segments"],
        summary="The job's segments in order",
        responses={200: SegmentSerializer(many=True), **errors(404)},
    )
    def get(self, request: Request, job_id: uuid.UUID) -> Response:
        job = self.get_job(job_id)
        return Response(SegmentSerializer(job.segments.all(), many=True, context=self.context()).data)


@extend_schema(parameters=[job_path_parameter(), index_path_parameter()])
class SegmentDetailView(JobAPIView):
    owner_content = True

    parser_classes = [BoundedJSONParser]

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


@extend_schema(parameters=[job_path_parameter(), index_path_parameter()])
class SegmentRerenderView(JobAPIView):
    @action_schema(
        "segments_rerender", "Render one segment of a finished job again and re-assemble", 400, 409, 422
    )
    @idempotent
    def post(self, request: Request, job_id: uuid.UUID, index: int) -> Response:
        job = self.get_job(job_id)
        self.get_segment(job, index)
        services.segment_rerender(job=job, indexes=[index])
        return self.job_response(job_id, status.HTTP_202_ACCEPTED)


# --- Reference images ---------------------------------------------------------------------------------


@extend_schema(parameters=[job_path_parameter()])
class ReferenceImageListView(JobAPIView):
    owner_content = True

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
        check_declared_length(request, settings.UPLOAD_MAX_BYTES)
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
        job_path_parameter(),
        OpenApiParameter("image_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The image's id."),
    ]
)
class ReferenceImageDetailView(JobAPIView):
    owner_content = True

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
