"""PUT /api/video-jobs/{id}/plan/: a draft's cards replaced in one request (jobs.plan_edit)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from jobs import services
from jobs.models import JobStatus, Segment, VideoJob

from .conftest import assert_error, image_bytes, job_url, upload

pytestmark = pytest.mark.django_db

SHOTS = ("A kite rises.", "It loops twice.", "It lands in the sand.")


@pytest.fixture
def draft(make_job) -> VideoJob:
    return make_job(shots=SHOTS)


def put_plan(client, job, segments, **extra):
    return client.put(job_url(job, "plan/"), {"segments": segments, **extra}, format="json")


def test_answers_the_job_detail_with_the_new_cards(api, draft):
    image = services.reference_image_add(job=draft, upload=upload(image_bytes()), segment_index=0)
    cards = [
        {"prompt": SHOTS[2], "source": 2},
        {"prompt": "A gull watches.", "source": None},
        {"prompt": SHOTS[0], "source": 0},
        {"prompt": SHOTS[1]},  # no source: a new card
    ]
    response = put_plan(api, draft, cards)
    assert response.status_code == 200, response.json()
    body = response.json()
    # The same shape as GET (the job detail), and what GET answers afterwards.
    assert body == api.get(job_url(draft)).json()
    assert [s["prompt"] for s in body["segments"]] == [c["prompt"] for c in cards]
    assert [(s["start_seconds"], s["end_seconds"]) for s in body["segments"]] == [
        (0, 10),
        (10, 20),
        (20, 30),
        (30, 40),
    ]
    assert body["duration_seconds"] == 40 and body["segment_count"] == 4
    assert body["segmentation_mode"] == "manual" and body["status"] == "draft"
    assert all(s["is_manual"] and s["status"] == "pending" for s in body["segments"])
    assert [(i["id"], i["segment_index"]) for i in body["reference_images"]] == [(image.id, 2)]


@pytest.mark.parametrize(
    ("segments", "field", "fragment"),
    [
        ([{"prompt": "A."}, {"prompt": "B."}, {"prompt": "   "}], "segments.2.prompt", "may not be blank"),
        ([{"prompt": "A."}, {"prompt": 5}], "segments.1.prompt", "must be a string"),
        ([{"prompt": "A.", "source": -1}], "segments.0.source", "greater than or equal to 0"),
        ([{"prompt": "A.", "source": "1"}], "segments.0.source", "whole number"),
        ([{"prompt": "A."}, {"prompt": "B.", "source": 3}], "segments.1.source", "segment 3 does not exist"),
        ([{"prompt": "A.", "colour": "red"}], "segments.0.colour", "unknown field"),
        ([], "segments", "at least 1"),
        ("A. B.", "segments", "list"),
    ],
)
def test_bad_cards_are_400s_naming_the_card_and_change_nothing(api, draft, segments, field, fragment):
    before = list(Segment.objects.filter(job=draft).values_list("id", "prompt"))
    assert_error(put_plan(api, draft, segments), 400, field, fragment)
    assert list(Segment.objects.filter(job=draft).values_list("id", "prompt")) == before


def test_a_card_over_the_prompt_limit(api, draft, settings):
    settings.MAX_SEGMENT_PROMPT_CHARS = 30
    response = put_plan(api, draft, [{"prompt": "A."}, {"prompt": "x" * 31}])
    assert_error(response, 400, "segments.1.prompt", "31 characters long; the limit is 30")


def test_too_many_cards_for_the_longest_video(api, draft, settings):
    settings.MAX_DURATION_SECONDS = 20
    response = put_plan(api, draft, [{"prompt": f"Shot {n}."} for n in range(3)])
    assert_error(response, 400, "segments", "3 cards of 10 s make 30 s")


def test_the_body_must_be_an_object_with_segments(api, draft):
    assert_error(api.put(job_url(draft, "plan/"), {}, format="json"), 400, "segments", "required")
    assert_error(api.put(job_url(draft, "plan/"), [1], format="json"), 400)


def test_another_users_draft_is_a_404(other_api, draft):
    assert_error(put_plan(other_api, draft, [{"prompt": "Mine now."}]), 404)
    assert [s.prompt for s in draft.segments.order_by("index")] == list(SHOTS)


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.COMPLETED, JobStatus.CANCELLED])
def test_only_a_draft_is_edited(api, draft, status):
    VideoJob.objects.filter(id=draft.id).update(status=status)
    body = assert_error(put_plan(api, draft, [{"prompt": "A.", "source": 0}]), 409)
    assert body["code"] == "illegal_transition" and "only a draft's plan can be edited" in body["detail"]
    assert [s.prompt for s in draft.segments.order_by("index")] == list(SHOTS)


def test_an_operator_may_not_rewrite_someone_elses_cards(django_user_model, draft):
    operator = django_user_model.objects.create_user("runner", password="pw", is_staff=True)
    operator.groups.add(Group.objects.get(name="Operators (render, retry, cancel)"))
    client = APIClient()
    client.force_authenticate(operator)
    response = put_plan(client, draft, [{"prompt": "Something else."}])
    assert response.status_code == 403 and "only the job's owner" in response.json()["detail"]


def test_only_json_bodies(api, draft):
    response = api.put(job_url(draft, "plan/"), "segments=x", content_type="text/plain")
    assert_error(response, 415, fragment="unsupported media type")


def test_the_schema_documents_the_operation(api):
    document = api.get("/api/schema/", {"format": "json"}).json()
    operation = document["paths"]["/api/video-jobs/{job_id}/plan/"]["put"]
    assert operation["operationId"] == "video_jobs_plan_update"
    assert {"200", "400", "404", "409", "413", "415"} <= set(operation["responses"])
    card = document["components"]["schemas"]["PlanCardRequest"]
    assert card["additionalProperties"] is False and card["properties"]["prompt"]["pattern"] == r"\S"
    assert card["properties"]["source"]["nullable"] is True
    # A job detail answer links to the plan edit, so a client (and the fuzzer) can reach it.
    links = document["paths"]["/api/video-jobs/{job_id}/"]["get"]["responses"]["200"]["links"]
    assert links["video_jobs_plan_update"]["parameters"] == {"job_id": "$response.body#/id"}
