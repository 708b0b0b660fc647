"""The workspace pages through Django's test client: login required, scoped to the user, and the data
the page's module needs rendered into it."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from django.test import Client
from PIL import Image

from jobs import services
from tests.factories import VideoJobFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_config(response) -> dict[str, Any]:
    match = re.search(
        rb'<script id="workspace-config" type="application/json">(.*?)</script>', response.content
    )
    assert match, "the page carries its config as JSON"
    return json.loads(match.group(1))


@pytest.mark.parametrize("path", ["/", "/jobs/new/", "/jobs/00000000-0000-0000-0000-000000000001/"])
def test_pages_need_a_login(client, path):
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith(f"/login/?next={path}")


def test_login_and_logout(client, user):
    assert client.get("/login/").status_code == 200
    wrong = client.post("/login/", {"username": "alice", "password": "nope"})
    assert wrong.status_code == 200 and b'data-testid="login-error"' in wrong.content
    response = client.post("/login/", {"username": "alice", "password": "pw-alice-123"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_the_list_shows_my_jobs_newest_first(user, other_user, staff_user_web):
    older = VideoJobFactory(owner=user, title="older one")
    newer = VideoJobFactory(owner=user, title="newer one")
    theirs = VideoJobFactory(owner=other_user, title="not mine")
    content = logged_in(user).get("/").content.decode()
    assert content.index("newer one") < content.index("older one")
    assert "not mine" not in content
    assert f'href="/jobs/{newer.id}/"' in content and f'data-testid="job-status-{older.id}"' in content
    # Staff may open anyone's job, but their home page lists their own.
    assert "not mine" not in logged_in(staff_user_web).get("/").content.decode()
    assert logged_in(staff_user_web).get(f"/jobs/{theirs.id}/").status_code == 200


def test_an_empty_list_invites_a_first_video(user):
    assert b'data-testid="job-list-empty"' in logged_in(user).get("/").content


def test_another_users_job_page_is_a_404(user, other_user):
    job = VideoJobFactory(owner=user)
    assert logged_in(other_user).get(f"/jobs/{job.id}/").status_code == 404
    assert logged_in(user).get("/jobs/00000000-0000-0000-0000-000000000001/").status_code == 404


def test_the_job_page_renders_the_timeline_and_its_socket(user):
    job = VideoJobFactory(owner=user, duration_seconds=30)
    response = logged_in(user).get(f"/jobs/{job.id}/")
    assert response.status_code == 200
    content = response.content.decode()
    for index in range(3):
        assert f'data-testid="segment-{index}"' in content
        assert f'data-testid="segment-{index}-progress"' in content
    config = page_config(response)
    assert config["page"] == "job" and config["ws_path"] == f"/ws/video-jobs/{job.id}/"
    assert config["job"]["status"] == "draft" and len(config["job"]["segments"]) == 3
    assert config["api"]["render"] == f"/api/video-jobs/{job.id}/render/"
    assert (
        config["api"]["segment_rerender"].format(index=2) == f"/api/video-jobs/{job.id}/segments/2/rerender/"
    )


def test_a_drafts_page_carries_its_card_editor_and_a_rendered_jobs_page_does_not(user):
    job = VideoJobFactory(owner=user, shots=("Dawn.", "Noon.", "Dusk."))
    picture = io.BytesIO()
    Image.new("RGB", (64, 48), (1, 2, 3)).save(picture, format="PNG")
    picture.seek(0)
    image = services.reference_image_add(job=job, upload=picture, segment_index=1)
    response = logged_in(user).get(f"/jobs/{job.id}/")
    assert 'data-testid="plan-editor"' in response.content.decode()
    plan = page_config(response)["plan"]
    assert [(c["prompt"], c["source"]) for c in plan["cards"]] == [("Dawn.", 0), ("Noon.", 1), ("Dusk.", 2)]
    assert [c["image_url"] for c in plan["cards"]] == [None, image.image.url, None]
    # The estimate is asked with the job's own fields, as the plan will be stored.
    assert plan["estimate"]["provider"] == "local" and plan["estimate"]["segmentation_mode"] == "manual"
    assert plan["max_cards"] == 180 and plan["segment_seconds"] == 10
    assert page_config(response)["api"]["plan"] == f"/api/video-jobs/{job.id}/plan/"

    services.video_job_cancel(job=job)
    response = logged_in(user).get(f"/jobs/{job.id}/")
    assert (
        "plan" not in page_config(response) and 'data-testid="plan-editor"' not in response.content.decode()
    )


def test_the_new_job_page_carries_prices_and_limits(user):
    response = logged_in(user).get("/jobs/new/")
    assert response.status_code == 200
    config = page_config(response)
    providers = {p["name"]: p for p in config["providers"]}
    local = providers["local"]
    assert local["available"] and "320x240" in local["models"][0]["sizes"]
    sora = providers["openai-videos"]
    assert [m["id"] for m in sora["models"]] == ["sora-2", "sora-2-pro"]
    assert sora["models"][0]["sizes"] == ["720x1280", "1280x720"]
    # Providers this server has no credentials for are offered disabled, with what to set.
    assert (providers["fal"]["available"], providers["fal"]["reason"]) == (False, "needs FAL_KEY")
    assert 'value="fal" disabled' in response.content.decode()
    # The slider reaches the longest job allowed (MAX_DURATION_SECONDS, 1800 s by default).
    assert config["duration"] == {"min": 10.0, "max": 1800.0, "step": 10.0, "default": 30.0}
    assert 'max="1800"' in response.content.decode()
    content = response.content.decode()
    # Every control is labelled.
    for control in (
        "id_title",
        "id_prompt",
        "id_duration",
        "id_strategy",
        "id_continuity",
        "id_provider",
        "id_model",
        "id_size",
        "id_reference",
    ):
        assert f'for="{control}"' in content, control
    assert 'data-testid="plan-button"' in content and "Split the prompt by" in content
    # What a reference image does is said for every continuity mode the menu offers.
    modes = re.findall(
        r'<option value="(\w+)">', re.search(r'id="id_continuity".*?</select>', content, re.S).group(0)
    )
    assert set(config["continuity_hints"]) == set(modes) and all(config["continuity_hints"].values())
    # The unavailable providers say why, in words, beside the menu.
    assert "cannot be used here: it needs FAL_KEY on the server" in content


@pytest.fixture
def staff_user_web(django_user_model):
    return django_user_model.objects.create_user(username="carol", password="pw-carol-123", is_staff=True)


def test_serve_info_prints_a_working_demo_login_on_the_embedded_default(
    settings, tmp_path, django_user_model
):
    from io import StringIO

    from django.core.management import call_command

    settings.DATA_DIR = tmp_path
    settings.EMBEDDED = True
    first, second = StringIO(), StringIO()
    call_command("serve_info", port=8123, stdout=first)
    call_command("serve_info", port=8123, stdout=second)
    assert "http://127.0.0.1:8123/" in first.getvalue()
    password = re.search(r"Log in as: demo / (\S+)", first.getvalue()).group(1)
    assert django_user_model.objects.get(username="demo").check_password(password)
    assert f"demo / {password}" in second.getvalue()  # the same password every time
    assert (tmp_path / "demo-password").stat().st_mode & 0o777 == 0o600


def test_serve_info_creates_nobody_against_a_production_database(settings, django_user_model):
    from io import StringIO

    from django.core.management import call_command

    settings.EMBEDDED = False
    out = StringIO()
    call_command("serve_info", stdout=out)
    assert "createsuperuser" in out.getvalue()
    assert not django_user_model.objects.filter(username="demo").exists()


def test_the_duration_slider_reaches_the_longest_job_allowed(user, settings):
    settings.MAX_DURATION_SECONDS = 600
    response = logged_in(user).get("/jobs/new/")
    assert page_config(response)["duration"]["max"] == 600.0
    assert 'max="600"' in response.content.decode()


def test_the_strategy_menu_shows_short_names_and_the_whole_description_below(user):
    content = logged_in(user).get("/jobs/new/").content.decode()
    menu = re.search(r'<select id="id_strategy".*?</select>', content, re.S).group(0)
    options = re.findall(r'<option value="(\w+)" data-description="([^"]+)"[^>]*>([^<]+)</option>', menu)
    assert [(name, label) for name, _, label in options] == [
        ("even", "Even"),
        ("llm", "LLM"),
        ("sentences", "Scenes"),
    ]
    assert all(len(label) <= 12 and description for _, description, label in options)  # nothing to cut off
    hint = re.search(r'<p class="hint" id="strategy-hint"[^>]*>([^<]+)</p>', content).group(1)
    assert hint == dict((name, description) for name, description, _ in options)["even"]
    assert 'aria-describedby="strategy-hint error-strategy"' in menu


def test_the_library_searches_filters_and_pages(user, other_user, settings):
    from jobs.models import JobStatus, VideoJob
    from jobs.web_views import JOBS_PER_PAGE

    kite = VideoJobFactory(owner=user, title="Kite at the beach")
    boat = VideoJobFactory(owner=user, title="Paper boat", prompt="A paper boat on a rainy street.")
    VideoJobFactory(owner=other_user, title="Kite of someone else")
    VideoJob.objects.filter(id=boat.id).update(status=JobStatus.COMPLETED)
    client = logged_in(user)

    found = client.get("/", {"q": "kite"}).content.decode()
    assert "Kite at the beach" in found and "Paper boat" not in found and "someone else" not in found
    # The prompt is searched too; the status filter narrows; an unknown status is ignored.
    assert "Paper boat" in client.get("/", {"q": "rainy"}).content.decode()
    done = client.get("/", {"status": "completed"}).content.decode()
    assert "Paper boat" in done and "Kite at the beach" not in done
    assert "Kite at the beach" in client.get("/", {"status": "bogus"}).content.decode()
    assert 'data-testid="library-none-found"' in client.get("/", {"q": "zebra"}).content.decode()
    # Each row offers duplicate and delete, and a draft can be rendered from the list.
    assert f'data-testid="job-render-{kite.id}"' in found and f'data-testid="job-delete-{kite.id}"' in found
    config = page_config(client.get("/"))
    assert config["api"]["duplicate"] == "/api/video-jobs/00000000-0000-0000-0000-000000000000/duplicate/"

    # Pages keep the search.
    for n in range(JOBS_PER_PAGE):
        VideoJobFactory(owner=user, title=f"Kite {n}")
    first = client.get("/", {"q": "kite"}).content.decode()
    assert "?q=kite&amp;page=2" in first
    assert "Page 2 of 2" in client.get("/", {"q": "kite", "page": 2}).content.decode()


def test_the_job_page_shows_provider_errors_as_sentences_and_carries_the_eta(user):
    from jobs.error_text import SENTENCES
    from jobs.models import SegmentStatus

    job = VideoJobFactory(owner=user, duration_seconds=20)
    raw = "moderation_blocked: Your request was blocked by our moderation system."
    job.segments.filter(index=1).update(status=SegmentStatus.FAILED, error=raw)
    response = logged_in(user).get(f"/jobs/{job.id}/")
    content = response.content.decode()
    assert SENTENCES["moderation_blocked"] in content and raw not in content.split("workspace-config")[0]
    config = page_config(response)
    assert config["error_sentences"]["moderation_blocked"] == SENTENCES["moderation_blocked"]
    assert config["eta"] == {"segment_seconds": None, "samples": 0}  # no history for this model yet
    assert config["api"]["preview"] == f"/api/video-jobs/{job.id}/preview/"
    assert (
        config["api"]["pick"].format(index=1, number=2)
        == f"/api/video-jobs/{job.id}/segments/1/takes/2/pick/"
    )
