"""Service transitions: legal moves succeed, illegal ones raise, and every change is a claimed UPDATE."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from PIL import Image

from jobs import render_state, services
from jobs.errors import IllegalTransition, InvalidInput
from jobs.models import JobStatus, ReferenceImage, Segment, SegmentStatus, VideoJob
from tests.factories import VideoJobFactory

pytestmark = pytest.mark.django_db


def png_bytes(size=(64, 48), colour=(200, 30, 30), fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


class TestCreate:
    def test_plans_segments_and_estimate(self, user):
        job = VideoJobFactory(owner=user, duration_seconds=25)
        segments = list(job.segments.order_by("index"))
        assert job.status == JobStatus.DRAFT
        assert [(s.start_seconds, s.end_seconds) for s in segments] == [(0, 10), (10, 20), (20, 25)]
        assert all(s.status == SegmentStatus.PENDING for s in segments)
        assert [s.render_seconds for s in segments] == [10, 10, 5]
        assert job.provider == "local" and job.model == "local-v1"
        assert job.cost_estimate_usd == Decimal("0") and job.billed_seconds_estimate == 25

    def test_manual_segments(self, user):
        job = VideoJobFactory(
            owner=user, strategy="manual", duration_seconds=20, manual_prompts=["Dawn", "Dusk"]
        )
        assert list(job.segments.values_list("prompt", "is_manual")) == [("Dawn", True), ("Dusk", True)]

    @pytest.mark.parametrize(
        ("overrides", "field", "fragment"),
        [
            ({"prompt": "   "}, "prompt", "empty"),
            ({"duration_seconds": 0}, "duration_seconds", "between"),
            ({"duration_seconds": "abc"}, "duration_seconds", "number"),
            ({"duration_seconds": float("nan")}, "duration_seconds", "finite"),
            ({"segment_seconds": 0}, "segment_seconds", ""),
            ({"strategy": "nope"}, "strategy", "unknown strategy"),
            ({"provider": "nope"}, "provider", "unknown provider"),
            ({"model": "sora-9"}, "model", "unknown model"),
            ({"size": "1280by720"}, "size", "WIDTHxHEIGHT"),
            ({"continuity": "loop"}, "continuity", "unknown continuity"),
            ({"fps": 0}, "fps", "1 to 120"),
            ({"strategy": "manual", "manual_prompts": ["only one"], "duration_seconds": 25}, "segments", "3"),
            ({"manual_prompts": ["a", "b", "c"]}, "segments", "not 'manual'"),
        ],
    )
    def test_bad_input_names_the_field_and_writes_nothing(self, user, overrides, field, fragment):
        with pytest.raises(InvalidInput) as caught:
            VideoJobFactory(owner=user, **overrides)
        assert field in caught.value.errors, caught.value.errors
        assert fragment.lower() in " ".join(caught.value.errors[field]).lower()
        assert VideoJob.objects.count() == 0 and Segment.objects.count() == 0


class TestTransitions:
    def test_render_queues_every_segment_once(self, user, django_capture_on_commit_callbacks):
        job = VideoJobFactory(owner=user)
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            job = services.video_job_render(job=job)
        assert job.status == JobStatus.QUEUED and job.render_generation == 1
        assert set(job.segments.values_list("status", flat=True)) == {SegmentStatus.QUEUED}
        assert callbacks, "the render is handed to the task runner only after commit"
        with pytest.raises(IllegalTransition, match="only a draft or cancelled job"):
            services.video_job_render(job=job)

    def test_claim_then_complete_then_assemble(self, user):
        job = services.video_job_render(job=VideoJobFactory(owner=user, duration_seconds=10))
        segment = job.segments.get()
        claimed = render_state.segment_claim(
            segment_id=segment.id, generation=job.render_generation, token="test-run"
        )
        assert claimed.status == SegmentStatus.RENDERING and claimed.attempts == 1
        job.refresh_from_db()
        assert job.status == JobStatus.RENDERING
        # A redelivered task resumes the same attempt instead of counting a new one.
        again = render_state.segment_claim(
            segment_id=segment.id, generation=job.render_generation, token="test-run"
        )
        assert again.attempts == 1
        assert (
            render_state.segment_claim(
                segment_id=segment.id, generation=job.render_generation + 1, token="test-run"
            )
            is None
        )

        render_state.segment_complete(
            segment_id=segment.id,
            clip=ContentFile(b"mp4", name="c.mp4"),
            last_frame=None,
            thumbnail=None,
            cost_usd=Decimal("1.2"),
        )
        segment.refresh_from_db()
        assert segment.status == SegmentStatus.COMPLETED and segment.clip.name.endswith(".mp4")
        with pytest.raises(IllegalTransition, match="completed; it cannot complete"):
            render_state.segment_complete(
                segment_id=segment.id,
                clip=ContentFile(b"x", name="x.mp4"),
                last_frame=None,
                thumbnail=None,
                cost_usd=Decimal("0"),
            )
        assert (
            render_state.job_assembly_start(
                job_id=job.id, generation=job.render_generation, token="test-run"
            ).status
            == "assembling"
        )
        done = render_state.job_complete(
            job_id=job.id, output=ContentFile(b"v", name="v.mp4"), poster=None, duration=10
        )
        assert (
            done.status == JobStatus.COMPLETED
            and done.progress == 100
            and done.cost_spent_usd == Decimal("1.2")
        )
        with pytest.raises(IllegalTransition):
            services.video_job_cancel(job=done)

    def test_assembly_refused_while_segments_unfinished(self, user):
        job = services.video_job_render(job=VideoJobFactory(owner=user))
        with pytest.raises(IllegalTransition, match="not completed"):
            render_state.job_assembly_start(job_id=job.id, generation=job.render_generation, token="test-run")

    def test_complete_requires_rendering(self, user):
        job = VideoJobFactory(owner=user, duration_seconds=10)
        segment = job.segments.get()
        with pytest.raises(IllegalTransition, match="pending; it cannot complete"):
            render_state.segment_complete(
                segment_id=segment.id,
                clip=ContentFile(b"x", name="x.mp4"),
                last_frame=None,
                thumbnail=None,
                cost_usd=Decimal("0"),
            )

    def test_cancel_stops_queued_segments_and_claims(self, user):
        job = services.video_job_render(job=VideoJobFactory(owner=user))
        job = services.video_job_cancel(job=job)
        assert job.status == JobStatus.CANCELLED
        assert set(job.segments.values_list("status", flat=True)) == {SegmentStatus.CANCELLED}
        segment = job.segments.first()
        assert (
            render_state.segment_claim(
                segment_id=segment.id, generation=job.render_generation, token="test-run"
            )
            is None
        )
        assert render_state.segment_progress(segment_id=segment.id, progress=50) is False

    def test_fail_then_retry_requeues_failed_only(self, user):
        job = services.video_job_render(job=VideoJobFactory(owner=user, duration_seconds=20))
        first, second = job.segments.order_by("index")
        render_state.segment_claim(segment_id=first.id, generation=job.render_generation, token="test-run")
        render_state.segment_complete(
            segment_id=first.id,
            clip=ContentFile(b"a", name="a.mp4"),
            last_frame=None,
            thumbnail=None,
            cost_usd=Decimal("0"),
        )
        render_state.segment_claim(segment_id=second.id, generation=job.render_generation, token="test-run")
        render_state.segment_fail(segment_id=second.id, error="moderation_blocked: no")
        failed = render_state.job_fail(job_id=job.id, error="segment 2 failed")
        assert failed.status == JobStatus.FAILED
        with pytest.raises(IllegalTransition, match="only a failed job"):
            services.video_job_retry(job=VideoJobFactory(owner=user))
        retried = services.video_job_retry(job=failed)
        statuses = dict(retried.segments.values_list("index", "status"))
        assert statuses == {0: SegmentStatus.COMPLETED, 1: SegmentStatus.QUEUED}
        assert retried.render_generation == 2 and retried.error == ""

    def test_prompt_override_refused_while_rendering(self, user):
        job = services.video_job_render(job=VideoJobFactory(owner=user))
        segment = job.segments.first()
        render_state.segment_claim(segment_id=segment.id, generation=job.render_generation, token="test-run")
        with pytest.raises(IllegalTransition, match="rendering"):
            services.segment_update_prompt(job=job, index=0, prompt="new")
        edited = services.segment_update_prompt(
            job=VideoJobFactory(owner=user), index=1, prompt=" A new take "
        )
        assert edited.prompt == "A new take" and edited.is_manual

    def test_progress_is_duration_weighted(self, user):
        job = services.video_job_render(job=VideoJobFactory(owner=user, duration_seconds=15))  # 10 s + 5 s
        first = job.segments.get(index=0)
        render_state.segment_claim(segment_id=first.id, generation=job.render_generation, token="test-run")
        render_state.segment_progress(segment_id=first.id, progress=50)
        job.refresh_from_db()
        assert job.progress == pytest.approx(90 * (50 * 10 / 15) / 100, abs=0.01)


class TestReferenceImages:
    def test_valid_image_is_stored_with_metadata(self, user):
        job = VideoJobFactory(owner=user)
        image = services.reference_image_add(job=job, upload=io.BytesIO(png_bytes()), segment_index=1)
        assert (image.content_type, image.width, image.height, image.segment.index) == (
            "image/png",
            64,
            48,
            1,
        )
        assert image.image.name.endswith(".png")

    @pytest.mark.parametrize(
        ("payload", "fragment"),
        [
            (b"", "empty"),
            (b"GIF89a not really", "not a readable"),
            (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not a readable"),
        ],
    )
    def test_bad_files_are_refused(self, user, payload, fragment):
        with pytest.raises(InvalidInput, match=fragment):
            services.reference_image_add(job=VideoJobFactory(owner=user), upload=io.BytesIO(payload))
        assert ReferenceImage.objects.count() == 0

    def test_gif_refused_by_content(self, user):
        with pytest.raises(InvalidInput, match="PNG, JPEG or WebP"):
            services.reference_image_add(
                job=VideoJobFactory(owner=user), upload=io.BytesIO(png_bytes(fmt="GIF"))
            )

    def test_size_and_pixel_limits(self, user, settings):
        settings.UPLOAD_MAX_PIXELS = 1000
        with pytest.raises(InvalidInput, match="limit is 1000 pixels"):
            services.reference_image_add(job=VideoJobFactory(owner=user), upload=io.BytesIO(png_bytes()))
        settings.UPLOAD_MAX_BYTES = 10
        with pytest.raises(InvalidInput, match="larger than 10 bytes"):
            services.reference_image_add(job=VideoJobFactory(owner=user), upload=io.BytesIO(png_bytes()))

    def test_unknown_segment_index(self, user):
        with pytest.raises(InvalidInput, match="segment_index 7 does not exist"):
            services.reference_image_add(
                job=VideoJobFactory(owner=user), upload=io.BytesIO(png_bytes()), segment_index=7
            )

    def test_delete_removes_rows_and_files(self, user, settings, django_capture_on_commit_callbacks):
        job = VideoJobFactory(owner=user)
        image = services.reference_image_add(job=job, upload=io.BytesIO(png_bytes()))
        path = settings.MEDIA_ROOT / image.image.name
        assert path.exists()
        with django_capture_on_commit_callbacks(execute=True):
            services.video_job_delete(job=job)
        assert not VideoJob.objects.filter(id=job.id).exists()
        assert not path.exists()
