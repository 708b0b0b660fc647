"""The project's own 404 and 500 pages, also with DEBUG on as `make serve` runs (issue 14, point 8)."""

from __future__ import annotations

import logging

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import include, path

pytestmark = pytest.mark.django_db


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("the view fell over")


# The project's URLs plus one view that crashes (this module is the URLconf of the tests below).
urlpatterns = [path("boom/", boom), path("", include("sora_controller.urls"))]

MISSING_JOB = "/jobs/00000000-0000-0000-0000-000000000001/"


@pytest.fixture
def debug(settings):
    settings.DEBUG = True
    settings.SHOW_DEBUG_ERROR_PAGES = False
    return settings


def browser(user) -> Client:
    client = Client(raise_request_exception=False)  # answer as a server would, do not re-raise
    client.force_login(user)
    return client


@pytest.mark.parametrize("path", [MISSING_JOB, "/no/such/page/"])
def test_a_missing_page_is_the_projects_404_with_debug_on(debug, user, path):
    response = browser(user).get(path)
    assert response.status_code == 404
    assert b'data-testid="not-found"' in response.content
    assert b"DEBUG = True" not in response.content and b"URLconf" not in response.content


@pytest.mark.urls(__name__)
def test_a_crash_is_the_projects_500_with_debug_on_and_still_logged(debug, user, caplog):
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = browser(user).get("/boom/")
    assert response.status_code == 500
    assert b'data-testid="server-error"' in response.content
    assert b"Traceback" not in response.content and b"the view fell over" not in response.content
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert record.levelno == logging.ERROR and record.exc_info[0] is RuntimeError


@pytest.mark.urls(__name__)
def test_show_debug_error_pages_brings_back_djangos_pages(debug, user):
    debug.SHOW_DEBUG_ERROR_PAGES = True
    client = browser(user)
    assert b"DEBUG = True" in client.get("/no/such/page/").content
    crashed = client.get("/boom/")
    assert crashed.status_code == 500 and b"the view fell over" in crashed.content


def test_api_errors_keep_their_json_shape_with_debug_on(debug, user):
    response = browser(user).get("/api/video-jobs/00000000-0000-0000-0000-000000000001/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")


@pytest.mark.urls(__name__)
def test_with_debug_off_django_uses_the_projects_pages_itself(settings, user):
    settings.DEBUG = False
    client = browser(user)
    assert b'data-testid="not-found"' in client.get(MISSING_JOB).content
    assert b'data-testid="server-error"' in client.get("/boom/").content
