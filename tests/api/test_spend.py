"""Spend control through the API: the cache opt-out, what a job saved and was told, budget refusals and
GET /api/budget/."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from jobs import ledger, services
from jobs.models import Segment, SpendEntry, SpendKind, VideoJob

from .conftest import assert_error, job_url

pytestmark = pytest.mark.django_db

SORA_30S = {
    "prompt": "A lighthouse at dusk. Waves break on the rocks. The lamp turns on.",
    "duration_seconds": 30,
    "provider": "sora",
    "size": "1280x720",
}


@pytest.fixture(autouse=True)
def _no_caps(settings):
    # Whatever the environment sets, each test starts with no cap and sets the ones it needs.
    settings.BUDGET_JOB_MAX_USD = None
    settings.BUDGET_USER_DAILY_USD = None
    settings.BUDGET_USER_MONTHLY_USD = None


def line(owner, kind: str, amount: str, *, job=None, when=None, seconds: float = 0.0) -> SpendEntry:
    fields = {"created_at": when} if when is not None else {}
    return SpendEntry.objects.create(
        owner=owner,
        job=job,
        kind=kind,
        amount_usd=Decimal(amount),
        billed_seconds=seconds,
        provider="sora",
        **fields,
    )


class TestUseCache:
    def test_defaults_to_true(self, api):
        response = api.post(
            "/api/video-jobs/", {"prompt": "A boat.", "duration_seconds": 5, "render": False}, format="json"
        )
        assert response.status_code == 201, response.json()
        assert response.json()["use_cache"] is True
        assert VideoJob.objects.get().use_cache is True

    def test_false_is_stored_and_shown(self, api):
        response = api.post(
            "/api/video-jobs/",
            {"prompt": "A boat.", "duration_seconds": 5, "render": False, "use_cache": False},
            format="json",
        )
        assert response.status_code == 201, response.json()
        body = response.json()
        assert body["use_cache"] is False
        assert VideoJob.objects.get(id=body["id"]).use_cache is False
        assert api.get(job_url(body["id"])).json()["use_cache"] is False
        assert api.get("/api/video-jobs/").json()["results"][0]["use_cache"] is False

    def test_a_string_is_refused_and_nothing_is_stored(self, api):
        response = api.post(
            "/api/video-jobs/",
            {"prompt": "A boat.", "duration_seconds": 5, "render": False, "use_cache": "no"},
            format="json",
        )
        assert_error(response, 400, "use_cache", "must be true or false, not a string")
        assert not VideoJob.objects.exists()

    def test_the_live_estimate_accepts_it_and_is_unchanged_by_it(self, api):
        body = {"prompt": "A boat. A storm.", "duration_seconds": 20, "provider": "sora", "size": "1280x720"}
        plain = api.post("/api/estimate/", body, format="json")
        fresh = api.post("/api/estimate/", {**body, "use_cache": False}, format="json")
        assert plain.status_code == fresh.status_code == 200, fresh.json()
        assert plain.json() == fresh.json()
        assert_error(api.post("/api/estimate/", {**body, "use_cache": "no"}, format="json"), 400, "use_cache")


class TestRepresentation:
    def test_notices_savings_and_cached_segments(self, api, make_job, user):
        source = make_job()
        job = make_job()
        VideoJob.objects.filter(id=job.id).update(
            notices=["The llm planner failed (timeout); the sentences strategy planned this job."]
        )
        first = source.segments.get(index=0)
        Segment.objects.filter(job=job, index=1).update(cached_from=first)
        # Only cache_saving lines count as saved; the render line and other jobs' savings do not.
        line(user, SpendKind.CACHE_SAVING, "0.80", job=job, seconds=8)
        line(user, SpendKind.CACHE_SAVING, "0.40", job=job, seconds=4)
        line(user, SpendKind.RENDER, "1.20", job=job, seconds=12)
        line(user, SpendKind.CACHE_SAVING, "5.00", job=source, seconds=50)

        body = api.get(job_url(job)).json()
        assert body["notices"] == [
            "The llm planner failed (timeout); the sentences strategy planned this job."
        ]
        assert body["cost_saved_usd"] == "1.2000"
        assert [s["cached"] for s in body["segments"]] == [False, True]
        assert api.get(job_url(job, "segments/1/")).json()["cached"] is True
        assert [s["cached"] for s in api.get(job_url(job, "segments/")).json()] == [False, True]

        rows = {row["id"]: row for row in api.get("/api/video-jobs/").json()["results"]}
        assert rows[str(job.id)]["cost_saved_usd"] == "1.2000"
        assert rows[str(source.id)]["cost_saved_usd"] == "5.0000"
        assert rows[str(job.id)]["notices"] and rows[str(source.id)]["notices"] == []

    def test_a_job_without_lines_saved_nothing(self, api, make_job):
        job = make_job()
        body = api.get(job_url(job)).json()
        assert body["cost_saved_usd"] == "0.0000" and body["notices"] == [] and body["use_cache"] is True
        assert api.get("/api/video-jobs/").json()["results"][0]["cost_saved_usd"] == "0.0000"


class TestBudgetRefusal:
    def test_a_job_over_the_per_job_cap_is_refused_at_creation(self, api, settings):
        settings.BUDGET_JOB_MAX_USD = 1
        # 30 s on sora-2 is planned as 12 + 12 + 8 s clips (32 billed, the last trimmed) at $0.10/s: $3.20.
        response = api.post("/api/video-jobs/", SORA_30S, format="json")
        body = assert_error(response, 400, "budget", "BUDGET_JOB_MAX_USD")
        message = " ".join(body["errors"]["budget"])
        assert "$3.20" in message and "$1.00" in message, message
        assert not VideoJob.objects.exists() and not Segment.objects.exists()

    def test_under_the_cap_it_is_created(self, api, settings):
        settings.BUDGET_JOB_MAX_USD = 5
        response = api.post("/api/video-jobs/", {**SORA_30S, "render": False}, format="json")
        assert response.status_code == 201, response.json()
        assert response.json()["cost_estimate_usd"] == "3.2000"


class TestBudgetStatus:
    def test_no_caps(self, api):
        body = api.get("/api/budget/").json()
        assert body["job_max_usd"] is None
        for window in ("daily", "monthly"):
            assert body[window]["cap_usd"] is None and body[window]["remaining_usd"] is None
            assert body[window]["spent_usd"] == body[window]["reserved_usd"] == "0.00"

    def test_caps_spent_reserved_and_remaining_of_the_requesting_user(
        self, api, user, other_user, settings, django_capture_on_commit_callbacks
    ):
        settings.BUDGET_JOB_MAX_USD = 10
        settings.BUDGET_USER_DAILY_USD = 5
        settings.BUDGET_USER_MONTHLY_USD = 50
        today = ledger.day_start()
        line(user, SpendKind.RENDER, "1.20")
        line(user, SpendKind.WASTED, "0.40")
        line(user, SpendKind.CACHE_SAVING, "0.80")  # saved, not spent
        line(other_user, SpendKind.RENDER, "3.00")  # someone else's
        line(user, SpendKind.RENDER, "7.00", when=ledger.month_start() - timedelta(hours=1))  # last month
        earlier = today - timedelta(hours=1)
        this_month_before_today = earlier >= ledger.month_start()
        if this_month_before_today:
            line(user, SpendKind.RENDER, "2.00", when=earlier)
        # A render in progress holds what it may still spend: 2 segments of 4 s at $0.10/s.
        job = services.video_job_create(
            owner=user,
            prompt="A. B.",
            duration_seconds=8,
            segment_seconds=4,
            provider="sora",
            size="1280x720",
        )
        with django_capture_on_commit_callbacks(execute=False):
            services.video_job_render(job=job)

        response = api.get("/api/budget/")
        assert response.status_code == 200
        body = response.json()
        assert body["job_max_usd"] == "10.00"
        assert body["daily"] == {
            "cap_usd": "5.00",
            "spent_usd": "1.60",
            "reserved_usd": "0.80",
            "remaining_usd": "2.60",
            "since": body["daily"]["since"],
        }
        assert body["daily"]["since"].startswith(today.date().isoformat())
        month_spent = Decimal("3.60") if this_month_before_today else Decimal("1.60")
        assert body["monthly"]["cap_usd"] == "50.00"
        assert body["monthly"]["spent_usd"] == f"{month_spent:.2f}"
        assert body["monthly"]["reserved_usd"] == "0.80"
        assert body["monthly"]["remaining_usd"] == f"{Decimal('50') - month_spent - Decimal('0.80'):.2f}"

    def test_remaining_never_goes_below_zero(self, api, user, settings):
        settings.BUDGET_USER_DAILY_USD = 1
        line(user, SpendKind.RENDER, "1.50")
        assert api.get("/api/budget/").json()["daily"]["remaining_usd"] == "0.00"

    def test_needs_authentication(self, anon):
        assert_error(anon.get("/api/budget/"), 401)
