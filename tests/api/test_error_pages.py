"""Pages answer bad input with the project's own error pages (same layout and way back as the 404), not
Django's bare "Bad Request (400)" or a 500."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def assert_project_page(response, status: int, testid: str) -> None:
    assert response.status_code == status
    html = response.content.decode()
    assert f'data-testid="{testid}"' in html and "/static/workspace.css" in html, html[:300]


def test_a_form_body_over_the_limit_gets_the_400_page(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = client.post("/login/", {"username": "a" * 1000, "password": "b"})
    assert_project_page(response, 400, "bad-request")


def test_too_many_form_fields_get_the_400_page(client, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    response = client.post("/login/", {f"f{i}": "x" for i in range(10)})
    assert_project_page(response, 400, "bad-request")


def test_a_login_without_its_csrf_token_gets_the_project_page():
    response = Client(enforce_csrf_checks=True).post("/login/", {"username": "a", "password": "b"})
    assert_project_page(response, 403, "csrf-failure")


@pytest.mark.parametrize(
    "body",
    [
        {"username": "al\x00ice", "password": "x"},
        {"username": "\u202eecila\u200b", "password": "\u0301" * 5000},
    ],
    ids=["nul", "rtl-zero-width-combining"],
)
def test_odd_text_in_the_login_form_is_a_form_error_not_a_500(client, body):
    UserFactory(username="alice")
    response = client.post("/login/", body)
    assert response.status_code == 200
    assert 'data-testid="login-error"' in response.content.decode()


@pytest.mark.parametrize(
    "path", ["/?page=%00", "/?page=-1", "/?page=" + "9" * 40, "/?page=%ED%A0%80", "/jobs/new/?x=%ff%00"]
)
def test_odd_query_strings_on_pages_are_not_errors(client, user, path):
    client.force_login(user)
    assert client.get(path).status_code == 200


@pytest.mark.parametrize(
    "path", ["/jobs/%00/", "/jobs/not-a-uuid/", "/jobs/00000000-0000-0000-0000-000000000000/"]
)
def test_a_bad_job_id_gets_the_404_page(client, user, path):
    client.force_login(user)
    assert_project_page(client.get(path), 404, "not-found")


def test_the_500_page_renders_without_a_request():
    # Django renders 500.html with no context at all (the request may be what broke).
    html = render_to_string("500.html")
    assert 'data-testid="server-error"' in html
