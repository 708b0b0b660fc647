"""The operator console: pages render in a bounded number of queries, actions go through services and
refuse what they must, and the view-only role cannot act."""

from __future__ import annotations

import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.urls import reverse

from jobs import services
from jobs.models import JobStatus, Segment, SegmentStatus, VideoJob

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


def make_jobs(owner, count: int, segments: int = 3) -> list[VideoJob]:
    return [
        services.video_job_create(
            owner=owner, prompt=f"Job {i}. " * segments, duration_seconds=10 * segments, strategy="even"
        )
        for i in range(count)
    ]


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
    make_jobs(user, 3)
    client.force_login(runner)
    with django_assert_max_num_queries(14) as few:
        assert client.get(reverse(CHANGELIST)).status_code == 200
    make_jobs(user, 25, segments=6)
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = client.get(reverse(CHANGELIST))
    html = page.content.decode()
    assert 'class="status-badge"' in html and "0 / 6" in html and "alice" in html


def test_change_page_shows_segments_player_and_references(
    client, runner, user, django_assert_max_num_queries
):
    job = finished(make_jobs(user, 1, segments=4)[0])
    client.force_login(runner)
    url = reverse("admin:jobs_videojob_change", args=[job.id])
    with django_assert_max_num_queries(20) as small:
        page = client.get(url)
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-testid="admin-video"' in html and job.output_video.url in html
    assert html.count('data-status="completed"') >= 5  # the job and its four segments
    assert 'name="status"' not in html  # read-only: no form field for state
    big = finished(make_jobs(user, 1, segments=12)[0])
    with django_assert_max_num_queries(len(small.captured_queries)):
        client.get(reverse("admin:jobs_videojob_change", args=[big.id]))


def test_search_by_provider_task_id_and_id_prefix(client, runner, user):
    job = finished(make_jobs(user, 1)[0])
    other = make_jobs(user, 1)[0]
    client.force_login(runner)
    task_id = job.segments.first().provider_task_id
    page = client.get(reverse(CHANGELIST), {"q": task_id}).content.decode()
    assert str(job.id)[:8] in page and str(other.id)[:8] not in page
    page = client.get(reverse(CHANGELIST), {"q": str(other.id)[:8]}).content.decode()
    assert str(other.id)[:8] in page and str(job.id)[:8] not in page


def test_filters_by_status_provider_owner_and_date(client, runner, user, other_user):
    finished(make_jobs(user, 1)[0])
    make_jobs(other_user, 1)
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
    draft, done = make_jobs(user, 2)
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
    job = finished(make_jobs(user, 1)[0])
    chosen = list(job.segments.filter(index__in=[0, 2]))
    client.force_login(runner)
    with django_capture_on_commit_callbacks(execute=False):
        page = action(client, "rerender", chosen, url="admin:jobs_segment_changelist")
    assert "Re-render started: 1 job(s)." in page.content.decode()
    statuses = dict(job.segments.values_list("index", "status"))
    assert statuses == {0: SegmentStatus.QUEUED, 1: SegmentStatus.COMPLETED, 2: SegmentStatus.QUEUED}


def test_view_only_role_sees_but_cannot_act(client, viewer, user):
    draft = make_jobs(user, 1)[0]
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


def test_non_staff_are_sent_to_login(client, user):
    client.force_login(user)
    page = client.get(reverse("admin:jobs_operations"))
    assert page.status_code == 302 and "/admin/login/" in page["Location"]


def test_operations_page(client, runner, user, settings, django_assert_max_num_queries):
    jobs = make_jobs(user, 4)
    finished(jobs[0])
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
    assert 'data-testid="spend-1">$1.20<' in spend and "<td>alice</td><td>4</td><td>$1.20</td>" in spend
    assert "embedded default: tasks run inside the web process" in html


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
    from rendering.dispatch import inprocess_runner

    job = services.video_job_create(
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
