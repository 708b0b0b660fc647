"""The OpenAPI document says what the server really does: unknown keys are refused on every body, every
body may be answered 413 (and is, in the JSON error shape), the input limits are the settings', and the
list's query parameters are the ones the view reads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import override_settings

from callbacks.models import WebhookEndpoint
from callbacks.services import new_secret
from jobs import services
from jobs.models import JobStatus, VideoJob

from .conftest import assert_error, image_bytes, upload

pytestmark = pytest.mark.django_db


def document(anon) -> dict[str, Any]:
    return anon.get("/api/schema/", {"format": "json"}).json()


def body_operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if "requestBody" in operation
    ]


def concrete(path: str, job: VideoJob, image_id: int) -> str:
    endpoint = WebhookEndpoint.objects.get(owner=job.owner, job=None)
    # A delivery that does not exist: the operations on it are only asked what they declare and negotiate.
    return path.format(
        job_id=job.id, index=0, image_id=image_id, number=1, endpoint_id=endpoint.id, delivery_id=999_999
    )


@pytest.fixture
def job_with_image(make_job, user) -> tuple[VideoJob, int]:
    job = services.video_job_cancel(job=make_job())  # cancelled: every body action may act on it
    image = services.reference_image_add(job=job, upload=upload(image_bytes()))
    # An account-wide webhook endpoint, for the operations on /api/webhook-endpoints/{endpoint_id}/.
    WebhookEndpoint.objects.create(owner=user, url="https://hooks.example.com/sora", secret=new_secret())
    return job, image.id


def test_every_request_body_refuses_unknown_keys_in_the_document(anon):
    schemas = document(anon)["components"]["schemas"]
    requests = {name: s for name, s in schemas.items() if name.endswith("Request")}
    assert len(requests) >= 6
    assert {name for name, s in requests.items() if s.get("additionalProperties") is not False} == set()


# One unknown key per body operation, sent in the operation's own media type; the 400 names the key.
UNKNOWN_KEY_BODIES = {
    ("post", "/api/video-jobs/", "application/json"): {
        "prompt": "A fox.",
        "duration_seconds": 10,
        "colour": 1,
    },
    ("post", "/api/video-jobs/", "multipart/form-data"): {
        "job": json.dumps({"prompt": "A fox.", "duration_seconds": 10}),
        "colour": "red",
    },
    ("post", "/api/estimate/", "application/json"): {"prompt": "A fox.", "duration_seconds": 10, "colour": 1},
    ("patch", "/api/video-jobs/{job_id}/segments/{index}/", "application/json"): {"prompt": "x", "colour": 1},
    ("post", "/api/video-jobs/{job_id}/rerender/", "application/json"): {"segments": [0], "colour": 1},
    ("put", "/api/video-jobs/{job_id}/plan/", "application/json"): {
        "segments": [{"prompt": "x", "source": 0}],
        "colour": 1,
    },
    ("post", "/api/webhook-endpoints/", "application/json"): {
        "url": "https://hooks.example.com/a",
        "colour": 1,
    },
    ("patch", "/api/webhook-endpoints/{endpoint_id}/", "application/json"): {"colour": 1},
    ("post", "/api/video-jobs/{job_id}/reference-images/", "multipart/form-data"): {
        "image": upload(image_bytes()),
        "colour": "red",
    },
}


def test_every_body_operation_refuses_an_unknown_key_naming_it(anon, api, job_with_image):
    job, image_id = job_with_image
    declared = {
        (method, path, media)
        for method, path, operation in body_operations(document(anon))
        for media in operation["requestBody"]["content"]
    }
    # A new body operation must be added here, so the rule is tested on it too.
    assert declared == set(UNKNOWN_KEY_BODIES)
    for (method, path, media), body in UNKNOWN_KEY_BODIES.items():
        fmt = "multipart" if media.startswith("multipart/") else "json"
        response = getattr(api, method)(concrete(path, job, image_id), body, format=fmt)
        field = "colour"
        assert_error(response, 400, field, "unknown")
    assert VideoJob.objects.count() == 1


def test_every_body_operation_declares_and_answers_413(anon, api, job_with_image, settings):
    job, image_id = job_with_image
    operations = body_operations(document(anon))
    assert all("413" in operation["responses"] for _, _, operation in operations)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    big = "x" * 2000
    for method, path, operation in operations:
        url = concrete(path, job, image_id)
        for media in operation["requestBody"]["content"]:
            if media == "application/json":
                response = getattr(api, method)(url, json.dumps({"prompt": big}), content_type=media)
            else:  # a text part over the limit (files are limited by UPLOAD_MAX_BYTES instead)
                response = getattr(api, method)(url, {"job": big, "segment_index": big}, format="multipart")
            body = assert_error(response, 413, fragment="larger than the 1000 bytes")
            assert body["code"] == "request_too_large", (method, path, media)
    assert VideoJob.objects.count() == 1


def test_an_upload_over_the_byte_limit_is_a_413_before_it_is_read(api, job_with_image, settings):
    job, _ = job_with_image
    settings.UPLOAD_MAX_BYTES = 10
    response = api.post(
        f"/api/video-jobs/{job.id}/reference-images/", {"image": upload(b"\0" * 100_000)}, format="multipart"
    )
    assert_error(response, 413, fragment="image: the upload is larger than 10 bytes")


def test_input_limits_in_the_document_follow_settings(anon):
    with override_settings(MAX_DURATION_SECONDS=60.0, MAX_JOB_PROMPT_CHARS=500, MAX_SEGMENT_PROMPT_CHARS=70):
        schemas = document(anon)["components"]["schemas"]
    job = schemas["VideoJobCreateRequest"]["properties"]
    assert job["duration_seconds"]["maximum"] == 60.0
    assert job["prompt"]["maxLength"] == 500
    assert schemas["PatchedSegmentUpdateRequest"]["properties"]["prompt"]["maxLength"] == 70
    assert "even" in job["strategy"]["enum"] and "local" in job["provider"]["enum"]
    fps = schemas["VideoJobEstimateRequest"]["properties"]["fps"]
    assert (fps["minimum"], fps["maximum"]) == (1, 120)


def test_the_documented_limits_are_the_ones_the_server_enforces(anon, api):
    job = document(anon)["components"]["schemas"]["VideoJobCreateRequest"]["properties"]
    ok = {"prompt": "A fox.", "render": False}
    for field, value in [
        ("duration_seconds", job["duration_seconds"]["maximum"] + 1),
        ("duration_seconds", job["duration_seconds"]["minimum"] - 0.5),
        ("fps", job["fps"]["maximum"] + 1),
        ("title", "t" * (job["title"]["maxLength"] + 1)),
        ("continuity", "not-" + job["continuity"]["enum"][0]),
    ]:
        body = {"duration_seconds": 10, **ok, field: value}
        assert_error(api.post("/api/video-jobs/", body, format="json"), 400, field)
    at_the_edges = {
        **ok,
        "duration_seconds": job["duration_seconds"]["maximum"],
        "fps": job["fps"]["maximum"],
        "title": "t" * job["title"]["maxLength"],
    }
    assert api.post("/api/video-jobs/", at_the_edges, format="json").status_code == 201


def test_list_parameters_are_the_ones_the_view_reads(anon, api, make_job):
    parameters = {
        p["name"]: p
        for p in document(anon)["paths"]["/api/video-jobs/"]["get"]["parameters"]
        if p["in"] == "query"
    }
    assert set(parameters) == {"page", "page_size", "status"}
    assert set(parameters["status"]["schema"]["enum"]) == set(JobStatus.values)
    for _ in range(3):
        make_job()
    page = api.get("/api/video-jobs/", {"page": 2, "page_size": 2, "status": JobStatus.DRAFT}).json()
    assert page["count"] == 3 and len(page["results"]) == 1
    assert_error(api.get("/api/video-jobs/", {"page": 9}), 404)
    assert_error(api.get("/api/video-jobs/", {"status": "sleeping"}), 400, "status", "not a valid choice")


def test_every_operation_declares_and_answers_406_and_every_body_415(anon, api, job_with_image):
    job, image_id = job_with_image
    for path, item in document(anon)["paths"].items():
        for method, operation in item.items():
            url = concrete(path, job, image_id)
            assert "406" in operation["responses"], (method, path)
            # Content negotiation happens before the view runs: nothing is changed (not even by DELETE).
            response = getattr(api, method)(url, HTTP_ACCEPT="application/xml")
            assert_error(response, 406, fragment="accept header")
            if "requestBody" in operation:
                assert "415" in operation["responses"], (method, path)
                response = getattr(api, method)(url, "prompt=x", content_type="text/plain")
                assert_error(response, 415, fragment="unsupported media type")
    assert VideoJob.objects.filter(id=job.id).exists()


def test_create_documents_its_location_and_retry_after_headers(anon, api, settings):
    responses = document(anon)["paths"]["/api/video-jobs/"]["post"]["responses"]
    assert "Location" in responses["201"]["headers"] and "Retry-After" in responses["429"]["headers"]
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "video_job_create": "1/hour"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    body = {"prompt": "A fox.", "duration_seconds": 10, "render": False}
    created = api.post("/api/video-jobs/", body, format="json")
    assert created["Location"].endswith(f"/api/video-jobs/{created.json()['id']}/")
    throttled = api.post("/api/video-jobs/", body, format="json")
    assert_error(throttled, 429)
    assert int(throttled["Retry-After"]) > 0
