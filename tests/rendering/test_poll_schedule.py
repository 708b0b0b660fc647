"""When a render that is still going is checked again: the backoff, moved up to the end the provider's
progress points to, within the minimum, the elapsed-time share and whatever the provider asked for."""

from __future__ import annotations

import math
import time

import pytest

from jobs import render_state, services
from jobs.models import Segment
from rendering import pipeline
from rendering.fake_api import FakeConfig
from rendering.pipeline import (
    POLL_ELAPSED_SHARE,
    POLL_HINT_FLOOR_SECONDS,
    POLL_MAX_SECONDS,
    POLL_MIN_SECONDS,
    PollLater,
    expected_remaining,
    next_poll_delay,
    poll_delay,
)
from rendering.transport import inprocess_runner


@pytest.mark.parametrize("polls", [0, 1, 3, 6, 40])
def test_without_progress_it_is_the_backoff(polls):
    assert next_poll_delay(polls=polls) == poll_delay(polls)
    assert next_poll_delay(polls=polls, progress=0.0, elapsed=30.0) == poll_delay(polls)
    assert next_poll_delay(polls=polls, progress=40.0, elapsed=None) == poll_delay(polls)


def test_the_backoff_grows_from_the_minimum_to_the_maximum():
    delays = [poll_delay(n) for n in range(40)]
    assert delays[0] == POLL_MIN_SECONDS and delays[-1] == POLL_MAX_SECONDS
    assert delays == sorted(delays)


def test_expected_remaining_is_the_rest_at_the_pace_so_far():
    assert expected_remaining(50.0, 10.0) == pytest.approx(10.0)
    assert expected_remaining(80.0, 8.0) == pytest.approx(2.0)
    assert expected_remaining(25.0, 60.0) == pytest.approx(180.0)


@pytest.mark.parametrize(
    ("progress", "elapsed"),
    [
        (None, 10.0),
        (0.0, 10.0),  # queued or just started: no pace yet
        (100.0, 10.0),  # done: nothing to estimate
        (150.0, 10.0),
        (-5.0, 10.0),
        (math.nan, 10.0),
        (math.inf, 10.0),
        (50.0, 0.0),
        (50.0, -3.0),  # a worker whose clock is behind the one that submitted
        (50.0, math.nan),
        (50.0, None),  # a resumed run does not know when its render was submitted
    ],
)
def test_odd_or_missing_reports_give_no_estimate_and_the_backoff(progress, elapsed):
    assert expected_remaining(progress, elapsed) is None
    assert next_poll_delay(polls=4, progress=progress, elapsed=elapsed) == poll_delay(4)


def test_progress_moves_the_check_up_to_the_expected_end():
    # 80 % after 8 s: done in about 2 s, sooner than the backoff's 3.05 s after five checks.
    assert poll_delay(5) > 3.0
    assert next_poll_delay(polls=5, progress=80.0, elapsed=8.0) == pytest.approx(2.0)


def test_an_end_later_than_the_backoff_keeps_the_backoff():
    # 10 % after 2 s points 18 s ahead: the backoff's next check comes first, as it did before.
    assert next_poll_delay(polls=1, progress=10.0, elapsed=2.0) == poll_delay(1)
    assert next_poll_delay(polls=30, progress=1.0, elapsed=600.0) == POLL_MAX_SECONDS


def test_never_sooner_than_the_minimum():
    assert next_poll_delay(polls=8, progress=99.0, elapsed=5.0) == POLL_MIN_SECONDS


def test_a_report_stuck_near_the_end_is_checked_at_a_share_of_the_elapsed_time():
    # 99 % after 200 s says "2 s left"; checked every 10 s instead, not every second for minutes.
    delay = next_poll_delay(polls=30, progress=99.0, elapsed=200.0)
    assert delay == pytest.approx(POLL_ELAPSED_SHARE * 200.0)
    assert POLL_MIN_SECONDS < delay < POLL_MAX_SECONDS


def test_the_provider_says_when_to_look_again_however_long():
    assert next_poll_delay(polls=5, progress=80.0, elapsed=8.0, asked=4.0) == 4.0
    assert next_poll_delay(polls=40, asked=120.0) == 120.0
    # As its SDK does: a 500 ms hint is a check every 500 ms, below our own backoff's minimum.
    assert next_poll_delay(polls=5, progress=95.0, elapsed=9.5, asked=0.5) == 0.5


def test_no_hint_turns_waiting_into_a_busy_loop():
    assert next_poll_delay(polls=0, asked=0.001) == POLL_HINT_FLOOR_SECONDS


@pytest.mark.parametrize("asked", [math.nan, -1.0, 0.0])
def test_an_odd_request_from_the_provider_is_ignored(asked):
    assert next_poll_delay(polls=3, asked=asked) == poll_delay(3)


# --- through the pipeline and the in-process runner, against the fake Videos API ----------------------


def _queued_segment(
    user, fake_api, django_capture_on_commit_callbacks, *, latency: float, poll_after_ms: int | None = 50
) -> Segment:
    fake_api.reset(FakeConfig(latency=latency, poll_after_ms=poll_after_ms))
    job = services.video_job_create(
        owner=user, prompt="A lighthouse at night.", duration_seconds=4, segment_seconds=4,
        provider="sora", size="1280x720", use_cache=False,
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=False):  # queued, not dispatched: the test steps it
        job = services.video_job_render(job=job)
    return job.segments.get()


@pytest.mark.django_db
def test_the_provider_progress_schedules_the_next_poll(
    user, fake_api, django_capture_on_commit_callbacks, monkeypatch
):
    # A provider that reports progress but does not say when to look again.
    segment = _queued_segment(
        user, fake_api, django_capture_on_commit_callbacks, latency=40.0, poll_after_ms=None
    )
    generation, lease = segment.job.render_generation, "a" * 32
    writes: list[float] = []
    original = render_state.segment_progress

    def counted(**kwargs):
        writes.append(kwargs["progress"])
        return original(**kwargs)

    monkeypatch.setattr(render_state, "segment_progress", counted)
    before = time.time()
    submitted = pipeline.render_segment(segment_id=segment.id, generation=generation, lease=lease)
    assert isinstance(submitted, PollLater) and submitted.submitted
    # The create records when it was sent; with no hint the first check waits the backoff's minimum.
    assert before <= submitted.submitted_at <= time.time()
    assert submitted.delay == POLL_MIN_SECONDS
    # 32 s into a 40 s render the fake reports 75 %: about 10.7 s left, sooner than the backoff's 14.6 s.
    (video,) = fake_api.state.videos.values()
    video.created -= 32
    since = time.time() - 32
    polled = pipeline.render_segment(
        segment_id=segment.id, generation=generation, lease=lease, polls=12, since=since
    )
    assert isinstance(polled, PollLater) and not polled.submitted and polled.submitted_at is None
    assert Segment.objects.get(id=segment.id).progress == 75
    assert polled.delay == pytest.approx(expected_remaining(75.0, 32.0), abs=0.5)
    assert polled.delay < poll_delay(12)
    # A poll that learns nothing new writes nothing (no row update, no event to the job's viewers).
    shown = len(writes)
    again = pipeline.render_segment(
        segment_id=segment.id, generation=generation, lease=lease, polls=13, since=since
    )
    assert isinstance(again, PollLater) and len(writes) == shown


@pytest.mark.django_db(transaction=True)
def test_every_poll_of_a_render_knows_when_it_was_submitted(user, fake_api, monkeypatch):
    fake_api.reset(FakeConfig(latency=2.5, poll_after_ms=50))
    calls: list[tuple[int, float]] = []
    original = pipeline.render_segment

    def spy(**kwargs):
        calls.append((kwargs.get("polls", 0), kwargs.get("since", 0.0)))
        return original(**kwargs)

    monkeypatch.setattr(pipeline, "render_segment", spy)
    job = services.video_job_create(
        owner=user, prompt="One. Two.", duration_seconds=8, segment_seconds=4, provider="sora",
        size="1280x720", use_cache=False,
    )  # fmt: skip
    services.video_job_render(job=job)
    assert inprocess_runner().wait_idle(timeout=60)
    job.refresh_from_db()
    assert job.status == "completed", job.error
    creates = [since for polls, since in calls if polls == 0]
    polls = [since for polls, since in calls if polls > 0]
    assert creates == [0.0, 0.0] and len(polls) >= 2
    # The runner carried each create's time to every later step of that render.
    assert all(since > 0 for since in polls) and len(set(polls)) == 2
