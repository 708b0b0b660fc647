"""Staff read every job through the API, but changing someone else's job needs the operator role."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.test import APIClient

from jobs import services
from jobs.models import JobStatus, VideoJob

pytestmark = pytest.mark.django_db

VIEWERS = "Operators (view only)"
RUNNERS = "Operators (render, retry, cancel)"


def staff_client(
    django_user_model, name: str, group: str | None = None, superuser: bool = False
) -> APIClient:
    user = django_user_model.objects.create_user(name, password="pw", is_staff=True, is_superuser=superuser)
    if group:
        user.groups.add(Group.objects.get(name=group))
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def job(user) -> VideoJob:
    return services.video_job_create(owner=user, prompt="A quiet pond. A frog jumps.", duration_seconds=10)


def test_view_only_operator_reads_but_cannot_act(django_user_model, job, django_capture_on_commit_callbacks):
    client = staff_client(django_user_model, "viewer", VIEWERS)
    assert client.get(f"/api/video-jobs/{job.id}/").status_code == 200
    for path in ("render/", "cancel/", "segments/0/rerender/"):
        response = client.post(f"/api/video-jobs/{job.id}/{path}")
        assert response.status_code == 403, path
        assert "jobs.operate_videojob" in response.json()["detail"]
    assert (
        client.patch(f"/api/video-jobs/{job.id}/segments/0/", {"prompt": "x"}, format="json").status_code
        == 403
    )
    assert client.delete(f"/api/video-jobs/{job.id}/").status_code == 403
    job.refresh_from_db()
    assert job.status == JobStatus.DRAFT


def test_operator_may_render_others_jobs_but_not_delete_them(
    django_user_model, job, django_capture_on_commit_callbacks
):
    client = staff_client(django_user_model, "runner", RUNNERS)
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(f"/api/video-jobs/{job.id}/render/").status_code == 202
    response = client.delete(f"/api/video-jobs/{job.id}/")
    assert response.status_code == 403 and "jobs.delete_videojob" in response.json()["detail"]


def test_superuser_may_delete(django_user_model, job):
    client = staff_client(django_user_model, "root", superuser=True)
    assert client.delete(f"/api/video-jobs/{job.id}/").status_code == 204
    assert not VideoJob.objects.filter(id=job.id).exists()


def test_the_operator_acts_on_others_jobs_but_never_rewrites_their_prompts_or_images(
    django_user_model, job, django_capture_on_commit_callbacks
):
    client = staff_client(django_user_model, "runner", RUNNERS)
    base = f"/api/video-jobs/{job.id}"
    response = client.patch(f"{base}/segments/0/", {"prompt": "Something else."}, format="json")
    assert response.status_code == 403 and "only the job's owner" in response.json()["detail"]
    image = io.BytesIO()
    Image.new("RGB", (64, 48), (1, 2, 3)).save(image, format="PNG")
    image.seek(0)
    upload = SimpleUploadedFile("x.png", image.read(), content_type="image/png")
    assert client.post(f"{base}/reference-images/", {"image": upload}, format="multipart").status_code == 403
    job.refresh_from_db()
    assert job.segments.get(index=0).prompt != "Something else." and not job.reference_images.exists()
    with django_capture_on_commit_callbacks():
        assert client.post(f"{base}/render/").status_code == 202  # acting is still allowed
