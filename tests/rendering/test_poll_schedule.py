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
from rendering.pipeline import PollLater
from rendering.poll_schedule import (
    POLL_ELAPSED_SHARE,
    POLL_HINT_FLOOR_SECONDS,
    POLL_MAX_SECONDS,
    POLL_MIN_SECONDS,
    Pace,
    expected_remaining,
    next_poll_delay,
    observe,
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


def test_the_provider_says_how_soon_it_may_be_asked_again():
    # Never sooner than asked, however close the end looks...
    assert next_poll_delay(polls=5, progress=80.0, elapsed=8.0, asked=4.0) == 4.0
    assert next_poll_delay(polls=40, asked=120.0) == 120.0
    # ...and as soon as asked (below our own minimum) when the end is that near, as its SDK would.
    assert next_poll_delay(polls=5, progress=95.0, elapsed=9.5, asked=0.5) == 0.5


def test_a_short_hint_far_from_the_end_is_not_a_reason_to_ask_every_hint():
    # 10 % after 2 s with a 500 ms hint: the end is ~18 s away, so the backoff's next check, not 0.5 s.
    assert next_poll_delay(polls=2, progress=10.0, elapsed=2.0, asked=0.5) == poll_delay(2)
    # Without any report of progress the backoff it is, too.
    assert next_poll_delay(polls=3, asked=0.5) == poll_delay(3)


def test_no_hint_turns_waiting_into_a_busy_loop():
    assert next_poll_delay(polls=8, progress=99.9, elapsed=1.0, asked=0.001) == POLL_HINT_FLOOR_SECONDS


@pytest.mark.parametrize("asked", [math.nan, -1.0, 0.0])
def test_an_odd_request_from_the_provider_is_ignored(asked):
    assert next_poll_delay(polls=3, asked=asked) == poll_delay(3)
    assert next_poll_delay(polls=8, progress=99.0, elapsed=5.0, asked=asked) == POLL_MIN_SECONDS


# --- Pace: the end that a change of progress points to ------------------------------------------------


def test_a_value_that_moved_points_to_the_end_from_the_check_before_the_move():
    # Submitted at t=100; read 50 % at t=105 and 75 % at t=108: 75 % was crossed after t=105, 5 s in, so
    # the render ends no sooner than 100 + 5 * 100 / 75.
    pace = Pace(50.0, 105.0).after(75.0, 108.0, since=100.0)
    assert pace.progress == 75.0 and pace.seen_at == 108.0
    assert pace.end_at == pytest.approx(100.0 + 5.0 * 100 / 75)


def test_steps_of_a_quarter_are_placed_where_they_were_crossed_not_where_they_were_read():
    # A 10 s render reported in steps of 25 % and checked every 0.5 s: "75" reads the same from 7.5 s to
    # 10 s, so the rest at the pace so far says 2.5 to 3.3 s left: up to 3.3 s late. The crossing puts the
    # end at most a check's worth (times 4/3) early, never late.
    since, pace, checks = 1000.0, None, [1000.0 + 0.5 * n for n in range(1, 20)]
    for now in checks:
        progress = min(99, int((now - since) / 10 * 4) / 4 * 100)
        pace = observe(pace, progress, now, since)
        if now - since >= 7.5:
            assert since + 10.0 - 0.5 * 4 / 3 - 1e-9 <= pace.end_at <= since + 10.0
    assert expected_remaining(75.0, 9.5) > 3 * 0.5  # what the reading alone said, half a second before


def test_the_same_value_again_moves_the_last_reading_on_and_keeps_the_end():
    pace = Pace(50.0, 105.0, end_at=110.0).after(50.0, 106.0, since=100.0)
    assert (pace.progress, pace.seen_at, pace.end_at) == (50.0, 106.0, 110.0)


@pytest.mark.parametrize("progress", [None, math.nan, -1.0, 40.0])  # 40: a report going back
def test_odd_or_backward_readings_change_nothing(progress):
    before = Pace(50.0, 105.0, end_at=110.0)
    assert before.after(progress, 106.0, since=100.0) == before


def test_without_the_submit_time_a_change_gives_no_end():
    assert Pace(50.0, 105.0).after(75.0, 108.0, since=0.0).end_at is None
    # And a reading of 100 (done) or of the end from an earlier change keeps that end.
    assert Pace(75.0, 105.0, end_at=109.0).after(100.0, 108.0, since=100.0).end_at == 109.0


@pytest.mark.parametrize(
    "value",
    [None, [], [1, 2], [50.0, "x", None], [50.0, math.nan, None], [True, 1.0, None], "50,1,2", {"a": 1}],
)
def test_a_pace_from_a_message_is_checked(value):
    assert Pace.from_task_arg(value) is None


def test_a_pace_travels_as_json_and_back():
    pace = Pace(75.0, 1_700_000_000.5, end_at=1_700_000_003.25)
    assert Pace.from_task_arg(pace.as_task_arg()) == pace
    assert Pace.from_task_arg([0, 12, None]) == Pace(0.0, 12.0)


def test_the_end_from_the_pace_moves_the_check_up_and_past_it_the_hint_paces_the_checks():
    assert next_poll_delay(polls=6, progress=75.0, elapsed=8.0, asked=0.5, end_in=1.2) == 1.2
    assert next_poll_delay(polls=6, progress=75.0, elapsed=8.0, asked=0.5, end_in=-0.3) == 0.5
    # An end in the past without a hint: the minimum, and a long render's elapsed share.
    assert next_poll_delay(polls=6, progress=75.0, elapsed=8.0, end_in=-0.3) == POLL_MIN_SECONDS
    assert next_poll_delay(polls=30, progress=99.0, elapsed=200.0, end_in=-5.0) == pytest.approx(10.0)


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


@pytest.mark.django_db(transaction=True)
def test_a_short_hint_is_not_a_check_every_hint_when_progress_says_the_end_is_far(
    user, fake_api, monkeypatch
):
    # A 4 s render reported in quarters, and a provider that allows a check every 250 ms: taken as the
    # interval, that is some 16 checks; the pace puts the checks where the end is (about 7).
    fake_api.reset(FakeConfig(latency=4.0, poll_after_ms=250, progress_steps=4))
    paces: list = []
    original = pipeline.render_segment

    def spy(**kwargs):
        paces.append(kwargs.get("pace"))
        return original(**kwargs)

    monkeypatch.setattr(pipeline, "render_segment", spy)
    job = services.video_job_create(
        owner=user, prompt="A lighthouse at night.", duration_seconds=4, segment_seconds=4,
        provider="sora", size="1280x720", use_cache=False,
    )  # fmt: skip
    services.video_job_render(job=job)
    assert inprocess_runner().wait_idle(timeout=60)
    job.refresh_from_db()
    assert job.status == "completed", job.error
    (video,) = fake_api.state.videos.values()
    assert video.seen_done_at is not None
    assert fake_api.stats.polls <= 10, fake_api.stats.polls
    # The runner carried what the checks saw from step to step, and a change of value gave an end.
    assert paces[0] is None and all(isinstance(p, Pace) for p in paces[2:])
    assert any(p.end_at is not None for p in paces[2:])
