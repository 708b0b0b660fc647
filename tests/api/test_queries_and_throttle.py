"""Query counts that do not grow with the data, and the per-user create throttle."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import services

from .conftest import assert_error, client_for, image_bytes, job_url, upload

pytestmark = pytest.mark.django_db


def count_queries(client, path: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200, response.content[:300]
    return len(queries)


class TestQueryCounts:
    def test_job_detail_is_constant_in_segments_and_images(self, api, make_job):
        small = make_job(duration_seconds=10)
        large = make_job(duration_seconds=100)
        assert small.segments.count() == 1 and large.segments.count() == 10
        bare = make_job(duration_seconds=100)
        services.reference_image_add(job=small, upload=upload(image_bytes()), segment_index=0)
        for index in range(5):
            services.reference_image_add(job=large, upload=upload(image_bytes()), segment_index=index)
        # The job (with its owner, its cache savings summed from the ledger and whether it has images,
        # in subqueries), its segments and its reference images: three queries, however many segments
        # and images; two for a job without images (most jobs).
        assert count_queries(api, job_url(small)) == count_queries(api, job_url(large)) == 3
        assert count_queries(api, job_url(bare)) == 2

    def test_segments_and_images_lists_are_constant(self, api, make_job):
        small, large = make_job(duration_seconds=10), make_job(duration_seconds=100)
        services.reference_image_add(job=small, upload=upload(image_bytes()), segment_index=0)
        for index in range(4):
            services.reference_image_add(job=large, upload=upload(image_bytes()), segment_index=index)
        for suffix in ("segments/", "reference-images/", "estimate/"):
            assert count_queries(api, job_url(small, suffix)) == count_queries(api, job_url(large, suffix))

    def test_job_list_is_constant_in_jobs(self, make_job, staff_user, other_user):
        staff = client_for(staff_user)
        make_job()
        one = count_queries(staff, "/api/video-jobs/")
        for owner in (other_user, staff_user) * 5:
            make_job(owner=owner)
        # A count and a page, the owners joined in and each row's cache savings in a subquery: two
        # queries for any number of rows and owners.
        assert count_queries(staff, "/api/video-jobs/") == one == 2

    def test_with_session_auth_only_the_session_lookups_are_added(
        self, user, make_job, django_assert_max_num_queries
    ):
        from rest_framework.test import APIClient

        client = APIClient()
        client.force_login(user)
        job = make_job(duration_seconds=100)
        with django_assert_max_num_queries(5):  # session + user + the three above
            assert client.get(job_url(job)).status_code == 200


class TestQueryCountsWithTokens:
    """What a program pays per call: token authentication included (one query, the user joined in, on
    the token's first call; the web process remembers it for later calls: jobs.api.token_cache)."""

    @pytest.fixture
    def token_api(self, user):
        from rest_framework.authtoken.models import Token
        from rest_framework.test import APIClient

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        return client

    def test_job_detail(self, token_api, make_job, django_assert_num_queries):
        job = make_job(duration_seconds=100)
        # token + user; the job with its owner, cache savings and whether it has images; its segments.
        with django_assert_num_queries(3):
            response = token_api.get(job_url(job))
        assert response.status_code == 200 and len(response.json()["segments"]) == 10
        with django_assert_num_queries(2):  # the token is remembered
            assert token_api.get(job_url(job)).json() == response.json()

    def test_job_detail_of_a_job_with_savings_and_images(
        self, token_api, make_job, django_assert_num_queries
    ):
        from jobs.models import SpendEntry, SpendKind

        job = make_job(duration_seconds=30)
        services.reference_image_add(job=job, upload=upload(image_bytes()), segment_index=1)
        SpendEntry.objects.create(job=job, owner=job.owner, kind=SpendKind.CACHE_SAVING, amount_usd="0.5")
        token_api.get("/api/video-jobs/")  # the token's first call
        with django_assert_num_queries(3):
            body = token_api.get(job_url(job)).json()
        assert body["cost_saved_usd"] == "0.5000"
        assert [image["segment_index"] for image in body["reference_images"]] == [1]

    def test_create(self, token_api, django_assert_num_queries):
        payload = {"prompt": "A fox runs. It jumps. It sleeps.", "duration_seconds": 30, "render": False}
        token_api.get("/api/video-jobs/")  # the token's first call: looked up, then remembered
        # The job and its segments stored in one transaction (a savepoint inside the test's own
        # transaction: open, two inserts, release). A draft is answered from the rows just written,
        # not read back. Planning and the throttle (the cache) cost no query.
        with django_assert_num_queries(4):
            response = token_api.post("/api/video-jobs/", payload, format="json")
        assert response.status_code == 201 and len(response.json()["segments"]) == 3
        # ...and the answer is the job exactly as the detail reads it afterwards.
        assert response.json() == token_api.get(response["Location"]).json()

    def test_create_and_render_reads_the_job_back(self, token_api, django_assert_num_queries):
        payload = {"prompt": "A fox runs. It jumps. It sleeps.", "duration_seconds": 30}
        response = token_api.post("/api/video-jobs/", payload, format="json")
        # Rendering moved the job and its segments on inside the transaction: the answer shows it.
        assert response.status_code == 201
        assert response.json()["status"] != "draft"
        assert {s["status"] for s in response.json()["segments"]} != {"draft"}


class TestThrottle:
    @pytest.fixture(autouse=True)
    def _rate(self, settings):
        rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "video_job_create": "2/minute"}
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}

    def create(self, client):
        return client.post(
            "/api/video-jobs/", {"prompt": "A", "duration_seconds": 5, "render": False}, format="json"
        )

    def test_create_is_throttled_per_user(self, api, other_api):
        assert [self.create(api).status_code for _ in range(2)] == [201, 201]
        refused = self.create(api)
        body = assert_error(refused, 429, fragment="throttled")
        assert body["code"] == "throttled" and int(refused["Retry-After"]) > 0
        # Another user has a budget of their own.
        assert self.create(other_api).status_code == 201

    def test_only_create_is_throttled(self, api, make_job):
        job = make_job()
        for _ in range(2):
            self.create(api)
        for _ in range(5):
            assert api.get("/api/video-jobs/").status_code == 200
            assert api.get(job_url(job)).status_code == 200
            assert (
                api.post("/api/estimate/", {"prompt": "A", "duration_seconds": 5}, format="json").status_code
                == 200
            )
