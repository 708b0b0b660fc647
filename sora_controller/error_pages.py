"""The project's own 404 and 500 pages, also when DEBUG is on.

`make serve` runs with DEBUG on (Django then serves the workspace's static files and reloads them), and
with DEBUG on Django answers a missing page with its technical 404 (every URL pattern listed) and a
crash with its technical 500 (a traceback, settings and all). People trying the workspace should meet
the pages production shows them, so this middleware answers with templates/404.html and 500.html
whenever DEBUG is on, unless SHOW_DEBUG_ERROR_PAGES asks for Django's pages back (a developer chasing a
bug). With DEBUG off it does nothing: Django already uses the project's pages. A crash is still logged
with its traceback on the `django.request` logger, exactly as Django logs it.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core import signals
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.log import log_response
from django.views.defaults import page_not_found, server_error

# Django answers these itself with their own status, DEBUG or not: left to it.
_HANDLED_BY_DJANGO = (PermissionDenied, BadRequest, SuspiciousOperation, MultiPartParserError)


def project_pages_replace_debug_pages() -> bool:
    return settings.DEBUG and not settings.SHOW_DEBUG_ERROR_PAGES


class ProjectErrorPagesMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # No URL matched: Django built its technical 404 before any view or process_exception ran.
        if (
            response.status_code == 404
            and getattr(request, "resolver_match", None) is None
            and project_pages_replace_debug_pages()
        ):
            return page_not_found(request, Http404())
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not project_pages_replace_debug_pages() or isinstance(exception, _HANDLED_BY_DJANGO):
            return None
        if isinstance(exception, Http404):
            return page_not_found(request, exception)
        # What Django does for an uncaught exception, minus the technical page: tell the listeners
        # (error reporters, the test client) and log the traceback.
        signals.got_request_exception.send(sender=None, request=request)
        response = server_error(request)
        log_response(
            "%s: %s", "Internal Server Error", request.path, response=response, request=request,
            exception=exception,
        )  # fmt: skip
        return response
