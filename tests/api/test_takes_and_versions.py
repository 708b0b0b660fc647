"""Every render of a segment is kept as a take and every assembled video as a version: re-rendering
never loses an earlier take or breaks an earlier download link, a person can pick any take (or go back)
and the video is assembled again from the picked takes. Real renders on the embedded default."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core.files.storage import default_storage
from django.test import Client

from jobs.models import JobStatus, Take, VideoJob
from tests.api.conftest import assert_error, client_for, render_through_api, settle
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def rendered(user):
    """A two-segment job rendered once with the local provider, titled for its download name."""
    return render_through_api(
        user, title="Lighthouse keeper's night", shots=["A lamp is lit.", "The sea is calm."], short=True
    )


def browser(user) -> Client:
    """Media is served to a logged-in person (a session), not through the API's token auth."""
    client = Client()
    client.force_login(user)
    return client


def url_path(url: str) -> str:
    """The path and query of an absolute URL the API gave, for the test client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def test_a_first_render_is_take_1_and_version_1_with_a_named_download(rendered, user):
    api = client_for(user)
    detail = api.get(f"/api/video-jobs/{rendered.id}/").json()
    assert detail["version"] == 1 and [s["take"] for s in detail["segments"]] == [1, 1]
    [version] = api.get(f"/api/video-jobs/{rendered.id}/versions/").json()
    assert (version["number"], version["current"], version["takes"]) == (1, True, [1, 1])
    download = browser(user).get(url_path(version["download_url"]))
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="lighthouse-keepers-night-v1.mp4"'
    takes = api.get(f"/api/video-jobs/{rendered.id}/segments/0/takes/").json()
    assert [(t["number"], t["picked"], t["prompt"]) for t in takes] == [(1, True, "A lamp is lit.")]
    # A name the server did not make is refused, so nothing can be smuggled into the header.
    bad = browser(user).get(url_path(version["video_url"]) + '?download=x";%0d%0aSet-Cookie:a=b.mp4')
    assert bad.status_code == 400


def test_a_rerender_keeps_the_earlier_take_and_the_earlier_versions_link(rendered, user):
    api = client_for(user)
    first_version = api.get(f"/api/video-jobs/{rendered.id}/versions/").json()[0]
    prompt = "A lamp is lit, and a storm rolls in."
    assert (
        api.patch(f"/api/video-jobs/{rendered.id}/segments/0/", {"prompt": prompt}, format="json").status_code
        == 200
    )
    assert api.post(f"/api/video-jobs/{rendered.id}/segments/0/rerender/").status_code == 202
    job = settle(rendered)
    assert job.status == JobStatus.COMPLETED and job.version_number == 2

    takes = api.get(f"/api/video-jobs/{job.id}/segments/0/takes/").json()
    assert [(t["number"], t["picked"]) for t in takes] == [(1, False), (2, True)]
    assert takes[1]["prompt"] == prompt and takes[0]["prompt"] == "A lamp is lit."
    versions = api.get(f"/api/video-jobs/{job.id}/versions/").json()
    assert [(v["number"], v["current"], v["takes"]) for v in versions] == [
        (2, True, [2, 1]),
        (1, False, [1, 1]),
    ]
    # The link handed out for version 1 still plays, and it is not version 2's file.
    old = browser(user).get(url_path(first_version["video_url"]))
    assert old.status_code == 200
    assert url_path(versions[0]["video_url"]) != url_path(first_version["video_url"])
    assert all(default_storage.exists(t.clip.name) for t in Take.objects.filter(segment__job=job))


def test_picking_an_earlier_take_assembles_a_new_version_from_the_picked_takes(rendered, user):
    api = client_for(user)
    assert api.post(f"/api/video-jobs/{rendered.id}/segments/1/rerender/").status_code == 202
    job = settle(rendered)
    assert job.version_number == 2
    answer = api.post(f"/api/video-jobs/{job.id}/segments/1/takes/1/pick/")
    assert answer.status_code == 202, answer.content
    job = settle(job)
    assert job.status == JobStatus.COMPLETED and job.version_number == 3
    segment = job.segments.get(index=1)
    take_1 = segment.takes.get(number=1)
    assert segment.take_number == 1 and segment.clip.name == take_1.clip.name
    versions = api.get(f"/api/video-jobs/{job.id}/versions/").json()
    assert versions[0]["takes"] == [1, 1] and versions[0]["current"]
    # Version 3 is assembled from the same clips as version 1: the same length, by stream copy.
    assert job.versions.get(number=3).duration_seconds == pytest.approx(
        job.versions.get(number=1).duration_seconds
    )


def test_picks_are_refused_clearly(rendered, user, other_user):
    api = client_for(user)
    assert_error(
        api.post(f"/api/video-jobs/{rendered.id}/segments/0/takes/9/pick/"), 404, fragment="no take 9"
    )
    assert_error(api.post(f"/api/video-jobs/{rendered.id}/segments/5/takes/1/pick/"), 404)
    # Someone else's job does not exist for them.
    assert_error(client_for(other_user).post(f"/api/video-jobs/{rendered.id}/segments/0/takes/1/pick/"), 404)
    assert_error(client_for(other_user).get(f"/api/video-jobs/{rendered.id}/versions/"), 404)
    # While the job renders, a pick waits.
    VideoJob.objects.filter(id=rendered.id).update(status=JobStatus.RENDERING)
    assert_error(api.post(f"/api/video-jobs/{rendered.id}/segments/0/takes/1/pick/"), 409, fragment="wait")


def test_deleting_the_job_deletes_every_take_and_version(rendered, user):
    api = client_for(user)
    api.post(f"/api/video-jobs/{rendered.id}/segments/0/rerender/")
    job = settle(rendered)
    files = [t.clip.name for t in Take.objects.filter(segment__job=job)] + [
        v.video.name for v in job.versions.all()
    ]
    assert len(set(files)) == 5 and all(default_storage.exists(name) for name in files)
    assert api.delete(f"/api/video-jobs/{job.id}/").status_code == 204
    assert not any(Path(default_storage.path(name)).exists() for name in files)


def test_the_admin_shows_takes_and_versions(rendered, client):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    segment = rendered.segments.get(index=0)
    page = client.get(f"/admin/jobs/segment/{segment.id}/change/").content.decode()
    assert "Take" in page and "clip" in page
    page = client.get(f"/admin/jobs/videojob/{rendered.id}/change/").content.decode()
    assert "version 1" in page
