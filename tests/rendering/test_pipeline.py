"""The render pipeline end to end on the embedded default: the same task functions the fleet runs."""

from __future__ import annotations

import hashlib
import itertools
from decimal import Decimal
from pathlib import Path

import pytest

from jobs import services
from jobs.models import JobStatus, Segment, SegmentStatus, VideoJob
from rendering import dispatch, tasks
from rendering.media import probe
from rendering.providers.base import ModelSpec, ProviderCatalogue, ProviderError, RenderRequest, VideoProvider
from rendering.providers.local import LocalProvider
from rendering.providers.registry import register_provider
from tests.support.jobs import render_and_wait


def create(owner, **overrides) -> VideoJob:
    fields = {
        "prompt": "A kite climbs over a beach. It loops twice. It lands in the sand.",
        "duration_seconds": 5,
        "segment_seconds": 2,
        "strategy": "sentences",
        "size": "320x240",
        "fps": 24,
    }
    fields.update(overrides)
    return services.video_job_create(owner=owner, **fields)


def start(job: VideoJob, capture) -> VideoJob:
    # Queue without dispatching, so the test drives the tasks itself.
    with capture(execute=False):
        return services.video_job_render(job=job)


@pytest.mark.django_db
def test_render_segment_twice_leaves_one_clip(user, settings, django_capture_on_commit_callbacks):
    job = start(create(user, duration_seconds=2), django_capture_on_commit_callbacks)
    segment = job.segments.get()
    args = (str(job.id), segment.id, job.render_generation)

    with django_capture_on_commit_callbacks(execute=True):
        first = tasks.render_segment.apply(args=args).get()
        second = tasks.render_segment.apply(args=args).get()

    assert (first, second) == ("completed", "skipped")
    segment.refresh_from_db()
    assert segment.status == SegmentStatus.COMPLETED and segment.attempts == 1
    clips = list((Path(settings.MEDIA_ROOT) / f"jobs/{job.id}/segments").glob("*.mp4"))
    assert [c.name for c in clips] == [Path(segment.clip.name).name]
    assert segment.last_frame and segment.thumbnail


@pytest.mark.django_db
def test_advance_follows_continuity(user, django_capture_on_commit_callbacks, monkeypatch):
    enqueued: list[tuple] = []
    monkeypatch.setattr(dispatch, "enqueue", lambda name, *args: enqueued.append((name, args)))

    parallel = start(create(user), django_capture_on_commit_callbacks)
    dispatch.enqueue_render(parallel.id, parallel.render_generation)
    assert [name for name, _ in enqueued] == ["rendering.render_segment"] * 3
    enqueued.clear()
    first, *rest = parallel.segments.order_by("index")
    Segment.objects.filter(id=first.id).update(status=SegmentStatus.COMPLETED)
    assert dispatch.advance(parallel.id, parallel.render_generation) == "waiting"
    Segment.objects.filter(id__in=[s.id for s in rest]).update(status=SegmentStatus.COMPLETED)
    assert dispatch.advance(parallel.id, parallel.render_generation) == "assemble"
    assert dispatch.advance(parallel.id, parallel.render_generation + 1) == "stale"

    enqueued.clear()
    chained = start(create(user, continuity="chain"), django_capture_on_commit_callbacks)
    dispatch.enqueue_render(chained.id, chained.render_generation)
    segments = list(chained.segments.order_by("index"))
    assert enqueued == [("rendering.render_segment", (str(chained.id), segments[0].id, 1))]
    Segment.objects.filter(id=segments[0].id).update(status=SegmentStatus.COMPLETED)
    assert dispatch.advance(chained.id, 1) == "next"
    assert enqueued[-1] == ("rendering.render_segment", (str(chained.id), segments[1].id, 1))
    # A failed link stops the chain: the rest are skipped and the job goes to assembly, which fails it.
    Segment.objects.filter(id=segments[1].id).update(status=SegmentStatus.FAILED)
    assert dispatch.advance(chained.id, 1) == "assemble"
    segments[2].refresh_from_db()
    assert segments[2].status == SegmentStatus.CANCELLED and "segment 2 did not complete" in segments[2].error


@pytest.mark.django_db(transaction=True)
def test_parallel_job_end_to_end(user):
    job = render_and_wait(create(user))
    assert job.status == JobStatus.COMPLETED, job.error
    assert job.progress == 100
    info = probe(Path(job.output_video.path))
    assert info.duration == pytest.approx(5.0, abs=0.1)
    assert info.size == "320x240" and info.audio_codec == "aac"
    assert job.output_duration_seconds == pytest.approx(5.0, abs=0.1)
    assert Path(job.poster_image.path).stat().st_size > 0
    assert set(job.segments.values_list("status", flat=True)) == {SegmentStatus.COMPLETED}


@pytest.mark.django_db(transaction=True)
def test_chain_uses_the_previous_clips_true_last_frame(user, monkeypatch):
    seen: dict[int, str | None] = {}
    original = LocalProvider.submit

    def spy(self, request: RenderRequest, **kwargs):
        digest = (
            hashlib.sha256(request.reference_image.read_bytes()).hexdigest()
            if request.reference_image
            else None
        )
        seen[request.segment_index] = digest
        return original(self, request, **kwargs)

    monkeypatch.setattr(LocalProvider, "submit", spy)
    job = render_and_wait(create(user, continuity="chain"))
    assert job.status == JobStatus.COMPLETED, job.error
    segments = list(job.segments.order_by("index"))
    assert seen[0] is None
    for previous, current in itertools.pairwise(segments):
        last_frame = hashlib.sha256(Path(previous.last_frame.path).read_bytes()).hexdigest()
        assert seen[current.index] == last_frame


@register_provider("test-refusing")
class RefusingProvider(VideoProvider):
    """Refuses prompts containing 'forbidden', like a moderation filter; otherwise draws locally."""

    def catalogue(self) -> ProviderCatalogue:
        model = ModelSpec(
            provider=self.name, id="m", clip_seconds=(4.0, 8.0), price_per_second={"*": Decimal("0.1")}
        )
        return ProviderCatalogue(provider=self.name, models=(model,), default_model="m")

    def submit(self, request, *, on_progress=None):
        if "forbidden" in request.prompt:
            raise ProviderError("the prompt was blocked", permanent=True, code="moderation_blocked")
        return LocalProvider().submit(request, on_progress=on_progress)

    def poll(self, task_id):
        return LocalProvider().poll(task_id)

    def download(self, task_id, dest):
        return LocalProvider().download(task_id, dest)


@pytest.mark.django_db(transaction=True)
def test_failed_segment_fails_the_job_and_keeps_finished_clips(user, settings):
    # A team's own provider is offered by naming its class; no edit of the registry.
    settings.VIDEO_PROVIDERS = [*settings.VIDEO_PROVIDERS, f"{__name__}.RefusingProvider"]
    job = create(
        user,
        provider="test-refusing",
        strategy="manual",
        duration_seconds=6,
        segment_seconds=3,
        manual_prompts=["a calm sea", "something forbidden"],
    )
    # The model renders 4 or 8 s clips: the person's 3 s segments are snapped to 4 s, and they are told.
    assert job.billed_seconds_estimate == 8 and job.cost_estimate_usd == Decimal("0.8")
    assert job.duration_seconds == 8
    assert "snapped: segment 1 3 s -> 4 s; segment 2 3 s -> 4 s" in job.notices[0]
    job = render_and_wait(job)
    first, second = job.segments.order_by("index")
    assert job.status == JobStatus.FAILED
    assert "segment 2" in job.error and "moderation_blocked" in job.error
    assert first.status == SegmentStatus.COMPLETED and Path(first.clip.path).exists()
    # Rendered and billed for 4 s, and shown for 4 s: nothing paid for is thrown away.
    assert probe(Path(first.clip.path)).duration == pytest.approx(4.0, abs=0.05)
    assert first.cost_usd == Decimal("0.4") and job.cost_spent_usd == Decimal("0.4")
    assert second.status == SegmentStatus.FAILED and "blocked" in second.error
    assert not job.output_video


@pytest.mark.django_db(transaction=True)
def test_assemble_job_twice_leaves_one_video(user, settings):
    job = render_and_wait(create(user, duration_seconds=2, segment_seconds=1))
    assert job.status == JobStatus.COMPLETED
    again = tasks.assemble_job.apply(args=(str(job.id), job.render_generation)).get()
    assert again == "skipped"
    videos = list((Path(settings.MEDIA_ROOT) / f"jobs/{job.id}").glob("video-*.mp4"))
    assert [v.name for v in videos] == [Path(job.output_video.name).name]
