"""Budget caps: a job or render that would go over a cap is refused, naming the cap, before any
provider call (the fake Videos API counts every call)."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from jobs import budget, ledger, services
from jobs.errors import InvalidInput
from jobs.models import JobStatus, SegmentStatus, SpendEntry, SpendKind, VideoJob
from rendering.transport import inprocess_runner
from tests.spend.conftest import ONE_SORA_CLIP

from .conftest import SHOTS, finish, render, sora_job

THREE_TWELVES = ("Dawn over the bay.", "Boats leave the harbour.", "Gulls follow them.")


def spent_before(owner, amount: str, *, when=None) -> SpendEntry:
    """A line of earlier spend (its job long deleted)."""
    fields = {"created_at": when} if when is not None else {}
    return SpendEntry.objects.create(
        owner=owner,
        kind=SpendKind.RENDER,
        amount_usd=Decimal(amount),
        provider="sora",
        model="sora-2",
        **fields,
    )


def assert_no_provider_calls(fake_api) -> None:
    assert inprocess_runner().wait_idle(timeout=10)
    stats = fake_api.stats
    assert (stats.creates, stats.polls, stats.downloads, stats.rejected_429) == (0, 0, 0, 0)


@pytest.mark.django_db(transaction=True)
def test_a_job_over_the_per_job_cap_is_refused_at_creation(fake_api, no_caps, user):
    no_caps.BUDGET_JOB_MAX_USD = Decimal("2.00")
    with pytest.raises(InvalidInput) as refused:
        sora_job(user, prompts=THREE_TWELVES, duration_seconds=36, segment_seconds=12)
    assert refused.value.errors == {
        "budget": [
            "this job is estimated at $3.60 (36 billed seconds at $0.10/s); the per-job budget "
            "(BUDGET_JOB_MAX_USD) is $2.00. Shorten the video, choose a cheaper model or size, or ask an "
            "operator to raise the cap."
        ]
    }
    assert not VideoJob.objects.exists()
    assert_no_provider_calls(fake_api)


@pytest.mark.django_db(transaction=True)
def test_a_render_over_the_daily_cap_is_refused_with_the_numbers_and_no_provider_call(
    fake_api, no_caps, user
):
    no_caps.BUDGET_USER_DAILY_USD = Decimal("5.00")
    spent_before(user, "2.00")
    job = sora_job(user, prompts=THREE_TWELVES, duration_seconds=36, segment_seconds=12)
    assert job.cost_estimate_usd == Decimal("3.60")

    with pytest.raises(InvalidInput) as refused:
        services.video_job_render(job=job)

    assert refused.value.errors == {
        "budget": [
            "this render would cost $3.60; your daily budget (BUDGET_USER_DAILY_USD) is $5.00 and $2.00 is "
            "already spent today"
        ]
    }
    job.refresh_from_db()
    assert job.status == JobStatus.DRAFT and job.render_generation == 0
    assert set(job.segments.values_list("status", flat=True)) == {SegmentStatus.PENDING}
    assert_no_provider_calls(fake_api)


@pytest.mark.django_db
def test_renders_in_progress_hold_their_estimate_so_two_cannot_slip_under_the_cap(
    no_caps, user, django_capture_on_commit_callbacks
):
    no_caps.BUDGET_USER_DAILY_USD = Decimal("1.00")
    first = sora_job(user, prompts=SHOTS[:2])  # $0.80
    second = sora_job(user, prompts=SHOTS[2:])  # $0.40
    with django_capture_on_commit_callbacks(execute=False):
        services.video_job_render(job=first)  # queued: nothing spent yet, $0.80 reserved

    with pytest.raises(InvalidInput) as refused:
        services.video_job_render(job=second)
    assert refused.value.errors["budget"] == [
        "this render would cost $0.40; your daily budget (BUDGET_USER_DAILY_USD) is $1.00 and $0.80 is "
        "already spent or reserved today ($0.00 spent, $0.80 held by renders in progress)"
    ]

    # Once the first run stops, its reservation is gone.
    services.video_job_cancel(job=first)
    with django_capture_on_commit_callbacks(execute=False):
        assert services.video_job_render(job=second).status == JobStatus.QUEUED


@pytest.mark.django_db
def test_the_monthly_window_counts_this_month_only(no_caps, user, django_capture_on_commit_callbacks):
    no_caps.BUDGET_USER_MONTHLY_USD = Decimal("5.00")
    start = ledger.month_start()
    spent_before(user, "4.50", when=start)
    spent_before(user, "100.00", when=start - timedelta(seconds=1))  # last month
    spent_before(get_user_model().objects.create(username="carol"), "100.00")  # someone else
    with pytest.raises(InvalidInput) as refused:
        services.video_job_render(job=sora_job(user, prompts=SHOTS[:2]))  # $0.80
    assert refused.value.errors["budget"] == [
        "this render would cost $0.80; your monthly budget (BUDGET_USER_MONTHLY_USD) is $5.00 and $4.50 is "
        "already spent this month"
    ]
    with django_capture_on_commit_callbacks(execute=False):
        assert services.video_job_render(job=sora_job(user)).status == JobStatus.QUEUED  # $0.40 fits


@pytest.mark.django_db(transaction=True)
def test_the_per_job_cap_counts_what_the_job_already_spent_on_rerender(fake_api, no_caps, user):
    no_caps.BUDGET_JOB_MAX_USD = Decimal("2.00")
    job = render(sora_job(user, prompts=SHOTS))  # $1.20
    job = finish(services.segment_rerender(job=job, indexes=[0]))  # + $0.40 = $1.60
    assert job.status == JobStatus.COMPLETED and job.cost_spent_usd == Decimal("1.60")
    creates = fake_api.stats.creates

    with pytest.raises(InvalidInput) as refused:
        services.segment_rerender(job=job, indexes=[0, 1, 2])
    assert refused.value.errors["budget"] == [
        "this render would cost $1.20; the per-job budget (BUDGET_JOB_MAX_USD) is $2.00 and this job has "
        "already spent $1.60"
    ]
    assert inprocess_runner().wait_idle(timeout=10)
    assert fake_api.stats.creates == creates == 4
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED


@pytest.mark.django_db
def test_a_free_provider_is_never_refused(no_caps, user, django_capture_on_commit_callbacks):
    no_caps.BUDGET_JOB_MAX_USD = no_caps.BUDGET_USER_DAILY_USD = Decimal("0.01")
    spent_before(user, "50.00")
    job = services.video_job_create(owner=user, prompt="A kite.", duration_seconds=4, size="320x240")
    with django_capture_on_commit_callbacks(execute=False):
        assert services.video_job_render(job=job).status == JobStatus.QUEUED


@pytest.mark.django_db(transaction=True)
def test_the_cli_refuses_with_the_cap_and_leaves_nothing(fake_api, no_caps, user, tmp_path):
    no_caps.BUDGET_USER_DAILY_USD = Decimal("1.00")
    cli_user = get_user_model().objects.create(username="cli")
    spent_before(cli_user, "0.80")
    output = tmp_path / "never.mp4"
    with pytest.raises(CommandError) as refused:
        call_command(
            "render",
            *ONE_SORA_CLIP,
            "--user",
            "cli",
            "-o",
            str(output),
            stdout=io.StringIO(),
        )
    assert str(refused.value) == (
        "budget: this render would cost $0.40; your daily budget (BUDGET_USER_DAILY_USD) is $1.00 and $0.80 "
        "is already spent today"
    )
    assert not VideoJob.objects.exists() and not output.exists()
    assert_no_provider_calls(fake_api)


@pytest.mark.django_db
def test_status_reports_caps_spend_reservations_and_what_is_left(
    no_caps, user, django_capture_on_commit_callbacks
):
    no_caps.BUDGET_USER_DAILY_USD = Decimal("5")
    no_caps.BUDGET_JOB_MAX_USD = Decimal("3")
    spent_before(user, "1.25")
    with django_capture_on_commit_callbacks(execute=False):
        services.video_job_render(job=sora_job(user, prompts=SHOTS[:2]))
    state = budget.status(user)
    assert state["job_max_usd"] == "3.00"
    assert {k: state["daily"][k] for k in ("cap_usd", "spent_usd", "reserved_usd", "remaining_usd")} == {
        "cap_usd": "5.00",
        "spent_usd": "1.25",
        "reserved_usd": "0.80",
        "remaining_usd": "2.95",
    }
    assert state["monthly"]["cap_usd"] is None and state["monthly"]["remaining_usd"] is None
