"""Takes and versions: every render of a segment and every assembled video is kept; a person compares
takes, picks one (or goes back), and the job is assembled again from the picked takes."""

from __future__ import annotations

import uuid

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from idempotency.decorators import idempotent
from jobs import services

from .base import JobAPIView
from .schema import action_schema, errors, index_path_parameter, job_path_parameter
from .take_serializers import TakeSerializer, VersionSerializer


def take_path_parameter() -> OpenApiParameter:
    return OpenApiParameter(
        "number", OpenApiTypes.INT, OpenApiParameter.PATH, description="The take's number."
    )


@extend_schema(parameters=[job_path_parameter(), index_path_parameter()])
class TakeListView(JobAPIView):
    @extend_schema(
        operation_id="takes_list",
        tags=["segments"],
        summary="Every take (kept render) of one segment, oldest first",
        responses={200: TakeSerializer(many=True), **errors(404)},
    )
    def get(self, request: Request, job_id: uuid.UUID, index: int) -> Response:
        segment = self.get_segment(self.get_job(job_id), index)
        takes = segment.takes.select_related("segment").order_by("number")
        return Response(TakeSerializer(takes, many=True, context=self.context()).data)


@extend_schema(parameters=[job_path_parameter(), index_path_parameter(), take_path_parameter()])
class TakePickView(JobAPIView):
    @action_schema(
        "takes_pick",
        "Use this take in the video and assemble the job again from the picked takes",
        400,
        409,
        422,
    )
    @idempotent
    def post(self, request: Request, job_id: uuid.UUID, index: int, number: int) -> Response:
        job = self.get_job(job_id)
        segment = self.get_segment(job, index)
        if not segment.takes.filter(number=number).exists():
            raise NotFound(f"Segment {index} has no take {number}; it has {segment.takes.count()}.")
        services.segment_take_pick(job=job, index=index, number=number)
        return self.job_response(job_id, status.HTTP_202_ACCEPTED)


@extend_schema(parameters=[job_path_parameter()])
class VersionListView(JobAPIView):
    @extend_schema(
        operation_id="versions_list",
        tags=["jobs"],
        summary="Every assembled video of the job, newest first; each keeps its own link",
        responses={200: VersionSerializer(many=True), **errors(404)},
    )
    def get(self, request: Request, job_id: uuid.UUID) -> Response:
        job = self.get_job(job_id)
        versions = job.versions.select_related("job").order_by("-number")
        return Response(VersionSerializer(versions, many=True, context=self.context()).data)
