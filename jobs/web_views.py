"""The web workspace: server-rendered pages, every one scoped to request.user through the selectors.

The pages only read. Writes (create, upload, render, retry, cancel, re-render) go from the page's ES
module to the REST API, which calls the services, so the browser and API clients share one validated
path and one error shape. Live progress comes over the job's WebSocket (realtime.consumers).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from jobs import selectors
from jobs.catalogue import provider_rows
from jobs.events import job_state
from jobs.models import ACTIVE_JOB_STATUSES, Continuity
from segmentation.registry import strategy_choices

JOBS_PER_PAGE = 25
# The new-job slider: whole segments of the default length, up to MAX_DURATION_SECONDS (the longest
# job the planner accepts from any client).
SLIDER_DEFAULT_SECONDS = 30.0
# Offered for providers that accept any even WIDTHxHEIGHT (the local one); 320x240 renders fastest.
FREE_SIZES = ("1280x720", "720x1280", "854x480", "640x360", "320x240")


class WorkspaceLoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True


@login_required
def job_list(request: HttpRequest) -> HttpResponse:
    # "My jobs": staff may open anyone's job by URL, but their home page lists their own.
    jobs = selectors.video_job_list(user=request.user).filter(owner=request.user)
    page = Paginator(jobs, JOBS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "jobs/list.html", {"page": page, "active_statuses": sorted(ACTIVE_JOB_STATUSES)})


@login_required
def job_new(request: HttpRequest) -> HttpResponse:
    return render(request, "jobs/new.html", {"workspace": _new_job_config(), "form": _form_choices()})


@login_required
def job_detail(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    job = selectors.video_job_detail(user=request.user, job_id=job_id)
    if job is None:  # someone else's job or none at all: the same 404
        raise Http404("No such job.")
    state = job_state(job)
    api_root = reverse("api:video-job-detail", kwargs={"job_id": job.id})
    config = {
        "page": "job",
        "job": state,
        "ws_path": f"/ws/video-jobs/{job.id}/",
        "job_model": f"{job.provider}:{job.model}",
        "api": {
            "job": api_root,
            "render": reverse("api:video-job-render", kwargs={"job_id": job.id}),
            "retry": reverse("api:video-job-retry", kwargs={"job_id": job.id}),
            "cancel": reverse("api:video-job-cancel", kwargs={"job_id": job.id}),
            # {index} is filled in by the page for the segment's button.
            "segment_rerender": f"{api_root}segments/{{index}}/rerender/",
        },
    }
    return render(request, "jobs/detail.html", {"job": job, "state": state, "workspace": config})


def provider_catalog() -> list[dict[str, Any]]:
    """The catalogue's rows as the new-job page offers them: the menus of providers (unavailable ones
    disabled, with the reason), models and sizes. Prices come from the server's estimate."""
    catalog = []
    for row in provider_rows():
        models = [
            {
                "id": model["id"],
                "label": model["label"],
                # A model that renders any size gets a short list of common ones.
                "sizes": [s for sizes in model["sizes"].values() for s in sizes] or list(FREE_SIZES),
                "features": model["features"],
            }
            for model in row["models"]
        ]
        reason = f"needs {' and '.join(row['missing_settings'])}" if row["missing_settings"] else ""
        catalog.append(
            {
                "name": row["name"],
                "label": row["label"],
                "available": row["available"],
                "reason": reason,
                "default_model": row["default_model"],
                "models": models,
            }
        )
    return catalog


def _new_job_config() -> dict[str, Any]:
    segment = settings.DEFAULT_SEGMENT_SECONDS
    slider_max = _slider_max(segment)
    return {
        "page": "new",
        "providers": provider_catalog(),
        "default_provider": settings.DEFAULT_PROVIDER,
        "default_size": settings.DEFAULT_VIDEO_SIZE,
        "segment_seconds": segment,
        "duration": {"min": segment, "max": slider_max, "step": segment, "default": SLIDER_DEFAULT_SECONDS},
        "upload_max_bytes": settings.UPLOAD_MAX_BYTES,
        "api": {
            "jobs": reverse("api:video-job-list"),
            "estimate": reverse("api:estimate"),
            "job_page": reverse("workspace:job-detail", kwargs={"job_id": uuid.UUID(int=0)}),
        },
    }


def _slider_max(segment: float) -> float:
    """The longest duration the slider offers: the longest job allowed, in whole segments."""
    return max(segment, settings.MAX_DURATION_SECONDS // segment * segment)


def _strategy_options() -> list[dict[str, str]]:
    """The automatic strategies as the menu shows them: a short name in the option (a long option is
    cut off inside a select) and the whole description in a hint below it, which wraps."""
    options = []
    for name, text in strategy_choices():
        if name == "manual":  # manual is the page's own mode, not a choice in this menu
            continue
        label, _, description = text.partition(": ")
        description = description[:1].upper() + description[1:]
        options.append(
            {"name": name, "label": label if description else name, "description": description or text}
        )
    return options


def _form_choices() -> dict[str, Any]:
    segment = settings.DEFAULT_SEGMENT_SECONDS
    slider_max = _slider_max(segment)
    default = min(SLIDER_DEFAULT_SECONDS, slider_max)
    return {
        "strategies": _strategy_options(),
        "continuities": Continuity.choices,
        "providers": provider_catalog(),
        "default_provider": settings.DEFAULT_PROVIDER,
        "duration_min": segment,
        "duration_max": slider_max,
        "duration_step": segment,
        "duration_default": default,
        "segment_count_default": int(default // segment),
    }
