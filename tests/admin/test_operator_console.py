"""The operator console: pages render in a bounded number of queries, actions go through services and
refuse what they must, and the view-only role cannot act."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from jobs import ledger, services
from jobs.models import JobStatus, Segment, SegmentStatus, SpendEntry, SpendKind, VideoJob, WebhookEvent
from tests.factories import VideoJobFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:jobs_videojob_changelist"
VIEWERS = "Operators (view only)"
RUNNERS = "Operators (render, retry, cancel)"


def staff(django_user_model, name: str, group: str | None = None, superuser: bool = False):
    user = django_user_model.objects.create_user(name, password="pw", is_staff=True, is_superuser=superuser)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def runner(django_user_model):
    return staff(django_user_model, "runner", RUNNERS)


@pytest.fixture
def viewer(django_user_model):
    return staff(django_user_model, "viewer", VIEWERS)


def finished(job: VideoJob, *, with_video: bool = True) -> VideoJob:
    """Mark a job completed with files, as the pipeline would (written directly: fixtures, not behaviour)."""
    for segment in job.segments.all():
        segment.status = SegmentStatus.COMPLETED
        segment.progress = 100
        segment.provider_task_id = f"video_{segment.id:06d}"
        segment.cost_usd = Decimal("0.40")
        segment.clip.save(f"{segment.index}.mp4", ContentFile(b"clip"), save=False)
        segment.thumbnail.save(f"{segment.index}.jpg", ContentFile(b"jpg"), save=False)
        segment.save()
    job.status = JobStatus.COMPLETED
    job.progress = 100
    job.cost_spent_usd = Decimal("1.20")
    if with_video:
        job.output_video.save("video.mp4", ContentFile(b"video"), save=False)
    job.save()
    return job


def action(client, name: str, jobs, url=CHANGELIST):
    return client.post(
        reverse(url),
        {"action": name, "_selected_action": [str(j.pk) for j in jobs], "index": 0, "select_across": 0},
        follow=True,
    )


def test_changelist_queries_do_not_grow_with_jobs(client, runner, user, django_assert_max_num_queries):
    VideoJobFactory.create_batch(3, owner=user)
    client.force_login(runner)
    with django_assert_max_num_queries(14) as few:
        assert client.get(reverse(CHANGELIST)).status_code == 200
    VideoJobFactory.create_batch(25, owner=user, duration_seconds=60)  # six 10 s segments each
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = client.get(reverse(CHANGELIST))
    html = page.content.decode()
    assert 'class="status-badge"' in html and "0 / 6" in html and "alice" in html


def test_change_page_shows_segments_player_and_references(
    client, runner, user, django_assert_max_num_queries
):
    job = finished(VideoJobFactory(owner=user, duration_seconds=40))  # four 10 s segments
    client.force_login(runner)
    url = reverse("admin:jobs_videojob_change", args=[job.id])
    with django_assert_max_num_queries(20) as small:
        page = client.get(url)
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-testid="admin-video"' in html and job.output_video.url in html
    assert html.count('data-status="completed"') >= 5  # the job and its four segments
    assert 'name="status"' not in html  # read-only: no form field for state
    big = finished(VideoJobFactory(owner=user, duration_seconds=120))
    with django_assert_max_num_queries(len(small.captured_queries)):
        client.get(reverse("admin:jobs_videojob_change", args=[big.id]))


def test_search_by_provider_task_id_and_id_prefix(client, runner, user):
    job = finished(VideoJobFactory(owner=user))
    other = VideoJobFactory(owner=user)
    client.force_login(runner)
    task_id = job.segments.first().provider_task_id
    page = client.get(reverse(CHANGELIST), {"q": task_id}).content.decode()
    assert str(job.id)[:8] in page and str(other.id)[:8] not in page
    page = client.get(reverse(CHANGELIST), {"q": str(other.id)[:8]}).content.decode()
    assert str(other.id)[:8] in page and str(job.id)[:8] not in page


def test_filters_by_status_provider_owner_and_date(client, runner, user, other_user):
    finished(VideoJobFactory(owner=user))
    VideoJobFactory(owner=other_user)
    client.force_login(runner)
    for query in (
        {"status__exact": "completed"},
        {"provider": "local"},
        {"owner__id__exact": user.id},
        {"created_at__year": str(VideoJob.objects.first().created_at.year)},
    ):
        assert client.get(reverse(CHANGELIST), query).status_code == 200
    page = client.get(reverse(CHANGELIST), {"status__exact": "completed"}).content.decode()
    assert '<td class="field-owner nowrap">alice</td>' in page
    assert '<td class="field-owner nowrap">bob</td>' not in page


def test_actions_report_what_they_did_and_why_not(client, runner, user, django_capture_on_commit_callbacks):
    draft, done = VideoJobFactory.create_batch(2, owner=user)
    finished(done)
    client.force_login(runner)
    with django_capture_on_commit_callbacks(execute=False):
        page = action(client, "render", [draft, done])
    text = page.content.decode()
    assert "Render started: 1 job(s)." in text
    assert "only a draft or cancelled job can be rendered" in text
    draft.refresh_from_db()
    assert draft.status == JobStatus.QUEUED

    with django_capture_on_commit_callbacks(execute=False):
        page = action(client, "cancel", [draft, done])
    text = page.content.decode()
    assert "Cancelled: 1 job(s)." in text and "completed; it cannot become cancelled" in text

    page = action(client, "retry_failed", [done])
    assert "only a failed job can be retried" in page.content.decode()

    with django_capture_on_commit_callbacks(execute=False):
        page = action(client, "reassemble", [done])
    assert "Re-assembly started: 1 job(s)." in page.content.decode()


def test_rerender_chosen_segments(client, runner, user, django_capture_on_commit_callbacks):
    job = finished(VideoJobFactory(owner=user, duration_seconds=30))  # three 10 s segments
    chosen = list(job.segments.filter(index__in=[0, 2]))
    client.force_login(runner)
    with django_capture_on_commit_callbacks(execute=False):
        page = action(client, "rerender", chosen, url="admin:jobs_segment_changelist")
    assert "Re-render started: 1 job(s)." in page.content.decode()
    statuses = dict(job.segments.values_list("index", "status"))
    assert statuses == {0: SegmentStatus.QUEUED, 1: SegmentStatus.COMPLETED, 2: SegmentStatus.QUEUED}


def test_view_only_role_sees_but_cannot_act(client, viewer, user):
    draft = VideoJobFactory(owner=user)
    client.force_login(viewer)
    page = client.get(reverse(CHANGELIST))
    assert page.status_code == 200
    assert 'value="render"' not in page.content.decode()
    action(client, "render", [draft])
    draft.refresh_from_db()
    assert draft.status == JobStatus.DRAFT
    assert client.get(reverse("admin:jobs_operations")).status_code == 200
    detail = client.get(reverse("admin:jobs_videojob_change", args=[draft.id]))
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()


@pytest.mark.parametrize("role", [VIEWERS, RUNNERS])
def test_both_roles_may_view_the_ledger_and_webhooks_but_not_touch_them(
    client, django_user_model, user, role
):
    operator = staff(django_user_model, "op", role)
    assert operator.has_perm("jobs.view_spendentry") and operator.has_perm("jobs.view_webhookevent")
    entry = SpendEntry.objects.create(
        owner=user, kind=SpendKind.RENDER, amount_usd=Decimal("1.25"), billed_seconds=12, provider="sora"
    )
    event = WebhookEvent.objects.create(event_id="evt_7", type="video.completed", outcome="advanced")
    client.force_login(operator)

    index = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:jobs_spendentry_changelist") in index
    assert reverse("admin:jobs_spendentry_add") not in index
    page = client.get(reverse("admin:jobs_spendentry_changelist"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Total of this selection: $1.25 spent" in html
    assert 'name="action"' not in html  # no bulk delete
    assert client.get(reverse("admin:jobs_spendentry_add")).status_code == 403
    change = client.get(reverse("admin:jobs_spendentry_change", args=[entry.pk]))
    assert change.status_code == 200 and 'name="_save"' not in change.content.decode()
    assert (
        client.post(reverse("admin:jobs_spendentry_change", args=[entry.pk]), {"amount_usd": "0"}).status_code
        == 403
    )
    assert client.get(reverse("admin:jobs_spendentry_delete", args=[entry.pk])).status_code == 403
    assert (
        client.post(reverse("admin:jobs_spendentry_delete", args=[entry.pk]), {"post": "yes"}).status_code
        == 403
    )
    entry.refresh_from_db()
    assert entry.amount_usd == Decimal("1.25")

    assert "evt_7" in client.get(reverse("admin:jobs_webhookevent_changelist")).content.decode()
    assert client.get(reverse("admin:jobs_webhookevent_add")).status_code == 403
    assert client.get(reverse("admin:jobs_webhookevent_delete", args=[event.pk])).status_code == 403
    assert WebhookEvent.objects.filter(pk=event.pk).exists()


def test_not_even_a_superuser_edits_the_ledger(client, django_user_model, user):
    root = staff(django_user_model, "root", superuser=True)
    entry = SpendEntry.objects.create(
        owner=user, kind=SpendKind.RENDER, amount_usd=Decimal("1"), provider="sora"
    )
    client.force_login(root)
    assert client.get(reverse("admin:jobs_spendentry_add")).status_code == 403
    assert client.get(reverse("admin:jobs_spendentry_delete", args=[entry.pk])).status_code == 403
    assert (
        'name="_save"'
        not in client.get(reverse("admin:jobs_spendentry_change", args=[entry.pk])).content.decode()
    )


def test_change_page_shows_notices_savings_and_cached_segments(client, viewer, user):
    source, job = VideoJobFactory.create_batch(2, owner=user, duration_seconds=30)  # three segments
    VideoJob.objects.filter(id=job.id).update(
        notices=["The llm planner failed; the <sentences> strategy planned this job."], use_cache=False
    )
    Segment.objects.filter(job=job, index=1).update(cached_from=source.segments.get(index=0))
    for amount in ("0.80", "0.40"):
        SpendEntry.objects.create(
            owner=user, job=job, kind=SpendKind.CACHE_SAVING, amount_usd=Decimal(amount), provider="sora"
        )
    SpendEntry.objects.create(
        owner=user, job=job, kind=SpendKind.RENDER, amount_usd=Decimal("3"), provider="sora"
    )
    client.force_login(viewer)
    html = client.get(reverse("admin:jobs_videojob_change", args=[job.id])).content.decode()
    assert 'data-testid="job-notices"' in html
    assert "<li>The llm planner failed; the &lt;sentences&gt; strategy planned this job.</li>" in html
    saved = html[html.index("field-cost_saved") :]
    assert "1.2000" in saved[: saved.index("</div>", saved.index("readonly"))]
    use_cache = html[html.index("field-use_cache") :]
    assert "icon-no.svg" in use_cache[:600]
    # The segment inline says which clip came from the render cache (only segment 2's).
    cells = html.split('<td class="field-cached">')[1:]
    assert ["icon-yes.svg" in cell.split("</td>")[0] for cell in cells] == [False, True, False]
    copied = job.segments.get(index=1)
    segment_page = client.get(reverse("admin:jobs_segment_change", args=[copied.pk]))
    assert segment_page.status_code == 200
    assert reverse("admin:jobs_segment_change", args=[copied.cached_from_id]) in segment_page.content.decode()


def test_non_staff_are_sent_to_login(client, user):
    client.force_login(user)
    page = client.get(reverse("admin:jobs_operations"))
    assert page.status_code == 302 and "/admin/login/" in page["Location"]


def test_operations_page(client, runner, user, other_user, settings, django_assert_max_num_queries):
    jobs = VideoJobFactory.create_batch(4, owner=user, duration_seconds=30)  # three 10 s segments each
    finished(jobs[0])  # its segments' cost_usd (3 x $0.40) is not what the spend windows read
    # The spend windows sum the ledger: render and lost-render lines are spent, cache savings are not.
    today = ledger.day_start()
    for owner, kind, amount, when in (
        (user, SpendKind.RENDER, "2.40", None),
        (user, SpendKind.WASTED, "0.60", None),
        (other_user, SpendKind.RENDER, "1.00", None),  # every user counts
        (user, SpendKind.CACHE_SAVING, "0.80", None),
        (other_user, SpendKind.CACHE_SAVING, "0.15", None),
        (user, SpendKind.RENDER, "9.00", ledger.month_start() - timedelta(hours=1)),  # last month
        (user, SpendKind.CACHE_SAVING, "9.00", ledger.month_start() - timedelta(hours=1)),
    ):
        SpendEntry.objects.create(
            owner=owner,
            kind=kind,
            amount_usd=Decimal(amount),
            provider="sora",
            created_at=when or timezone.now(),
        )
    # A line earlier this month but before today counts in the month only (not on the 1st of a month).
    earlier_this_month = today - timedelta(hours=1) >= ledger.month_start()
    if earlier_this_month:
        SpendEntry.objects.create(
            owner=user,
            kind=SpendKind.RENDER,
            amount_usd=Decimal("5.00"),
            provider="sora",
            created_at=today - timedelta(hours=1),
        )
    Segment.objects.filter(job=jobs[1]).update(status=SegmentStatus.RENDERING)
    failed = jobs[2].segments.all()
    for i, segment in enumerate(failed):
        segment.status = SegmentStatus.FAILED
        segment.error = f"moderation_blocked: blocked video_{i:04x} at {i}.5 s"
        segment.save()
    settings.BUDGET_USER_DAILY_USD = 25
    client.force_login(runner)
    with django_assert_max_num_queries(15):
        page = client.get(reverse("admin:jobs_operations"))
    html = page.content.decode()
    assert 'data-testid="count-completed">1<' in html and 'data-testid="count-draft">3<' in html
    assert "<td>local</td><td>0</td><td>3</td>" in html
    assert "moderation_blocked: blocked # at # s</td><td>3</td>" in html
    spend = html[html.index('id="spend-h"') : html.index('id="fail-h"')]
    assert "$25.00 (BUDGET_USER_DAILY_USD)" in spend, spend
    assert 'data-testid="spend-1">$4.00<' in spend, spend  # 2.40 + 0.60 + 1.00
    assert 'data-testid="wasted-1">$0.60<' in spend and 'data-testid="saved-1">$0.95<' in spend
    month = "$9.00" if earlier_this_month else "$4.00"
    assert f'data-testid="spend-2">{month}<' in spend and 'data-testid="saved-2">$0.95<' in spend
    assert 'data-testid="ledger-link"' in spend
    # Top spenders read the ledger too (a deleted job's money still counts), not the jobs' totals.
    since = timezone.now() - timedelta(days=30)
    alice = sum(
        e.amount_usd
        for e in SpendEntry.objects.filter(owner=user, kind__in=ledger.SPENT_KINDS, created_at__gte=since)
    )
    assert alice >= Decimal("3.00")
    assert f"<td>alice</td><td>0</td><td>${alice:.2f}</td>" in spend, spend
    assert "embedded default: tasks run inside the web process" in html
    # The catalogue, as the API and `manage.py providers` show it, with what each provider still needs.
    providers = html[html.index('id="providers-h"') : html.index('id="fail-h"')]
    assert "fal-ai/kling-video/v2.1/master" in providers and "veo-3.1-fast-generate-001" in providers
    assert "unavailable: set FAL_KEY" in providers


def test_worker_ping_with_celery_and_no_workers(client, runner, settings):
    settings.TASK_RUNNER = "celery"
    from sora_controller.celery import app

    original = app.control.ping
    app.control.ping = lambda timeout=1.0: []
    try:
        client.force_login(runner)
        html = client.get(reverse("admin:jobs_operations")).content.decode()
    finally:
        app.control.ping = original
    assert "No worker answered" in html


def chromium_or_skip():
    if not shutil.which("chromium") and not Path("/usr/bin/chromium").exists():
        if os.environ.get("CI") == "true" or os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail("chromium is required in CI")
        pytest.skip("chromium is not installed")
    return pytest.importorskip("playwright.sync_api")


@pytest.mark.django_db(transaction=True)
def test_screenshot_of_the_job_change_page(live_server, django_user_model, user):
    sync_api = chromium_or_skip()
    operator = staff(django_user_model, "shot", superuser=True)
    operator.set_password("pw-shot-123")
    operator.save()
    from rendering.transport import inprocess_runner

    job = VideoJobFactory(
        owner=user,
        prompt="A red kite rises. It loops. It lands.",
        duration_seconds=6,
        segment_seconds=2,
        strategy="sentences",
        size="320x180",
    )
    services.video_job_render(job=job)
    assert inprocess_runner().wait_idle(timeout=120)
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{live_server.url}/admin/login/")
            page.fill("#id_username", "shot")
            page.fill("#id_password", "pw-shot-123")
            page.click("input[type=submit]")
            page.goto(f"{live_server.url}/admin/jobs/videojob/{job.id}/change/")
            assert page.locator(".status-badge").first.is_visible()
            page.wait_for_function("document.querySelector('video').readyState >= 1")
            page.screenshot(path=str(artifacts / "admin-job-change.png"), full_page=True)
            page.goto(f"{live_server.url}/admin/jobs/videojob/operations/")
            page.screenshot(path=str(artifacts / "admin-operations.png"), full_page=True)
        finally:
            browser.close()
    assert (artifacts / "admin-job-change.png").stat().st_size > 10_000
