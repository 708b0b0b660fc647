"""Odd Unicode and malformed multipart bodies: each is a 4xx in the API's JSON error shape with a message
filed under the field (or part) at fault, and nothing is written. Text that is odd but valid (right-to-
left marks, zero-width joiners, combining accents) is stored exactly as sent."""

from __future__ import annotations

import json

import pytest

from jobs.models import ReferenceImage, Segment, VideoJob

from .conftest import assert_error, image_bytes, job_url

pytestmark = pytest.mark.django_db

OK = {"prompt": "A fox runs. It jumps. It sleeps.", "duration_seconds": 30, "render": False}
JOB = json.dumps(OK).encode()


def nothing_written() -> None:
    assert VideoJob.objects.count() == 0 and Segment.objects.count() == 0
    assert ReferenceImage.objects.count() == 0


def raw_json(**fields: str) -> str:
    """OK with `fields` spliced in as raw JSON text, so escapes such as \\ud800 reach the server as sent
    (json.dumps would refuse to write a lone surrogate into UTF-8)."""
    body = json.dumps(OK)[:-1]
    return body + "".join(f', "{name}": {value}' for name, value in fields.items()) + "}"


# --- Unicode in JSON fields -------------------------------------------------------------------------

# (id, raw JSON body, field, fragment)
UNICODE_CASES = [
    ("surrogate-in-prompt", raw_json(prompt='"A fox \\ud800 runs"'), "prompt", "surrogate characters"),
    ("low-surrogate-in-title", raw_json(title='"\\udfff"'), "title", "surrogate characters"),
    ("surrogate-in-strategy", raw_json(strategy='"ev\\ud83den"'), "strategy", "surrogate characters"),
    (
        "surrogate-in-fallback",
        raw_json(fallback_models='["local:\\udc00"]'),
        "fallback_models.0",
        "surrogate",
    ),
    ("nul-in-prompt", raw_json(prompt='"A fox\\u0000 runs"'), "prompt", "null characters"),
    ("nul-in-title", raw_json(title='"my\\u0000title"'), "title", "null characters"),
    ("nul-in-size", raw_json(size='"320x240\\u0000"'), "size", "null characters"),
    ("zero-width-only-prompt", raw_json(prompt='"\\u200b\\u200d\\u2060"'), "prompt", "empty"),
    (
        "over-long-single-line",
        raw_json(prompt=json.dumps("x" * 200_001)),
        "prompt",
        "the maximum is 200000 characters",
    ),
    (
        "manual-segment-surrogate",
        raw_json(
            segmentation_mode='"manual"', segments='[{"prompt": "a"}, {"prompt": "\\ud800"}, {"prompt": "c"}]'
        ),
        "segments.1.prompt",
        "surrogate characters",
    ),
]


@pytest.mark.parametrize(
    ("body", "field", "fragment"), [c[1:] for c in UNICODE_CASES], ids=[c[0] for c in UNICODE_CASES]
)
def test_odd_unicode_in_a_field_is_a_field_error(api, body, field, fragment):
    response = api.post("/api/video-jobs/", body, content_type="application/json")
    assert_error(response, 400, field, fragment)
    nothing_written()


def test_a_lone_surrogate_in_a_key_is_named_in_the_error_not_a_500(api):
    # Found by probing: the unknown-key message echoed "\ud800", which UTF-8 cannot encode, so rendering
    # the 400 raised UnicodeEncodeError (a 500).
    response = api.post("/api/video-jobs/", raw_json(**{"\\ud800": "1"}), content_type="application/json")
    body = assert_error(response, 400, "\\ud800", "unknown field")
    assert "\\ud800: Unknown field" in body["detail"]
    nothing_written()


def test_a_lone_surrogate_key_on_a_segment_patch(api, make_job):
    job = make_job()
    response = api.patch(job_url(job, "segments/0/"), '{"\\udbff": "x"}', content_type="application/json")
    assert_error(response, 400, "\\udbff", "accepted fields: prompt")


def test_nul_in_a_segment_prompt_changes_nothing(api, make_job):
    job = make_job()
    before = list(job.segments.values_list("prompt", flat=True))
    response = api.patch(job_url(job, "segments/0/"), {"prompt": "a\x00b"}, format="json")
    assert_error(response, 400, "prompt", "null characters")
    assert list(job.segments.values_list("prompt", flat=True)) == before


def test_text_that_is_not_utf8_is_a_parse_error(api):
    body = b'{"prompt": "A \xff fox", "duration_seconds": 10}'
    response = api.post("/api/video-jobs/", body, content_type="application/json")
    assert_error(response, 400, "non_field_errors", "JSON parse error")
    nothing_written()


def test_right_to_left_zero_width_and_combining_text_is_kept_exactly(api):
    title = "\u202eevil.exe\u202c \u200b\u200d e\u0301\u0301"
    prompt = "\u05e9\u05dc\u05d5\u05dd. A fox\u200d runs\u0301. \u202bIt sleeps.\u202c"
    response = api.post("/api/video-jobs/", {**OK, "title": title, "prompt": prompt}, format="json")
    assert response.status_code == 201, response.content[:300]
    job = VideoJob.objects.get()
    assert (job.title, job.prompt) == (title, prompt)
    assert response.json()["title"] == title


# --- Malformed multipart creates ----------------------------------------------------------------------

BOUNDARY = "XyZzy"


def part(name: str, content: bytes, *, filename: str | None = None, headers: str = "") -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{headers}\r\n".encode() + content + b"\r\n"


END = f"--{BOUNDARY}--\r\n".encode()
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
PNG = image_bytes()

# (id, content type, body, field, fragment)
MULTIPART_CASES: list[tuple[str, str, bytes, str, str]] = [
    (
        "missing-boundary",
        "multipart/form-data",
        part("job", JOB) + END,
        "non_field_errors",
        "invalid boundary",
    ),
    (
        "bad-boundary",
        'multipart/form-data; boundary="a\x01b"',
        part("job", JOB) + END,
        "non_field_errors",
        "invalid boundary",
    ),
    ("boundary-not-in-body", "multipart/form-data; boundary=other", part("job", JOB) + END, "job", ""),
    ("truncated-part", MULTIPART, part("job", JOB)[:-20], "job", "not valid JSON"),
    (
        "truncated-headers",
        MULTIPART,
        b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-da",
        "job",
        "",
    ),
    ("job-not-json", MULTIPART, part("job", b"prompt=A fox") + END, "job", "not valid JSON"),
    (
        "job-json-not-object",
        MULTIPART,
        part("job", b"[1, 2]") + END,
        "non_field_errors",
        "expected a dictionary",
    ),
    ("job-missing", MULTIPART, part("reference_image", PNG, filename="a.png") + END, "job", "is missing"),
    ("duplicate-job", MULTIPART, part("job", JOB) + part("job", JOB) + END, "job", "sent 2 times"),
    ("job-as-file", MULTIPART, part("job", JOB, filename="job.json") + END, "job", "not a file"),
    (
        "job-as-text-and-file",
        MULTIPART,
        part("job", JOB) + part("job", JOB, filename="job.json") + END,
        "job",
        "sent 2 times",
    ),
    (
        "image-as-text-field",
        MULTIPART,
        part("job", JOB) + part("reference_image", b"not a file") + END,
        "reference_image",
        "must be a file",
    ),
    ("unknown-part", MULTIPART, part("job", JOB) + part("title", b"x") + END, "title", "unknown part"),
    (
        "job-with-surrogate",
        MULTIPART,
        part("job", raw_json(title='"\\ud800"').encode()) + END,
        "title",
        "surrogate characters",
    ),
    (
        "job-with-unknown-key",
        MULTIPART,
        part("job", raw_json(colour='"red"').encode()) + END,
        "colour",
        "unknown",
    ),
    (
        "image-not-an-image",
        MULTIPART,
        part("job", JOB) + part("reference_image", b"GIF89a...", filename="a.png") + END,
        "reference_image.0",
        "not a readable png",
    ),
]


@pytest.mark.parametrize(
    ("content_type", "body", "field", "fragment"),
    [c[1:] for c in MULTIPART_CASES],
    ids=[c[0] for c in MULTIPART_CASES],
)
def test_malformed_multipart_create_is_a_field_error_and_creates_nothing(
    api, content_type, body, field, fragment
):
    response = api.generic("POST", "/api/video-jobs/", body, content_type=content_type)
    assert_error(response, 400, field, fragment)
    nothing_written()


def test_a_well_formed_multipart_create_still_works(api):
    # The same framing as the cases above, valid: the refusals are about the input, not the helper.
    body = part("job", JOB) + part(
        "reference_image", PNG, filename="a.png", headers="Content-Type: image/png\r\n"
    )
    response = api.generic("POST", "/api/video-jobs/", body + END, content_type=MULTIPART)
    assert response.status_code == 201, response.content[:300]
    assert VideoJob.objects.count() == 1 and ReferenceImage.objects.count() == 1
    # A draft is answered from the rows written, image included: the same as reading it back.
    assert response.json()["status"] == "draft"
    assert response.json() == api.get(response["Location"]).json()


# --- Malformed multipart uploads to an existing job ---------------------------------------------------

UPLOAD_CASES: list[tuple[str, bytes, str, str]] = [
    ("image-as-text", part("image", b"not a file") + END, "image", "not a file"),
    ("no-image", part("segment_index", b"0") + END, "image", "no file was submitted"),
    (
        "duplicate-image",
        part("image", PNG, filename="a.png") + part("image", PNG, filename="b.png") + END,
        "image",
        "sent 2 times",
    ),
    (
        "segment-index-as-file",
        part("image", PNG, filename="a.png") + part("segment_index", b"0", filename="i.txt") + END,
        "segment_index",
        "",
    ),
    (
        "unknown-part",
        part("image", PNG, filename="a.png") + part("caption", b"hi") + END,
        "caption",
        "unknown",
    ),
    ("truncated", part("image", PNG, filename="a.png")[:40], "image", ""),
]


@pytest.mark.parametrize(
    ("body", "field", "fragment"), [c[1:] for c in UPLOAD_CASES], ids=[c[0] for c in UPLOAD_CASES]
)
def test_malformed_upload_is_a_field_error_and_stores_nothing(api, make_job, body, field, fragment):
    job = make_job()
    response = api.generic("POST", job_url(job, "reference-images/"), body, content_type=MULTIPART)
    assert_error(response, 400, field, fragment)
    assert ReferenceImage.objects.count() == 0
