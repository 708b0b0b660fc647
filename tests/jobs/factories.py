"""factory-boy factories for the jobs app."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from jobs.models import Segment, VideoJob


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-test-123")


class VideoJobFactory(factory.django.DjangoModelFactory):
    """A bare job row. Use jobs.services.video_job_create for a fully planned job."""

    class Meta:
        model = VideoJob

    owner = factory.SubFactory(UserFactory)
    prompt = "A lighthouse keeper climbs the stairs at night."
    duration_seconds = 20.0
    segment_seconds = 10.0
    provider = "local"
    model = "local-v1"


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Segment

    job = factory.SubFactory(VideoJobFactory)
    index = factory.Sequence(lambda n: n)
    prompt = factory.LazyAttribute(lambda s: f"Shot {s.index + 1}")
    start_seconds = factory.LazyAttribute(lambda s: s.index * 10.0)
    end_seconds = factory.LazyAttribute(lambda s: s.index * 10.0 + 10.0)
