"""Duplicate a job as a new draft (jobs.duplicates)."""

from __future__ import annotations

import uuid

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from jobs import selectors
from jobs.duplicates import video_job_duplicate

from .base import JobAPIView
from .output_serializers import VideoJobDetailSerializer
from .schema import errors, job_path_parameter


@extend_schema(parameters=[job_path_parameter()])
class VideoJobDuplicateView(JobAPIView):
    @extend_schema(
        operation_id="video_jobs_duplicate",
        tags=["video-jobs"],
        summary="Copy the job (cards, model, reference images) into a new draft of yours; nothing renders",
        request=None,
        responses={201: VideoJobDetailSerializer, **errors(400, 404)},
    )
    def post(self, request: Request, job_id: uuid.UUID) -> Response:
        # Reading a job is enough to copy it: the copy is the requester's own draft.
        job = selectors.video_job_detail(user=request.user, job_id=job_id)
        if job is None:
            raise NotFound("Not found.")
        copy = video_job_duplicate(job=job, owner=request.user)
        copy = selectors.video_job_detail(user=request.user, job_id=copy.id)
        return Response(
            VideoJobDetailSerializer(copy, context=self.context()).data, status=status.HTTP_201_CREATED
        )
