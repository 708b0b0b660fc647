"""The base of every view on one job: the job of the URL, loaded through the scoped selector (another
user's job is a 404; staff may read all), and who may change it."""

from __future__ import annotations

import uuid
from typing import Any

from rest_framework import status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import selectors
from jobs.models import Segment, VideoJob

from .output_serializers import VideoJobDetailSerializer, saved_annotation


# Loads the job of the URL through the scoped selector, with its segments and images prefetched.
# (A comment, not a docstring: drf-spectacular would copy a docstring into every operation.)
class JobAPIView(APIView):
    def context(self) -> dict[str, Any]:
        return {"request": self.request, "view": self}

    def get_job(self, job_id: uuid.UUID, *, annotations: dict[str, Any] | None = None) -> VideoJob:
        job = selectors.video_job_detail(user=self.request.user, job_id=job_id, annotations=annotations)
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
        if self.owner_content:
            # Operators may render, retry and cancel anyone's job, never rewrite what a person wrote.
            raise PermissionDenied("only the job's owner may change its prompts and reference images")
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
    # Writes here change what the owner wrote or chose (segment prompts, reference images).
    owner_content = False

    @staticmethod
    def get_segment(job: VideoJob, index: int) -> Segment:
        # Looked up among the prefetched segments: an absurd index is a 404 without reaching the database.
        for segment in job.segments.all():
            if segment.index == index:
                return segment
        raise NotFound(f"Segment {index} does not exist; this job has {len(job.segments.all())} segments.")

    def job_response(self, job_id: uuid.UUID, status_code: int = status.HTTP_200_OK) -> Response:
        # The job as it stands now (after whatever the view changed), its cache savings summed in the
        # same query: the job and its segments in one round trip (the images only if it has any),
        # however many segments.
        return self.detail_response(self.get_job(job_id, annotations=saved_annotation()), status_code)

    def detail_response(self, job: VideoJob, status_code: int = status.HTTP_200_OK) -> Response:
        """`job` (with its segments and images attached) as the API's job detail. Its links to them are
        dropped once they are written out: each segment points back at the job, a reference cycle that
        only the garbage collector frees, and under load the collector's passes over such cycles held
        up every request in the process (the detail's p99)."""
        data = VideoJobDetailSerializer(job, context=self.context()).data
        getattr(job, "_prefetched_objects_cache", {}).clear()
        return Response(data, status=status_code)
