"""Editing a saved draft's plan (jobs.plan_edit): reorder, split, merge, add and remove its cards in one
atomic step, planned by the same rules as a new job, with segment-bound reference images following their
cards."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from jobs import plan_edit, planning, services
from jobs.errors import IllegalTransition, InvalidInput
from jobs.models import JobStatus, ReferenceImage, Segment, VideoJob
from jobs.plan_edit import PlanCard, video_job_plan_update
from tests.factories import VideoJobFactory

pytestmark = pytest.mark.django_db

SHOTS = ("A fox wakes.", "It runs through snow.", "It sleeps by the fire.")


def png(colour: tuple[int, int, int]) -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buffer, format="PNG")
    buffer.seek(0)
    return buffer


@pytest.fixture
def draft(user) -> VideoJob:
    """A three-card manual draft on the local provider."""
    return VideoJobFactory(owner=user, shots=SHOTS)


def image_on(job: VideoJob, index: int | None, colour: tuple[int, int, int]) -> ReferenceImage:
    return services.reference_image_add(job=job, upload=png(colour), segment_index=index)


def prompts(job: VideoJob) -> list[str]:
    return list(job.segments.order_by("index").values_list("prompt", flat=True))


def images_by_index(job: VideoJob) -> dict[int | None, list[int]]:
    """Image ids by the index of the segment they are bound to (None: the whole job)."""
    out: dict[int | None, list[int]] = {}
    for image in ReferenceImage.objects.filter(job=job).select_related("segment").order_by("id"):
        out.setdefault(image.segment.index if image.segment else None, []).append(image.id)
    return out


def state(job: VideoJob) -> dict[str, Any]:
    """Everything an edit could change, for 'nothing changed' checks."""
    job = VideoJob.objects.get(id=job.id)
    return {
        "job": (
            job.status,
            job.strategy,
            job.duration_seconds,
            job.cost_estimate_usd,
            job.billed_seconds_estimate,
            job.notices,
        ),
        "segments": list(
            Segment.objects.filter(job=job)
            .order_by("index")
            .values_list(
                "id", "index", "prompt", "is_manual", "start_seconds", "end_seconds", "render_seconds"
            )
        ),
        "images": list(ReferenceImage.objects.filter(job=job).order_by("id").values_list("id", "segment_id")),
        "files": sorted(i.image.name for i in ReferenceImage.objects.filter(job=job)),
    }


def edit(job: VideoJob, *cards: tuple[str, int | None]) -> VideoJob:
    return video_job_plan_update(job=job, cards=[PlanCard(prompt, source) for prompt, source in cards])


class TestReshape:
    def test_reorder_moves_prompts_and_images_with_their_cards(self, draft):
        first, last = image_on(draft, 0, (200, 0, 0)), image_on(draft, 2, (0, 0, 200))
        whole = image_on(draft, None, (0, 200, 0))
        job = edit(draft, (SHOTS[2], 2), (SHOTS[0], 0), (SHOTS[1], 1))
        assert prompts(job) == [SHOTS[2], SHOTS[0], SHOTS[1]]
        assert images_by_index(job) == {0: [last.id], 1: [first.id], None: [whole.id]}
        segments = list(job.segments.order_by("index"))
        assert [(s.start_seconds, s.end_seconds, s.render_seconds) for s in segments] == [
            (0, 10, 10),
            (10, 20, 10),
            (20, 30, 10),
        ]
        assert all(s.is_manual for s in segments) and job.duration_seconds == 30

    def test_split_keeps_the_image_on_the_first_piece(self, draft):
        image = image_on(draft, 1, (200, 0, 0))
        job = edit(draft, (SHOTS[0], 0), ("It runs.", 1), ("Through snow.", 1), (SHOTS[2], 2))
        assert prompts(job) == [SHOTS[0], "It runs.", "Through snow.", SHOTS[2]]
        assert images_by_index(job) == {1: [image.id]}
        assert job.duration_seconds == 40 and job.segments.count() == 4

    def test_merge_keeps_the_first_cards_image_and_drops_the_seconds(
        self, draft, django_capture_on_commit_callbacks
    ):
        kept, dropped = image_on(draft, 0, (200, 0, 0)), image_on(draft, 1, (0, 0, 200))
        with django_capture_on_commit_callbacks(execute=True):
            job = edit(draft, (f"{SHOTS[0]} {SHOTS[1]}", 0), (SHOTS[2], 2))
        assert prompts(job) == [f"{SHOTS[0]} {SHOTS[1]}", SHOTS[2]]
        assert images_by_index(job) == {0: [kept.id]}
        assert not default_storage.exists(dropped.image.name)
        assert default_storage.exists(kept.image.name)

    def test_add_a_new_card_at_any_place(self, draft):
        job = edit(draft, (SHOTS[0], 0), ("A new dawn.", None), (SHOTS[1], 1), (SHOTS[2], 2))
        assert prompts(job) == [SHOTS[0], "A new dawn.", SHOTS[1], SHOTS[2]]
        assert job.duration_seconds == 40

    def test_remove_deletes_the_removed_cards_image_and_its_file_after_commit(
        self, draft, django_capture_on_commit_callbacks
    ):
        gone, stays = image_on(draft, 1, (200, 0, 0)), image_on(draft, 2, (0, 0, 200))
        whole = image_on(draft, None, (0, 200, 0))
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            job = edit(draft, (SHOTS[0], 0), (SHOTS[2], 2))
            # The row is gone in the transaction; the file waits for the commit.
            assert default_storage.exists(gone.image.name)
        for callback in callbacks:
            callback()
        assert not default_storage.exists(gone.image.name)
        assert images_by_index(job) == {1: [stays.id], None: [whole.id]}
        assert prompts(job) == [SHOTS[0], SHOTS[2]] and job.duration_seconds == 20

    def test_an_automatic_draft_becomes_manual_with_creations_segment_fields(self, user):
        job = VideoJobFactory(owner=user, duration_seconds=30, prompt="A fox runs. It jumps. It sleeps.")
        assert job.strategy == "even"
        job = edit(job, ("It sleeps.", 2), ("A fox runs.", 0))
        assert job.strategy == "manual" and job.duration_seconds == 20
        stored = list(job.segments.order_by("index").values_list("prompt", "is_manual"))
        assert stored == [("It sleeps.", True), ("A fox runs.", True)]

    def test_the_plan_is_the_one_creation_makes_with_these_cards(self, user):
        # sora-2 renders 4, 8 or 12 s clips at $0.10/s: the cards are snapped and priced as at creation.
        job = VideoJobFactory(owner=user, sora=True, segment_seconds=5, shots=("Dawn.", "Noon."))
        cards = [("Noon.", 1), ("Dusk.", None), ("Dawn.", 0)]
        job = edit(job, *cards)
        created = planning.plan_job(
            planning.job_spec_of(
                job, duration_seconds=15, strategy="manual", manual_prompts=[p for p, _ in cards]
            )
        )
        segments = list(job.segments.order_by("index"))
        assert [(s.start_seconds, s.end_seconds, s.render_seconds) for s in segments] == [
            (p.start_seconds, p.end_seconds, p.render_seconds) for p in created.plan.segments
        ]
        assert [s.render_seconds for s in segments] == [4, 4, 4]  # 5 s snapped to the nearest length
        assert job.cost_estimate_usd == created.plan.cost_usd == Decimal("1.2")
        assert job.billed_seconds_estimate == 12 and job.duration_seconds == 12
        assert job.notices == created.notices and "snapped" in job.notices[0]

    def test_prompts_are_stripped_as_at_creation(self, draft):
        job = edit(draft, ("  Dawn.  ", 0))
        assert prompts(job) == ["Dawn."]


class TestRefused:
    @pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.CANCELLED, JobStatus.COMPLETED])
    def test_only_a_draft(self, draft, status):
        VideoJob.objects.filter(id=draft.id).update(status=status)
        draft.refresh_from_db()
        before = state(draft)
        with pytest.raises(IllegalTransition, match="only a draft's plan can be edited"):
            edit(draft, (SHOTS[1], 1), (SHOTS[0], 0))
        assert state(draft) == before

    def test_a_render_started_meanwhile_wins(self, draft, monkeypatch):
        # The draft was read before the render claimed it; the check under the lock refuses the edit.
        real_plan = plan_edit._plan

        def render_meanwhile(job, cards):
            checked = real_plan(job, cards)
            services.video_job_render(job=VideoJob.objects.get(id=job.id))
            return checked

        monkeypatch.setattr(plan_edit, "_plan", render_meanwhile)
        with pytest.raises(IllegalTransition, match="queued"):
            edit(draft, (SHOTS[1], 1), (SHOTS[0], 0))
        assert prompts(draft) == list(SHOTS)

    @pytest.mark.parametrize(
        ("cards", "field", "fragment"),
        [
            ([(SHOTS[0], 0), (" \u3000 ", 1)], "segments.1.prompt", "empty"),
            ([(SHOTS[0], 0), (SHOTS[1], 7)], "segments.1.source", "segment 7 does not exist"),
            ([(SHOTS[0], -1)], "segments.0.source", "does not exist"),
            ([], "segments", "at least one card"),
        ],
    )
    def test_invalid_cards_name_the_card_and_change_nothing(self, draft, cards, field, fragment):
        image_on(draft, 1, (200, 0, 0))
        before = state(draft)
        with pytest.raises(InvalidInput) as caught:
            edit(draft, *cards)
        assert fragment in " ".join(caught.value.errors[field])
        assert state(draft) == before

    def test_a_prompt_over_the_limit_names_its_card(self, draft, settings):
        settings.MAX_SEGMENT_PROMPT_CHARS = 20
        before = state(draft)
        with pytest.raises(InvalidInput) as caught:
            edit(draft, ("Short.", 0), ("x" * 21, 1))
        assert "21 characters long; the limit is 20" in caught.value.errors["segments.1.prompt"][0]
        assert state(draft) == before

    def test_too_many_cards_for_the_longest_video(self, draft, settings):
        settings.MAX_DURATION_SECONDS = 30
        with pytest.raises(InvalidInput) as caught:
            edit(draft, *[(f"Shot {n}.", None) for n in range(4)])
        assert caught.value.errors["segments"][0].startswith("4 cards of 10 s make 40 s: duration_seconds")
        assert prompts(draft) == list(SHOTS)

    def test_over_a_budget_cap(self, user, settings):
        job = VideoJobFactory(owner=user, sora=True, shots=("Dawn.", "Dusk."))
        settings.BUDGET_JOB_MAX_USD = 1
        before = state(job)
        with pytest.raises(InvalidInput) as caught:
            edit(job, *[(f"Shot {n}.", None) for n in range(3)])  # 3 x 4 s at $0.10: $1.20
        assert "per-job budget" in caught.value.errors["budget"][0]
        assert state(job) == before

    def test_a_failure_while_writing_undoes_everything_and_keeps_the_files(self, draft, monkeypatch):
        gone = image_on(draft, 1, (200, 0, 0))
        before = state(draft)

        def broken(job, plan):
            raise RuntimeError("disk full")

        # Fails after the image rows and old segments were deleted in the transaction.
        monkeypatch.setattr(plan_edit, "planned_segments", broken)
        with pytest.raises(RuntimeError):
            edit(draft, (SHOTS[0], 0))
        assert state(draft) == before
        assert default_storage.exists(gone.image.name)
