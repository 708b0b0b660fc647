"""Recovery from database state (jobs.leases + rendering.reaper): lost work is resumed once its lease
expires, live work is left alone, and a lost run that comes back touches nothing."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import leases, render_state, services
from jobs.models import JobStatus, Segment, SegmentStatus, VideoJob
from rendering import dispatch, pipeline, reaper, transport
from tests.factories import VideoJobFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """What the reaper and dispatch send to the workers (nothing runs)."""
    calls: list[tuple[str, tuple, dict]] = []

    def record(name, *args, **kwargs):
        calls.append((name, args, kwargs))

    monkeypatch.setattr(reaper, "enqueue", record)
    monkeypatch.setattr(dispatch, "enqueue", record)
    return calls


def queued_job(user, capture, **fields) -> VideoJob:
    """A three-segment job whose run was queued, with the hand-over to the workers not yet made."""
    job = services.video_job_create(
        owner=user,
        prompt="One. Two. Three.",
        duration_seconds=3,
        segment_seconds=1,
        strategy="sentences",
        **fields,
    )
    with capture(execute=False):
        return services.video_job_render(job=job)


def expire(model, **filters) -> None:
    model.objects.filter(**filters).update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def test_a_rendering_segment_is_left_alone_while_its_lease_lives(
    user, sent, django_capture_on_commit_callbacks
):
    job = queued_job(user, django_capture_on_commit_callbacks)
    dispatch.enqueue_render(job.id, job.render_generation)
    sent.clear()
    for segment in job.segments.all():
        render_state.segment_claim(
            segment_id=segment.id, generation=job.render_generation, token=f"run-{segment.index}"
        )
    assert reaper.reap_stale() == {"segments": 0, "jobs": 0, "assemblies": 0}
    assert sent == []


def test_a_lost_run_is_resumed_once_with_a_new_token(user, sent, django_capture_on_commit_callbacks):
    job = queued_job(user, django_capture_on_commit_callbacks)
    first = job.segments.get(index=0)
    render_state.segment_claim(segment_id=first.id, generation=job.render_generation, token="lost-run")
    expire(Segment, id=first.id)
    assert reaper.reap_stale()["segments"] == 1
    [(name, args, kwargs)] = [call for call in sent if call[1][1] == first.id]
    assert name == transport.RENDER_SEGMENT and args == (str(job.id), first.id, job.render_generation)
    first.refresh_from_db()
    assert kwargs["lease"] == first.lease_token != "lost-run"
    # Claimed: a second sweep (or a second reaper) finds nothing until the new lease expires too.
    sent.clear()
    assert reaper.reap_stale()["segments"] == 0 and sent == []


def test_the_lost_run_coming_back_late_touches_nothing(user, sent, django_capture_on_commit_callbacks):
    job = queued_job(user, django_capture_on_commit_callbacks)
    first = job.segments.get(index=0)
    render_state.segment_claim(segment_id=first.id, generation=job.render_generation, token="lost-run")
    render_state.segment_set_provider_task(segment_id=first.id, task_id="video_1", provider_status="queued")
    expire(Segment, id=first.id)
    reaper.reap_stale()
    first.refresh_from_db()
    before = (first.status, first.attempts, first.lease_token, first.lease_expires_at, first.updated_at)
    # The lost run's countdown message is redelivered (an hour later, from the dead worker's unacked set).
    step = pipeline.render_segment(segment_id=first.id, generation=job.render_generation, lease="lost-run")
    assert step == pipeline.SUPERSEDED
    first.refresh_from_db()
    assert (
        first.status,
        first.attempts,
        first.lease_token,
        first.lease_expires_at,
        first.updated_at,
    ) == before
    # The new run takes the step.
    assert render_state.segment_claim(segment_id=first.id, generation=job.render_generation, token=before[2])


def test_of_two_messages_for_a_queued_segment_the_first_claims_it(user, django_capture_on_commit_callbacks):
    job = queued_job(user, django_capture_on_commit_callbacks)
    first = job.segments.get(index=0)
    claimed = render_state.segment_claim(segment_id=first.id, generation=job.render_generation, token="a")
    assert claimed is not None and claimed.attempts == 1
    with pytest.raises(render_state.LeaseHeld):
        render_state.segment_claim(segment_id=first.id, generation=job.render_generation, token="b")
    first.refresh_from_db()
    assert (first.lease_token, first.attempts) == ("a", 1)


def test_a_lost_start_is_sent_again_after_requeue_after(user, sent, django_capture_on_commit_callbacks):
    job = queued_job(user, django_capture_on_commit_callbacks)  # the hand-over after commit never ran
    job.refresh_from_db()
    assert job.lease_expires_at is not None
    assert reaper.reap_stale() == {"segments": 0, "jobs": 0, "assemblies": 0}
    expire(VideoJob, id=job.id)
    assert reaper.reap_stale()["jobs"] == 1
    assert sorted(args[1] for _, args, _ in sent) == sorted(job.segments.values_list("id", flat=True))
    # Each sent segment now expects a worker within REQUEUE_AFTER_SECONDS; if none comes it is sent again.
    sent.clear()
    expire(Segment, job=job)
    assert reaper.reap_stale()["segments"] == 3
    assert {kwargs["lease"] for *_, kwargs in sent} == {""}  # queued: any message may claim it


def test_a_chain_sends_only_its_next_segment_and_followers_are_never_reaped(
    user, sent, django_capture_on_commit_callbacks
):
    job = queued_job(user, django_capture_on_commit_callbacks, continuity="chain")
    expire(VideoJob, id=job.id)
    reaper.reap_stale()
    first, second, _ = job.segments.order_by("index")
    assert [args[1] for _, args, _ in sent] == [first.id]
    second.refresh_from_db()
    assert second.lease_expires_at is None
    sent.clear()
    assert reaper.reap_stale() == {"segments": 0, "jobs": 0, "assemblies": 0}


def test_a_lost_step_after_the_last_segment_assembles(user, sent, django_capture_on_commit_callbacks):
    job = queued_job(user, django_capture_on_commit_callbacks)
    dispatch.enqueue_render(job.id, job.render_generation)
    sent.clear()
    Segment.objects.filter(job=job).update(status=SegmentStatus.COMPLETED, lease_expires_at=None)
    leases.job_expect_progress(job.id)  # what settling the last segment records
    expire(VideoJob, id=job.id)
    assert reaper.reap_stale()["jobs"] == 1
    assert sent == [(transport.ASSEMBLE_JOB, (str(job.id), job.render_generation), {})]


def test_a_dead_assembler_is_replaced_once_its_lease_expires(user, sent, django_capture_on_commit_callbacks):
    job = queued_job(user, django_capture_on_commit_callbacks)
    Segment.objects.filter(job=job).update(status=SegmentStatus.COMPLETED)
    started = render_state.job_assembly_start(job_id=job.id, generation=job.render_generation, token="dead")
    assert started is not None and started.status == JobStatus.ASSEMBLING
    # While its lease lives, another assembly run stands aside.
    assert (
        render_state.job_assembly_start(job_id=job.id, generation=job.render_generation, token="other")
        is None
    )
    assert reaper.reap_stale()["assemblies"] == 0
    expire(VideoJob, id=job.id)
    assert reaper.reap_stale()["assemblies"] == 1
    [(name, args, kwargs)] = sent
    assert args == (str(job.id), job.render_generation)
    assert name == transport.ASSEMBLE_JOB and kwargs["lease"] not in ("", "dead")
    again = render_state.job_assembly_start(
        job_id=job.id, generation=job.render_generation, token=kwargs["lease"]
    )
    assert again is not None and again.id == job.id


def test_finished_or_cancelled_work_is_left_alone(user, sent, django_capture_on_commit_callbacks):
    job = queued_job(user, django_capture_on_commit_callbacks)
    first = job.segments.get(index=0)
    render_state.segment_claim(segment_id=first.id, generation=job.render_generation, token="run")
    services.video_job_cancel(job=job)
    expire(Segment, job=job)
    expire(VideoJob, id=job.id)
    assert reaper.reap_stale() == {"segments": 0, "jobs": 0, "assemblies": 0}
    assert sent == []


def test_a_webhook_takes_over_only_a_waiting_segment_and_only_once(user, django_capture_on_commit_callbacks):
    job = queued_job(user, django_capture_on_commit_callbacks)
    first = job.segments.get(index=0)
    render_state.segment_claim(segment_id=first.id, generation=job.render_generation, token="poller")
    render_state.segment_set_provider_task(segment_id=first.id, task_id="video_1")
    # A step is running: the webhook leaves the segment to that step, which then polls again at once
    # instead of waiting out its countdown (it may have polled just before the task finished).
    assert leases.segment_take_over_waiting(first.id, "video_1") is None
    assert leases.segment_wait(first.id, "poller", 15.0) == 0.0
    assert leases.segment_wait(first.id, "poller", 15.0) == 15.0
    assert leases.segment_take_over_waiting(first.id, "video_other") is None  # not the task it waits on
    taken = leases.segment_take_over_waiting(first.id, "video_1")
    assert taken and leases.segment_take_over_waiting(first.id, "video_1") is None  # a duplicate: nothing
    # The poller's countdown comes back: superseded, and it does not schedule itself again.
    assert leases.segment_wait(first.id, "poller", 15.0) is None
    with pytest.raises(render_state.LeaseHeld):
        render_state.segment_claim(segment_id=first.id, generation=job.render_generation, token="poller")


@pytest.mark.django_db(transaction=True)
def test_a_heartbeat_keeps_a_long_step_leased(user, settings):
    from rendering.heartbeat import heartbeat

    settings.LEASE_SECONDS = 0.6
    job = VideoJobFactory(owner=user, shots=["A fox runs."])
    segment = job.segments.get()
    Segment.objects.filter(id=segment.id).update(status=SegmentStatus.RENDERING)
    assert leases.segment_take(segment.id, "worker")
    beats: list[bool] = []
    original = leases.segment_beat

    def beat() -> bool:
        beats.append(original(segment.id, "worker"))
        return beats[-1]

    with heartbeat(beat, what="test"):
        time.sleep(1.5)  # more than two leases long
        segment.refresh_from_db()
        assert segment.lease_expires_at > timezone.now()
    assert len(beats) >= 3 and all(beats)
    # No beat after the block: a worker that stopped (or died) lets the lease run out.
    count = len(beats)
    time.sleep(0.5)
    assert len(beats) == count


def test_render_segment_is_routed_to_submit_and_polls_to_poll(settings):
    from sora_controller.celery import app

    router = app.amqp.router
    assert router.route({}, "rendering.render_segment")["queue"].name == "submit"
    assert router.route({}, "rendering.assemble_job")["queue"].name == "assemble"
    assert settings.POLL_QUEUE == "poll"
    assert "reap-stale-work" in settings.CELERY_BEAT_SCHEDULE


def test_a_send_the_broker_refuses_is_left_to_the_reaper(settings, monkeypatch, caplog):
    from kombu.exceptions import OperationalError

    settings.TASK_RUNNER = "celery"
    task = transport.current_app.tasks[transport.RENDER_SEGMENT]

    def refuse(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(task, "apply_async", refuse)
    transport.enqueue(transport.RENDER_SEGMENT, "job", 1, 1)  # does not raise
    assert "the reaper will send it again" in caplog.text


def test_the_in_process_runner_sweeps_on_its_own(monkeypatch):
    calls: list[float] = []
    runner = transport.InProcessRunner(1, sweep=lambda: calls.append(time.monotonic()), sweep_every=0.05)
    try:
        deadline = time.monotonic() + 5
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        runner.stop_sweeping()
    assert len(calls) >= 2
    settled = len(calls)
    time.sleep(0.2)
    assert len(calls) <= settled + 1  # stopped
