"""The "preview so far" of a job: its finished beginning joined by stream copy (jobs.previews)."""

from __future__ import annotations

import uuid

from django.core.files.storage import default_storage
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.previews import PreviewFailed, job_preview

from .base import JobAPIView
from .schema import errors, job_path_parameter

PreviewSerializer = inline_serializer(
    "Preview",
    {
        "available": serializers.BooleanField(help_text="False until the first segment has finished."),
        "segments": serializers.IntegerField(help_text="How many segments, from the first, it shows."),
        "segment_count": serializers.IntegerField(help_text="How many segments the job has."),
        "duration_seconds": serializers.FloatField(),
        "takes": serializers.ListField(child=serializers.IntegerField()),
        "video_url": serializers.URLField(allow_null=True),
    },
)


@extend_schema(parameters=[job_path_parameter()])
class JobPreviewView(JobAPIView):
    @extend_schema(
        operation_id="video_jobs_preview",
        tags=["video-jobs"],
        summary="The finished beginning of the video so far, joined by stream copy (nothing is rendered)",
        responses={200: PreviewSerializer, **errors(404)},
    )
    def get(self, request: Request, job_id: uuid.UUID) -> Response:
        job = self.get_job(job_id)
        count = len(job.segments.all())
        try:
            preview = job_preview(job)
        except PreviewFailed as exc:
            return Response(
                {"detail": str(exc), "code": "preview_failed"}, status=status.HTTP_503_SERVICE_UNAVAILABLE
            )
        if preview is None:
            body = {"available": False, "segments": 0, "segment_count": count, "duration_seconds": 0.0}
            return Response({**body, "takes": [], "video_url": None})
        return Response(
            {
                "available": True,
                "segments": preview.segments,
                "segment_count": count,
                "duration_seconds": preview.duration_seconds,
                "takes": preview.takes,
                "video_url": request.build_absolute_uri(default_storage.url(preview.name)),
            }
        )
