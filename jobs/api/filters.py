"""Query-string filters for the job list."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination

from jobs.models import JobStatus


class VideoJobFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=JobStatus.choices, required=False, help_text="Only jobs with this status."
    )


class VideoJobPagination(PageNumberPagination):
    """PAGE_SIZE from settings; programs may ask for up to 100 per page."""

    page_size_query_param = "page_size"
    max_page_size = 100
