"""A bare Django JSON view: the baseline the API benchmark (bench/api.py) compares against.

Same server, same middleware, no DRF, no database: what is left is the cost of the stack itself.
Routed only when settings.DEBUG or BENCH_VIEWS=1 (see jobs.api.urls).
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse


def bare_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True, "view": "bare"})
