"""Media files are served to their job's owner (and staff) only, with byte ranges for video players."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from jobs.models import VideoJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(user):
    job = VideoJob.objects.create(owner=user, prompt="p", duration_seconds=1)
    job.output_video.save("video.mp4", ContentFile(bytes(range(256)) * 4), save=True)
    return job


def url(job: VideoJob) -> str:
    return job.output_video.url


def test_owner_gets_the_file_with_range_support(client, user, stored):
    client.force_login(user)
    whole = client.get(url(stored))
    assert whole.status_code == 200 and whole["Accept-Ranges"] == "bytes"
    assert b"".join(whole.streaming_content) == bytes(range(256)) * 4
    part = client.get(url(stored), HTTP_RANGE="bytes=10-19")
    assert part.status_code == 206 and part["Content-Range"] == "bytes 10-19/1024"
    assert b"".join(part.streaming_content) == bytes(range(10, 20))
    tail = client.get(url(stored), HTTP_RANGE="bytes=-4")
    assert b"".join(tail.streaming_content) == bytes(range(252, 256))
    assert client.get(url(stored), HTTP_RANGE="bytes=5000-").status_code == 416


def test_other_users_and_anonymous_get_404(client, other_user, stored):
    assert client.get(url(stored)).status_code == 404
    client.force_login(other_user)
    assert client.get(url(stored)).status_code == 404


def test_staff_may_see_every_file(client, django_user_model, stored):
    staff = django_user_model.objects.create_user("ops", password="x", is_staff=True)
    client.force_login(staff)
    assert client.get(url(stored)).status_code == 200


@pytest.mark.parametrize(
    "path", ["/media/jobs/not-a-uuid/x.mp4", "/media/other/x.mp4", "/media/jobs/../../etc/passwd"]
)
def test_bad_paths_are_404(client, user, path):
    client.force_login(user)
    assert client.get(path).status_code == 404
