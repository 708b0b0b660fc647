"""factory-boy factories: the one way the tests make users and jobs.

    UserFactory(username="alice")                  # password "pw-alice-123"
    VideoJobFactory(owner=user)                    # a planned draft: 20 s, two 10 s segments, local
    VideoJobFactory(owner=user, duration_seconds=30, title="Mine")   # any JobSpec field is a keyword
    VideoJobFactory(owner=user, short=True)        # 4 s in two 2 s segments: quick to render for real
    VideoJobFactory(owner=user, sora=True, shots=("Dawn.", "Dusk."))  # manual 4 s sora clips

A job is made by the real service (jobs.services.video_job_submit, render=False), so its segments,
estimate and plan are exactly what the API, the CLI and the workspace would store. Start a render with
jobs.services.video_job_render; set other states in the test itself.
"""

from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model

from jobs import services
from jobs.models import VideoJob
from jobs.planning import JobSpec

DEFAULT_PROMPT = "A fox runs. It jumps. It sleeps."


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password(factory.LazyAttribute(lambda u: f"pw-{u.username}-123"))


class VideoJobFactory(factory.Factory):
    """A draft job planned, priced and stored by jobs.services.video_job_submit.

    Every keyword but `owner` (a new user unless given) and the parameters below is a field of
    jobs.planning.JobSpec: prompt, duration_seconds, segment_seconds, strategy, manual_prompts,
    continuity, reference_fit, provider, model, size, fps, title, use_cache. The service checks them,
    so a bad value raises InvalidInput just as it would through the API.

    Parameters:
        shots:  one prompt per segment: the `manual` strategy, the job prompt joined from the shots,
                and a duration of len(shots) * segment_seconds.
        short:  a 4 s job in two 2 s segments (quick to render for real).
        sora:   the sora provider (default model) at 1280x720 and 30 fps, the fake Videos API's
                clips, in 4 s segments, a length sora renders without trimming.
    """

    class Meta:
        model = VideoJob

    class Params:
        shots: tuple[str, ...] = ()
        short = factory.Trait(duration_seconds=4, segment_seconds=2)
        sora = factory.Trait(provider="sora", size="1280x720", fps=30, segment_seconds=4)

    owner = factory.SubFactory(UserFactory)
    prompt = factory.LazyAttribute(lambda o: " ".join(o.shots) if o.shots else DEFAULT_PROMPT)
    duration_seconds = factory.LazyAttribute(lambda o: len(o.shots) * o.segment_seconds if o.shots else 20)
    segment_seconds = 10
    strategy = factory.LazyAttribute(lambda o: "manual" if o.shots else "even")
    manual_prompts = factory.LazyAttribute(lambda o: list(o.shots))
    provider = "local"
    size = "320x240"
    fps = 12

    @classmethod
    def _build(cls, model_class: type[VideoJob], *args: Any, **kwargs: Any) -> VideoJob:
        raise TypeError("a planned job is stored by the service; use VideoJobFactory(...) or .create()")

    @classmethod
    def _create(cls, model_class: type[VideoJob], *args: Any, owner: Any, **spec_fields: Any) -> VideoJob:
        return services.video_job_submit(owner=owner, spec=JobSpec(**spec_fields), render=False)
