"""How takes (every kept render of a segment) and versions (every assembled video) are shown."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs.downloads import download_name, download_url
from jobs.models import Take, Version


def _absolute(serializer: serializers.Serializer, url: str) -> str:
    request = serializer.context.get("request")
    return request.build_absolute_uri(url) if request is not None else url


class TakeSerializer(serializers.ModelSerializer):
    clip_url = serializers.SerializerMethodField(help_text="The take's clip.")
    thumbnail_url = serializers.SerializerMethodField(help_text="A still of the take's clip.")
    picked = serializers.SerializerMethodField(help_text="This take is the one the video uses.")
    cost_usd = serializers.DecimalField(max_digits=10, decimal_places=4, read_only=True)

    class Meta:
        model = Take
        fields = [
            "number",
            "prompt",
            "duration_seconds",
            "rendered_by",
            "cost_usd",
            "cached",
            "picked",
            "clip_url",
            "thumbnail_url",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.URI)
    def get_clip_url(self, take: Take) -> str:
        return _absolute(self, take.clip.url)

    @extend_schema_field({"type": "string", "format": "uri", "nullable": True})
    def get_thumbnail_url(self, take: Take) -> str | None:
        return _absolute(self, take.thumbnail.url) if take.thumbnail else None

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_picked(self, take: Take) -> bool:
        return take.segment.take_number == take.number


class VersionSerializer(serializers.ModelSerializer):
    video_url = serializers.SerializerMethodField(help_text="The video; this link keeps working.")
    download_url = serializers.SerializerMethodField(
        help_text="Downloads the video named after the job's title, e.g. lighthouse-keepers-night-v3.mp4."
    )
    poster_url = serializers.SerializerMethodField()
    current = serializers.SerializerMethodField(help_text="The version the job's output_url is.")
    takes = serializers.ListField(
        child=serializers.IntegerField(), read_only=True, help_text="The take of each segment, in order."
    )

    class Meta:
        model = Version
        fields = [
            "number",
            "duration_seconds",
            "takes",
            "current",
            "video_url",
            "download_url",
            "poster_url",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.URI)
    def get_video_url(self, version: Version) -> str:
        return _absolute(self, version.video.url)

    @extend_schema_field(OpenApiTypes.URI)
    def get_download_url(self, version: Version) -> str:
        return _absolute(self, download_url(version.video, download_name(version.job, version.number)))

    @extend_schema_field({"type": "string", "format": "uri", "nullable": True})
    def get_poster_url(self, version: Version) -> str | None:
        return _absolute(self, version.poster.url) if version.poster else None

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_current(self, version: Version) -> bool:
        return version.job.version_number == version.number
