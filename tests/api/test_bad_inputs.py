"""Bad input of every kind gets a 4xx with a message naming the problem, and writes nothing.

Each case: what is sent, the expected status, the field the message is filed under (None: only
`detail`), and a fragment of the message.
"""

from __future__ import annotations

from typing import Any

import pytest

from jobs.models import Segment, VideoJob

from .conftest import assert_error, job_url

pytestmark = pytest.mark.django_db

OK = {"prompt": "A fox runs. It jumps. It sleeps.", "duration_seconds": 30, "render": False}


def with_(**changes: Any) -> dict[str, Any]:
    body = {**OK, **changes}
    return {k: v for k, v in body.items() if v is not ...}


MANUAL = {"segmentation_mode": "manual"}

# (id, body: dict | raw str, status, field, fragment)
CREATE_CASES: list[tuple[str, Any, int, str | None, str]] = [
    ("malformed-json", '{"prompt": "A fox", ', 400, "non_field_errors", "JSON parse error"),
    (
        "nan-literal",
        '{"prompt": "A fox", "duration_seconds": NaN}',
        400,
        "non_field_errors",
        "JSON parse error",
    ),
    ("body-is-a-list", "[1, 2]", 400, "non_field_errors", "expected a dictionary, but got list"),
    ("missing-prompt", with_(prompt=...), 400, "prompt", "required"),
    ("empty-prompt", with_(prompt=""), 400, "prompt", "may not be blank"),
    ("blank-prompt", with_(prompt="   \n\t "), 400, "prompt", "may not be blank"),
    ("prompt-not-text", with_(prompt=123), 400, "prompt", "must be a string, not int"),
    ("prompt-null-char", with_(prompt="A fox\x00"), 400, "prompt", "null characters are not allowed"),
    ("missing-duration", with_(duration_seconds=...), 400, "duration_seconds", "required"),
    (
        "duration-as-string",
        with_(duration_seconds="30"),
        400,
        "duration_seconds",
        "must be a number, not a string",
    ),
    ("duration-as-bool", with_(duration_seconds=True), 400, "duration_seconds", "not a boolean"),
    ("duration-null", with_(duration_seconds=None), 400, "duration_seconds", "may not be null"),
    ("negative-duration", with_(duration_seconds=-5), 400, "duration_seconds", "between 1 and 1800 seconds"),
    ("zero-duration", with_(duration_seconds=0), 400, "duration_seconds", "between 1 and 1800 seconds"),
    ("huge-duration", with_(duration_seconds=10**9), 400, "duration_seconds", "between 1 and 1800 seconds"),
    ("overflowing-duration", '{"prompt": "A", "duration_seconds": 1e400}', 400, "duration_seconds", "finite"),
    (
        "enormous-integer",
        '{"prompt": "A", "duration_seconds": 1' + "0" * 400 + "}",
        400,
        "duration_seconds",
        "finite",
    ),
    ("short-segments", with_(segment_seconds=0.5), 400, "segment_seconds", "between 1 and 60 seconds"),
    (
        "unknown-strategy",
        with_(strategy="random"),
        400,
        "strategy",
        "unknown strategy 'random'; choose one of",
    ),
    ("unknown-provider", with_(provider="veo-9"), 400, "provider", "unknown provider 'veo-9'"),
    ("unknown-model", with_(model="local-v9"), 400, "model", "unknown model 'local-v9'"),
    (
        "sora-unknown-model",
        with_(provider="sora", model="sora-9"),
        400,
        "model",
        "openai-videos offers: sora-2",
    ),
    ("malformed-size", with_(size="big"), 400, "size", "WIDTHxHEIGHT"),
    ("size-not-offered", with_(provider="sora", size="640x480"), 400, "size", "is not offered"),
    ("unknown-continuity", with_(continuity="loop"), 400, "continuity", "unknown continuity 'loop'"),
    ("fps-zero", with_(fps=0), 400, "fps", "whole number from 1 to 120"),
    ("fps-fraction", with_(fps=29.97), 400, "fps", "whole number"),
    ("render-as-string", with_(render="yes"), 400, "render", "must be true or false, not a string"),
    ("use-cache-as-string", with_(use_cache="no"), 400, "use_cache", "must be true or false, not a string"),
    ("use-cache-null", with_(use_cache=None), 400, "use_cache", "may not be null"),
    ("unknown-mode", with_(segmentation_mode="semi"), 400, "segmentation_mode", "not a valid choice"),
    ("typo-field", with_(segment_second=5), 400, "segment_second", "unknown field"),
    (
        "manual-without-segments",
        with_(**MANUAL),
        400,
        "segments",
        "needs segments",
    ),
    (
        "manual-too-few",
        with_(**MANUAL, segments=[{"prompt": "Only one"}]),
        400,
        "segments",
        "needs 3 segment prompts for 30 s at 10 s per segment, got 1",
    ),
    (
        "manual-too-many",
        with_(**MANUAL, segments=[{"prompt": f"Shot {i}"} for i in range(5)]),
        400,
        "segments",
        "needs 3 segment prompts for 30 s at 10 s per segment, got 5",
    ),
    (
        "manual-empty-prompt",
        with_(**MANUAL, segments=[{"prompt": "A"}, {"prompt": ""}, {"prompt": "C"}]),
        400,
        "segments.1.prompt",
        "may not be blank",
    ),
    (
        "manual-item-not-object",
        with_(**MANUAL, segments=["A", "B", "C"]),
        400,
        "segments.0",
        "expected a dictionary, but got str",
    ),
    (
        "manual-segments-not-list",
        with_(**MANUAL, segments={"prompt": "A"}),
        400,
        "segments",
        "expected a list",
    ),
    (
        "manual-with-other-strategy",
        with_(**MANUAL, strategy="even", segments=[{"prompt": "A"}] * 3),
        400,
        "strategy",
        "uses the 'manual' strategy",
    ),
    (
        "auto-with-segments",
        with_(segments=[{"prompt": "A"}] * 3),
        400,
        "segments",
        "only accepted with segmentation_mode 'manual'",
    ),
    (
        "auto-with-manual-strategy",
        with_(strategy="manual"),
        400,
        "strategy",
        "needs segmentation_mode 'manual'",
    ),
    (
        "reference-without-image",
        with_(continuity="reference", render=True),
        400,
        "continuity",
        "needs a reference image",
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "field", "fragment"), [c[1:] for c in CREATE_CASES], ids=[c[0] for c in CREATE_CASES]
)
def test_create_rejects(api, body, status, field, fragment):
    if isinstance(body, str):
        response = api.post("/api/video-jobs/", body, content_type="application/json")
    else:
        response = api.post("/api/video-jobs/", body, format="json")
    assert_error(response, status, field, fragment)
    assert VideoJob.objects.count() == 0 and Segment.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "status", "field", "fragment"),
    [
        (with_(duration_seconds=-1), 400, "duration_seconds", "between 1 and 1800"),
        (with_(**MANUAL, segments=[{"prompt": "A"}]), 400, "segments", "got 1"),
        ("{", 400, "non_field_errors", "JSON parse error"),
    ],
    ids=["negative-duration", "manual-too-few", "malformed-json"],
)
def test_live_estimate_rejects(api, body, status, field, fragment):
    if isinstance(body, str):
        response = api.post("/api/estimate/", body, content_type="application/json")
    else:
        response = api.post("/api/estimate/", body, format="json")
    assert_error(response, status, field, fragment)


def test_limits_follow_settings(api, settings):
    settings.MAX_DURATION_SECONDS = 60
    settings.MAX_JOB_PROMPT_CHARS = 10
    response = api.post("/api/video-jobs/", with_(duration_seconds=61, prompt="x" * 11), format="json")
    body = assert_error(response, 400, "duration_seconds", "between 1 and 60 seconds")
    assert "the maximum is 10 characters" in body["errors"]["prompt"][0]


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"prompt": ""}, "prompt", "may not be blank"),
        ({"prompt": 7}, "prompt", "must be a string, not int"),
        ({"prompt": "ok", "is_manual": False}, "is_manual", "unknown field"),
    ],
    ids=["empty", "not-text", "read-only-field"],
)
def test_segment_override_rejects(api, make_job, body, field, fragment):
    job = make_job()
    before = list(job.segments.values_list("prompt", "is_manual"))
    assert_error(api.patch(job_url(job, "segments/0/"), body, format="json"), 400, field, fragment)
    assert list(job.segments.values_list("prompt", "is_manual")) == before


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"segments": []}, "segments", "at least 1"),
        ({"segments": [9]}, "segments", "segments [9] do not exist"),
        ({"segments": ["0"]}, "segments.0", "whole number, not a string"),
        ({"segments": [-1]}, "segments.0", "greater than or equal to 0"),
    ],
    ids=["empty", "unknown-index", "string-index", "negative-index"],
)
def test_rerender_rejects(api, make_job, body, field, fragment):
    from jobs import services

    job = services.video_job_cancel(job=make_job())
    assert_error(api.post(job_url(job, "rerender/"), body, format="json"), 400, field, fragment)


def test_list_rejects_an_unknown_status(api):
    assert_error(api.get("/api/video-jobs/", {"status": "sleeping"}), 400, "status", "not a valid choice")


class TestProtocol:
    def test_form_encoded_create_is_unsupported(self, api):
        form = "application/x-www-form-urlencoded"
        response = api.post("/api/video-jobs/", "prompt=A&duration_seconds=5", content_type=form)
        body = assert_error(response, 415, fragment="unsupported media type")
        assert body["code"] == "unsupported_media_type"

    def test_wrong_method(self, api, make_job):
        body = assert_error(
            api.put(job_url(make_job()), {}, format="json"), 405, fragment='method "put" not allowed'
        )
        assert body["code"] == "method_not_allowed"

    @pytest.mark.parametrize(
        "path",
        [
            "/api/video-jobs/not-a-uuid/",
            "/api/video-jobs/00000000-0000-0000-0000-000000000000/",
            "/api/video-jobs/00000000-0000-0000-0000-000000000000/segments/x/",
            "/api/video-jobs/00000000-0000-0000-0000-000000000000/teleport/",
            "/api/budget/today/",
        ],
    )
    def test_unknown_paths_are_json_404s(self, api, path):
        assert assert_error(api.get(path), 404)["code"] == "not_found"

    def test_a_missing_slash_says_so(self, api):
        response = api.post("/api/video-jobs", OK, format="json")
        assert_error(response, 404, fragment="API URLs end with a slash: /api/video-jobs/")

    def test_a_huge_segment_index_is_a_404_not_a_crash(self, api, make_job):
        job = make_job()
        huge = "9" * 40
        assert_error(api.get(job_url(job, f"segments/{huge}/")), 404)
        assert_error(api.patch(job_url(job, f"segments/{huge}/"), {"prompt": "x"}, format="json"), 404)
        assert_error(api.delete(job_url(job, f"reference-images/{huge}/")), 404)
