"""Leases: how stalled work is found in seconds, from database state alone, without double creates.

Work in flight can be lost in many ways: a worker SIGKILLed mid-poll (its countdown message sits
unacknowledged with the dead worker until the broker's visibility timeout, an hour), a broker restarted
without persistence (every queued and countdown message gone), an assembler killed mid-assembly, a
process that died between committing a result and sending the next task. Instead of guessing from a
fixed staleness (it was 10 minutes), every piece of work says by when it will come back:

- A segment being worked on holds a lease: the token of the render_segment run that owns it and an
  expiry. The run renews it by heartbeat while it works (rendering.heartbeat, every LEASE_SECONDS / 3)
  and, when it goes to wait for the provider, sets it to its poll countdown plus LEASE_SECONDS.
- A queued segment expects a worker within REQUEUE_AFTER_SECONDS of being sent.
- A job expects to move on (its run to start, the step after a settled segment, its assembly to begin)
  within REQUEUE_AFTER_SECONDS; an assembling job holds a lease renewed by the assembler's heartbeat.

The reaper (rendering.reaper, every REAPER_INTERVAL_SECONDS) resumes whatever is past its expiry. The
worst case from a crash to recovery is therefore about LEASE_SECONDS plus the longest poll wait plus
REAPER_INTERVAL_SECONDS (20 + 15 + 5 s by default), and REQUEUE_AFTER_SECONDS plus the interval for a
lost message (25 + 5 s).

No double creates: only the holder of a segment's lease may take a step on it. Taking a step is one
conditional UPDATE (the token matches, or there is none, or it has expired), so of two runs only one
proceeds, the other returns without touching anything. A queued segment is claimed by the single UPDATE
that moves it to rendering, so every message that reaches it is valid and the first one wins. A
provider's webhook takes over only a segment that is waiting between polls (`lease_waiting`), so a burst
of duplicate webhooks starts one step, not one poll chain each.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from .models import (
    IN_FLIGHT_SEGMENT_STATUSES,
    RENDERING_JOB_STATUSES,
    JobStatus,
    Segment,
    SegmentStatus,
    VideoJob,
)


def new_token() -> str:
    return uuid.uuid4().hex


def _in(seconds: float) -> datetime:
    return timezone.now() + timedelta(seconds=seconds)


def _free_or(token: str) -> Q:
    """The lease is ours, unheld, or expired."""
    return Q(lease_token=token) | Q(lease_token="") | Q(lease_expires_at__lt=timezone.now())


def working_fields(token: str) -> dict[str, object]:
    """The lease columns of a segment a run starts working on (written with the claim itself)."""
    return {
        "lease_token": token,
        "lease_expires_at": _in(settings.LEASE_SECONDS),
        "lease_waiting": False,
        "lease_poked": False,  # this step polls anyway
    }


# --- Segments ---------------------------------------------------------------------------------------


def segment_expect_start(segment_ids: Iterable[int]) -> None:
    """Segments about to be sent to the workers: a worker must pick each up within REQUEUE_AFTER_SECONDS,
    or the reaper sends it again (a duplicate message only repeats a check)."""
    Segment.objects.filter(id__in=list(segment_ids), status=SegmentStatus.QUEUED).update(
        lease_token="", lease_expires_at=_in(settings.REQUEUE_AFTER_SECONDS), lease_waiting=False
    )


def segment_take(segment_id: int, token: str) -> bool:
    """Take the next step on a rendering segment: True when the lease is ours (or free, or expired) and
    is now ours for LEASE_SECONDS; False when another run holds it."""
    return (
        Segment.objects.filter(_free_or(token), id=segment_id, status=SegmentStatus.RENDERING).update(
            **working_fields(token)
        )
        == 1
    )


def segment_let_go(segment_id: int, token: str) -> None:
    """Give back a lease the run `token` took by mistake (the segment belongs to a newer run of its
    job): expired again, so the reaper resumes the segment at its next sweep, as it would have."""
    Segment.objects.filter(id=segment_id, lease_token=token).update(lease_expires_at=timezone.now())


def segment_holds(segment_id: int, token: str) -> bool:
    return Segment.objects.filter(id=segment_id, lease_token=token).exists()


def segment_beat(segment_id: int, token: str) -> bool:
    """Heartbeat of a run working on the segment; False when the lease is no longer ours."""
    return (
        Segment.objects.filter(
            id=segment_id, lease_token=token, status__in=IN_FLIGHT_SEGMENT_STATUSES
        ).update(lease_expires_at=_in(settings.LEASE_SECONDS))
        == 1
    )


def segment_wait(segment_id: int, token: str, delay: float) -> float | None:
    """The run goes to wait `delay` seconds (a poll countdown, a backoff, a rate limit): it will be back
    by then, and is presumed lost LEASE_SECONDS later. Returns the delay to wait: `delay`, or 0 when a
    webhook said the task finished while this step ran (poll again now). None when the lease is no
    longer ours (another run took the segment over): the caller must not schedule itself again."""
    mine = Segment.objects.filter(id=segment_id, lease_token=token, status=SegmentStatus.RENDERING)
    if mine.filter(lease_poked=False).update(
        lease_expires_at=_in(max(0.0, delay) + settings.LEASE_SECONDS), lease_waiting=True
    ):
        return delay
    if mine.filter(lease_poked=True).update(lease_poked=False, lease_expires_at=_in(settings.LEASE_SECONDS)):
        return 0.0
    return None


def segment_take_over_waiting(segment_id: int, provider_task_id: str) -> str | None:
    """A provider says the task this segment waits on has finished: take the segment over from the run
    that waits between polls, so the next step happens now. Returns the new run's token, or None when
    the segment is not waiting on that task: it settled or moved on to another task (nothing to do),
    or a step is running (a webhook's or a poll's): that step is poked to poll again when it ends."""
    token = new_token()
    on_task = Segment.objects.filter(
        id=segment_id, status=SegmentStatus.RENDERING, provider_task_id=provider_task_id
    )
    taken = on_task.filter(
        Q(lease_waiting=True) | Q(lease_token="") | Q(lease_expires_at__lt=timezone.now())
    ).update(**working_fields(token))
    if taken:
        return token
    # A step is running: it may already have polled before the task finished, so tell it to poll again
    # at once rather than wait out its countdown.
    on_task.filter(lease_waiting=False).update(lease_poked=True)
    return None


def segments_expired_claim() -> list[tuple[str, int, int, str]]:
    """In-flight segments past their lease, each claimed for one new run: [(job_id, segment_id,
    generation, token)]. A rendering segment gets the new run's token (the lost run, if it ever comes
    back, finds the lease taken); a queued one is simply sent again. Each claim is a conditional UPDATE,
    so two reapers never both resume a segment."""
    now = timezone.now()
    claimed: list[tuple[str, int, int, str]] = []
    candidates = Segment.objects.filter(
        status__in=IN_FLIGHT_SEGMENT_STATUSES,
        lease_expires_at__lt=now,
        job__status__in=RENDERING_JOB_STATUSES,
    ).values_list("id", "job_id", "job__render_generation", "status", "lease_expires_at")
    for segment_id, job_id, generation, status, expires_at in candidates:
        token = new_token() if status == SegmentStatus.RENDERING else ""
        lease = {"lease_token": token} if token else {}
        if (
            Segment.objects.filter(id=segment_id, lease_expires_at=expires_at).update(
                lease_expires_at=_in(settings.REQUEUE_AFTER_SECONDS), lease_waiting=False, **lease
            )
            == 1
        ):
            claimed.append((str(job_id), segment_id, generation, token))
    return claimed


# --- Jobs -------------------------------------------------------------------------------------------


def job_expect_progress(job_id: uuid.UUID | str) -> None:
    """The job must move on within REQUEUE_AFTER_SECONDS (its run starts, the step after a settled
    segment is taken, its assembly begins), or the reaper resumes it from its state."""
    VideoJob.objects.filter(id=job_id, status__in=RENDERING_JOB_STATUSES).update(
        lease_expires_at=_in(settings.REQUEUE_AFTER_SECONDS)
    )


def job_moved_on(job_id: uuid.UUID | str) -> None:
    """Nothing is expected of the job itself now (its segments hold their own leases)."""
    VideoJob.objects.filter(id=job_id, status__in=RENDERING_JOB_STATUSES).update(lease_expires_at=None)


def job_assembly_fields(token: str) -> dict[str, object]:
    return {"lease_token": token, "lease_expires_at": _in(settings.LEASE_SECONDS)}


def job_take_assembly(job_id: uuid.UUID | str, token: str) -> bool:
    """Resume an assembly a lost assembler left: only when its lease is ours, free or expired."""
    return (
        VideoJob.objects.filter(_free_or(token), id=job_id, status=JobStatus.ASSEMBLING).update(
            **job_assembly_fields(token)
        )
        == 1
    )


def job_beat(job_id: uuid.UUID | str, token: str) -> bool:
    return (
        VideoJob.objects.filter(id=job_id, lease_token=token, status=JobStatus.ASSEMBLING).update(
            lease_expires_at=_in(settings.LEASE_SECONDS)
        )
        == 1
    )


def jobs_expired_claim() -> list[tuple[str, int, str, str]]:
    """Jobs past their lease, each claimed once: [(job_id, generation, status, token)]. An assembling
    job gets a new assembly run's token; a queued or rendering one is resumed from its state."""
    now = timezone.now()
    claimed: list[tuple[str, int, str, str]] = []
    candidates = VideoJob.objects.filter(
        status__in={*RENDERING_JOB_STATUSES, JobStatus.ASSEMBLING}, lease_expires_at__lt=now
    ).values_list("id", "render_generation", "status", "lease_expires_at")
    for job_id, generation, status, expires_at in candidates:
        token = new_token() if status == JobStatus.ASSEMBLING else ""
        lease = {"lease_token": token} if token else {}
        if (
            VideoJob.objects.filter(id=job_id, lease_expires_at=expires_at).update(
                lease_expires_at=_in(settings.REQUEUE_AFTER_SECONDS), **lease
            )
            == 1
        ):
            claimed.append((str(job_id), generation, status, token))
    return claimed
