"""How deliveries reach a worker and how events reach the listener: the transport's countdown, the
sweep that re-sends lost deliveries, and the events seam with several listeners."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery import current_app
from django.utils import timezone

from callbacks import services
from callbacks.models import CallbackEvent, Delivery, DeliveryStatus
from jobs import events
from rendering import transport

pytestmark = pytest.mark.django_db


def test_a_retry_is_a_celery_countdown_on_the_fleet(settings, monkeypatch):
    settings.TASK_RUNNER = "celery"
    sent = []
    task = current_app.tasks[transport.DELIVER_WEBHOOK]
    monkeypatch.setattr(task, "apply_async", lambda **kwargs: sent.append(kwargs))
    transport.enqueue_in(12.5, transport.DELIVER_WEBHOOK, 7)
    assert sent == [{"args": (7,), "countdown": 12.5}]


def test_a_retry_is_a_timer_in_process(settings, monkeypatch):
    settings.TASK_RUNNER = "inprocess"
    later = []
    runner = transport.inprocess_runner()
    monkeypatch.setattr(
        runner, "submit_later", lambda task, args, kwargs, delay: later.append((task.name, args, delay))
    )
    transport.enqueue_in(3.0, transport.DELIVER_WEBHOOK, 7)
    assert later == [(transport.DELIVER_WEBHOOK, (7,), 3.0)]


def test_the_sweep_resends_overdue_deliveries_only(user, make_job, queued, settings):
    settings.CALLBACK_SWEEP_SECONDS = 60
    endpoint = services.endpoint_create(owner=user, url="https://hooks.example.com/x")
    job = make_job()
    now = timezone.now()

    def delivery(name: str, status: str, due: object) -> Delivery:
        event = CallbackEvent.objects.create(id=name, type="job.completed", job=job, payload={})
        return Delivery.objects.create(endpoint=endpoint, event=event, status=status, next_attempt_at=due)

    lost = delivery("lost", DeliveryStatus.PENDING, now - timedelta(minutes=5))
    delivery("waiting", DeliveryStatus.PENDING, now + timedelta(minutes=5))
    delivery("just-due", DeliveryStatus.PENDING, now - timedelta(seconds=5))  # its task is on its way
    delivery("done", DeliveryStatus.SUCCEEDED, None)
    assert services.deliveries_sweep() == 1
    assert queued == [(0.0, transport.DELIVER_WEBHOOK, (lost.id,))]


def test_every_listener_hears_every_event_even_if_one_fails(monkeypatch, django_capture_on_commit_callbacks):
    heard: list[tuple[str, str]] = []

    def broken(*args, **kwargs):
        raise RuntimeError("socket layer down")

    monkeypatch.setattr(events, "_publisher", broken)
    monkeypatch.setattr(
        events, "_listeners", [lambda job_id, event, data, job=None: heard.append((job_id, event))]
    )
    with django_capture_on_commit_callbacks(execute=True):
        events.publish_after_commit("j1", events.JOB_STATUS, {"status": "rendering"})
    assert heard == [("j1", events.JOB_STATUS)]


def test_the_callbacks_listener_is_plugged_in_beside_realtime():
    from callbacks.listeners import on_job_event
    from realtime.broadcast import publish

    assert events._publisher is publish
    assert on_job_event in events._listeners


def test_the_embedded_runner_sweeps_deliveries_beside_the_reaper(monkeypatch):
    ran = []
    monkeypatch.setattr(transport, "_sweep_fn", lambda: ran.append("reaper"))

    def failing() -> None:
        ran.append("failing")
        raise RuntimeError("database restarting")

    monkeypatch.setattr(transport, "_extra_sweeps", [failing, lambda: ran.append("deliveries")])
    transport._sweep_all()
    assert ran == ["reaper", "failing", "deliveries"]


def test_the_callbacks_sweep_is_registered():
    assert services.deliveries_sweep in transport._extra_sweeps
