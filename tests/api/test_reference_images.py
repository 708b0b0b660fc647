"""Reference images: upload (checked by content with Pillow), list, one, delete."""

from __future__ import annotations

import io

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from jobs import services
from jobs.models import ReferenceImage

from .conftest import assert_error, image_bytes, job_url, upload

pytestmark = pytest.mark.django_db


def post_image(api, job, data: bytes, name: str = "ref.png", **extra):
    return api.post(
        job_url(job, "reference-images/"), {"image": upload(data, name), **extra}, format="multipart"
    )


class TestUpload:
    # Stored as a clean copy: PNG stays PNG (lossless), JPEG and WebP become JPEG.
    @pytest.mark.parametrize(
        ("fmt", "content_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/jpeg")]
    )
    def test_accepts_png_jpeg_webp(self, api, make_job, fmt, content_type):
        job = make_job()
        # The name lies on purpose: the type comes from the content.
        response = post_image(api, job, image_bytes((80, 60), fmt), name="picture.bin")
        assert response.status_code == 201, response.json()
        body = response.json()
        assert (body["content_type"], body["width"], body["height"]) == (content_type, 80, 60)
        assert body["segment_index"] is None and body["url"].startswith("http://testserver/media/jobs/")
        image = ReferenceImage.objects.get(id=body["id"])
        assert default_storage.exists(image.image.name)
        assert image.image.name.endswith(".png" if content_type == "image/png" else ".jpg")

    def test_for_one_segment(self, api, make_job):
        job = make_job()
        response = post_image(api, job, image_bytes(), segment_index=1)
        assert response.status_code == 201
        assert response.json()["segment_index"] == 1
        assert ReferenceImage.objects.get().segment == job.segments.get(index=1)

    def test_list_one_and_delete(self, api, make_job, django_capture_on_commit_callbacks):
        job = make_job()
        first = post_image(api, job, image_bytes()).json()
        second = post_image(api, job, image_bytes(colour=(0, 0, 255)), segment_index=0).json()
        listed = api.get(job_url(job, "reference-images/")).json()
        assert [(i["id"], i["segment_index"]) for i in listed] == [(first["id"], None), (second["id"], 0)]
        assert api.get(job_url(job, f"reference-images/{second['id']}/")).json() == listed[1]
        name = ReferenceImage.objects.get(id=first["id"]).image.name
        with django_capture_on_commit_callbacks(execute=True):
            response = api.delete(job_url(job, f"reference-images/{first['id']}/"))
        assert response.status_code == 204
        assert not default_storage.exists(name)
        assert [i["id"] for i in api.get(job_url(job, "reference-images/")).json()] == [second["id"]]
        assert_error(api.delete(job_url(job, f"reference-images/{first['id']}/")), 404)

    def test_an_image_of_another_job_is_not_found_here(self, api, make_job):
        job, other_job = make_job(), make_job()
        image = services.reference_image_add(job=other_job, upload=upload(image_bytes()))
        assert_error(api.get(job_url(job, f"reference-images/{image.id}/")), 404)
        assert_error(api.delete(job_url(job, f"reference-images/{image.id}/")), 404)
        assert ReferenceImage.objects.filter(id=image.id).exists()

    def test_refused_while_the_job_renders(self, api, make_job, django_capture_on_commit_callbacks):
        job = make_job()
        image = services.reference_image_add(job=job, upload=upload(image_bytes()))
        with django_capture_on_commit_callbacks(execute=False):
            services.video_job_render(job=job)
        assert_error(post_image(api, job, image_bytes()), 409, fragment="cannot change while it renders")
        assert_error(api.delete(job_url(job, f"reference-images/{image.id}/")), 409, fragment="renders")
        assert ReferenceImage.objects.count() == 1


def gif_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buffer, format="GIF")
    return buffer.getvalue()


def bomb_bytes() -> bytes:
    # 15000 x 15000 one-bit pixels: a few tens of KB on disk, 225 megapixels when decoded.
    buffer = io.BytesIO()
    Image.new("1", (15000, 15000)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


class TestBadUploads:
    @pytest.mark.parametrize(
        ("data", "name", "fragment"),
        [
            (gif_bytes(), "ref.png", "must be png, jpeg or webp; this one is gif"),
            (b"just some text, not an image", "ref.png", "not a readable png, jpeg or webp"),
            (image_bytes((64, 64))[:60], "ref.png", "not a readable png, jpeg or webp"),
            (b"", "ref.png", "empty"),
        ],
        ids=["gif", "text-named-png", "truncated", "empty"],
    )
    def test_content_is_checked(self, api, make_job, data, name, fragment):
        response = post_image(api, make_job(), data, name=name)
        assert_error(response, 400, "image", fragment)
        assert ReferenceImage.objects.count() == 0

    def test_decompression_bomb(self, api, make_job):
        response = post_image(api, make_job(), bomb_bytes())
        assert_error(response, 400, "image", "decompression bomb")

    def test_byte_limit_is_configurable(self, api, make_job, settings):
        settings.UPLOAD_MAX_BYTES = 1000
        response = post_image(api, make_job(), image_bytes((300, 300), "JPEG"))
        assert_error(response, 400, "image", "larger than 1000 bytes")

    def test_pixel_limit_is_configurable(self, api, make_job, settings):
        settings.UPLOAD_MAX_PIXELS = 100 * 100
        response = post_image(api, make_job(), image_bytes((101, 100)))
        assert_error(response, 400, "image", "the limit is 10000 pixels")

    def test_oversized_request_refused_by_declared_length(self, api, make_job, settings):
        settings.UPLOAD_MAX_BYTES = 10
        job = make_job()
        # Far beyond the image limit plus the allowance for multipart framing.
        response = post_image(api, job, b"\0" * (80 * 1024))
        assert_error(response, 413, "image", "image: the upload is larger than 10 bytes")

    def test_no_file(self, api, make_job):
        response = api.post(job_url(make_job(), "reference-images/"), {}, format="multipart")
        assert_error(response, 400, "image", "no file was submitted")

    def test_unknown_segment(self, api, make_job):
        response = post_image(api, make_job(), image_bytes(), segment_index=5)
        assert_error(response, 400, "segment_index", "segment_index 5 does not exist")

    def test_json_is_not_an_upload(self, api, make_job):
        response = api.post(job_url(make_job(), "reference-images/"), {"image": "x"}, format="json")
        assert_error(response, 415, fragment="unsupported media type")
