"""The webhook API: endpoints (secret shown once), per-job callback_url on create, deliveries, and that
nobody sees or uses another user's."""

from __future__ import annotations

import pytest

from callbacks.models import CallbackEvent, Delivery, WebhookEndpoint
from callbacks.services import new_secret
from jobs.models import VideoJob
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db

ENDPOINTS = "/api/webhook-endpoints/"
DELIVERIES = "/api/webhook-deliveries/"
JOB = {"prompt": "A fox runs. It jumps.", "duration_seconds": 4, "segment_seconds": 2, "render": False}


def make_delivery(endpoint: WebhookEndpoint, job: VideoJob) -> Delivery:
    event = CallbackEvent.objects.create(
        id=f"msg_{endpoint.id.hex[:8]}", type="job.completed", job=job, payload={"type": "job.completed"}
    )
    return Delivery.objects.create(endpoint=endpoint, event=event)


def endpoint_of(user, url: str = "https://hooks.example.com/sora") -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(owner=user, url=url, secret=new_secret())


class TestEndpoints:
    def test_create_shows_the_secret_once(self, api, user):
        response = api.post(
            ENDPOINTS,
            {"url": "https://hooks.example.com/sora", "event_types": ["job.failed"], "description": "CI"},
            format="json",
        )
        assert response.status_code == 201, response.json()
        body = response.json()
        assert body["secret"].startswith("whsec_") and body["event_types"] == ["job.failed"]
        assert body["job"] is None
        endpoint = WebhookEndpoint.objects.get(id=body["id"])
        assert endpoint.owner == user and endpoint.secret == body["secret"]
        listed = api.get(ENDPOINTS).json()["results"]
        assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]
        assert "secret" not in api.get(f"{ENDPOINTS}{body['id']}/").json()

    def test_update_and_delete(self, api, user):
        endpoint = endpoint_of(user)
        response = api.patch(f"{ENDPOINTS}{endpoint.id}/", {"is_active": False}, format="json")
        assert response.status_code == 200 and response.json()["is_active"] is False
        assert api.delete(f"{ENDPOINTS}{endpoint.id}/").status_code == 204
        assert not WebhookEndpoint.objects.exists()

    @pytest.mark.parametrize(
        ("url", "fragment"),
        [
            ("http://hooks.example.com/x", "https"),
            ("ftp://hooks.example.com/x", "https"),
            ("https://localhost/x", "localhost"),
            ("https://127.0.0.1/x", "private, loopback"),
            ("https://10.1.2.3/x", "private, loopback"),
            ("https://169.254.169.254/latest/meta-data", "private, loopback"),
            ("https://[::1]/x", "private, loopback"),
            ("https://[::ffff:192.168.0.1]/x", "private, loopback"),
            ("https://user:pw@hooks.example.com/x", "credentials"),
            ("https:///x", "host"),
            ("https://hooks.example.com:99999/x", "valid url"),
        ],
    )
    def test_unsafe_urls_are_a_400_on_the_url_field(self, api, settings, url, fragment):
        settings.ALLOW_HTTP_CALLBACKS = False
        settings.ALLOW_PRIVATE_CALLBACKS = False
        response = api.post(ENDPOINTS, {"url": url}, format="json")
        assert_error(response, 400, field="url", fragment=fragment)
        assert not WebhookEndpoint.objects.exists()

    def test_unknown_fields_and_event_types_are_refused(self, api):
        response = api.post(
            ENDPOINTS,
            {"url": "https://hooks.example.com/x", "event_types": ["job.exploded"], "secret": "x"},
            format="json",
        )
        body = assert_error(response, 400)
        assert set(body["errors"]) == {"event_types.0", "secret"}

    def test_another_users_endpoint_is_a_404(self, other_api, user):
        endpoint = endpoint_of(user)
        url = f"{ENDPOINTS}{endpoint.id}/"
        assert_error(other_api.get(url), 404)
        assert_error(other_api.patch(url, {"url": "https://evil.example.com/"}, format="json"), 404)
        assert_error(other_api.delete(url), 404)
        assert other_api.get(ENDPOINTS).json()["results"] == []
        endpoint.refresh_from_db()
        assert endpoint.url == "https://hooks.example.com/sora"

    def test_unknown_paths_are_json_404s(self, api):
        assert_error(api.get(f"{ENDPOINTS}not-a-uuid/"), 404)


class TestJobCallback:
    def test_create_with_a_callback_url_stores_the_jobs_own_endpoint(self, api, user):
        response = api.post(
            "/api/video-jobs/", {**JOB, "callback_url": "https://hooks.example.com/job"}, format="json"
        )
        assert response.status_code == 201, response.json()
        body = response.json()
        assert body["callback"]["secret"].startswith("whsec_")
        assert body["callback"]["url"] == "https://hooks.example.com/job"
        assert body["callback"]["job"] == body["id"]
        endpoint = WebhookEndpoint.objects.get(job_id=body["id"])
        assert endpoint.owner == user and endpoint.secret == body["callback"]["secret"]
        assert [e["id"] for e in api.get(ENDPOINTS, {"job": body["id"]}).json()["results"]] == [
            str(endpoint.id)
        ]

    def test_a_bad_callback_url_stores_no_job(self, api, user, settings):
        settings.ALLOW_PRIVATE_CALLBACKS = False
        response = api.post("/api/video-jobs/", {**JOB, "callback_url": "https://127.0.0.1/x"}, format="json")
        assert_error(response, 400, field="callback_url", fragment="private")
        assert not VideoJob.objects.filter(owner=user).exists()

    def test_a_callback_that_cannot_be_stored_stores_no_job(self, api, user, monkeypatch):
        from django.db import DatabaseError

        from callbacks import services

        def fail(**kwargs):
            raise DatabaseError("the database went away mid-request")

        monkeypatch.setattr(services, "endpoint_create", fail)
        api.raise_request_exception = False
        response = api.post(
            "/api/video-jobs/",
            {**JOB, "callback_url": "https://hooks.example.com/job"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="create-1",
        )
        assert response.status_code == 500
        # Nothing half-written: a retry with the same key will create the one job.
        assert not VideoJob.objects.filter(owner=user).exists()

    def test_the_callback_goes_with_the_job(self, api, user):
        response = api.post(
            "/api/video-jobs/", {**JOB, "callback_url": "https://hooks.example.com/job"}, format="json"
        )
        assert api.delete(f"/api/video-jobs/{response.json()['id']}/").status_code == 204
        assert not WebhookEndpoint.objects.exists()

    def test_estimate_accepts_the_create_payload(self, api):
        response = api.post(
            "/api/estimate/", {**JOB, "callback_url": "https://hooks.example.com/job"}, format="json"
        )
        assert response.status_code == 200, response.json()


class TestDeliveries:
    def test_listed_for_their_owner_only(self, api, other_api, user, make_job, queued):
        delivery = make_delivery(endpoint_of(user), make_job())
        assert [d["id"] for d in api.get(DELIVERIES).json()["results"]] == [delivery.id]
        detail = api.get(f"{DELIVERIES}{delivery.id}/").json()
        assert detail["event_type"] == "job.completed" and detail["attempt_log"] == []
        assert other_api.get(DELIVERIES).json()["results"] == []
        assert_error(other_api.get(f"{DELIVERIES}{delivery.id}/"), 404)
        assert_error(other_api.post(f"{DELIVERIES}{delivery.id}/redeliver/"), 404)
        assert queued == []

    def test_redeliver_starts_a_new_round(
        self, api, user, make_job, queued, django_capture_on_commit_callbacks
    ):
        delivery = make_delivery(endpoint_of(user), make_job())
        Delivery.objects.filter(id=delivery.id).update(status="failed", attempts=3)
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post(f"{DELIVERIES}{delivery.id}/redeliver/")
        assert response.status_code == 202
        assert (response.json()["status"], response.json()["attempts"]) == ("pending", 0)
        assert [name for _, name, _ in queued] == ["callbacks.deliver"]

    def test_filters_are_checked(self, api):
        assert_error(api.get(DELIVERIES, {"status": "lost"}), 400, field="status")
