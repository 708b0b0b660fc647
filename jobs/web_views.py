"""The web workspace: server-rendered pages, every one scoped to request.user through the selectors.

The pages only read. Writes (create, upload, render, retry, cancel, re-render) go from the page's ES
module to the REST API, which calls the services, so the browser and API clients share one validated
path and one error shape. Live progress comes over the job's WebSocket (realtime.consumers).
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from jobs import selectors
from jobs.catalogue import provider_rows
from jobs.error_text import SENTENCES, explain
from jobs.eta import segment_render_time
from jobs.events import job_state
from jobs.models import ACTIVE_JOB_STATUSES, Continuity, JobStatus, ReferenceImage, VideoJob
from jobs.planning import job_spec_of
from segmentation.registry import strategy_choices

JOBS_PER_PAGE = 25
SEARCH_MAX_CHARS = 200
NIL = uuid.UUID(int=0)  # stands for a job id in URL templates the page fills in

# What a reference image does in each continuity mode, in the person's words (rendering.frames and
# jobs.selectors.segment_reference_image decide it; these sentences describe those rules).
CONTINUITY_HINTS = {
    Continuity.PARALLEL: "All cards render at once. A card's own image is that card's first frame; the image "
    "for the whole video is the first frame of card 1.",
    Continuity.CHAIN: "Cards render one after another, each starting from the previous clip's last frame. "
    "Only card 1 uses an image (its own, or the one for the whole video); images on later cards are not "
    "used.",
    Continuity.REFERENCE: "The image for the whole video guides every card (on the model's reference "
    "slots where it has them, otherwise as each card's first frame). This mode needs that image.",
    Continuity.BRIDGE: "Each card runs from its own image to the next card's image (where the model takes a "
    "last frame): give cards images to use as keyframes.",
}
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
    # "My videos": staff may open anyone's job by URL, but their home page lists their own.
    query = request.GET.get("q", "").strip()[:SEARCH_MAX_CHARS]
    status = request.GET.get("status", "")
    if status not in JobStatus.values:
        status = ""
    jobs = selectors.video_job_list(user=request.user, status=status or None).filter(owner=request.user)
    if query:
        jobs = jobs.filter(Q(title__icontains=query) | Q(prompt__icontains=query))
    page = Paginator(jobs, JOBS_PER_PAGE).get_page(request.GET.get("page"))
    kept = {key: value for key, value in (("q", query), ("status", status)) if value}
    config = {
        "page": "list",
        "job_page": reverse("workspace:job-detail", kwargs={"job_id": NIL}),
        "api": {
            "job": reverse("api:video-job-detail", kwargs={"job_id": NIL}),
            "render": reverse("api:video-job-render", kwargs={"job_id": NIL}),
            "duplicate": reverse("api:video-job-duplicate", kwargs={"job_id": NIL}),
        },
    }
    context = {
        "page": page,
        "query": query,
        "status": status,
        "statuses": JobStatus.choices,
        "keep_query": f"{urlencode(kept)}&" if kept else "",
        "active_statuses": sorted(ACTIVE_JOB_STATUSES),
        "workspace": config,
    }
    return render(request, "jobs/list.html", context)


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
    segment = f"{api_root}segments/{{index}}/"  # {index} (and {number}) are filled in by the page
    render_time = segment_render_time(provider=job.provider, model=job.model)
    config = {
        "page": "job",
        "job": {**state, "continuity": job.continuity},
        "ws_path": f"/ws/video-jobs/{job.id}/",
        "job_model": f"{job.provider}:{job.model}",
        "now": timezone.now().isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "eta": {"segment_seconds": render_time.seconds, "samples": render_time.samples},
        "error_sentences": SENTENCES,
        "list_url": reverse("workspace:job-list"),
        "job_page": reverse("workspace:job-detail", kwargs={"job_id": NIL}),
        "api": {
            "job": api_root,
            "render": reverse("api:video-job-render", kwargs={"job_id": job.id}),
            "retry": reverse("api:video-job-retry", kwargs={"job_id": job.id}),
            "cancel": reverse("api:video-job-cancel", kwargs={"job_id": job.id}),
            "versions": reverse("api:version-list", kwargs={"job_id": job.id}),
            "preview": reverse("api:video-job-preview", kwargs={"job_id": job.id}),
            "duplicate": reverse("api:video-job-duplicate", kwargs={"job_id": job.id}),
            "segment": segment,
            "segment_rerender": f"{segment}rerender/",
            "takes": f"{segment}takes/",
            "pick": f"{segment}takes/{{number}}/pick/",
        },
    }
    if job.status == JobStatus.DRAFT:
        # A draft's cards are edited on the page (static/draftplan.js) and saved in one PUT.
        config["plan"] = _plan_config(job, state)
        config["api"].update(
            plan=reverse("api:video-job-plan", kwargs={"job_id": job.id}),
            estimate=reverse("api:estimate"),
            reference_images=reverse("api:reference-image-list", kwargs={"job_id": job.id}),
        )
    # The page shows provider errors as sentences; the raw code stays in the admin and the API.
    segments = [{**s, "error_text": explain(s["error"])} for s in state["segments"]]
    context = {
        "job": job,
        "state": state,
        "segments": segments,
        "job_error": explain(job.error),
        "workspace": config,
        "plan": config.get("plan"),
    }
    return render(request, "jobs/detail.html", context)


def _plan_config(job: VideoJob, state: dict[str, Any]) -> dict[str, Any]:
    """What a draft's card editor starts from: its cards (each with the newest image bound to its segment,
    the one a render uses), and the estimate's fields: the job's own spec (jobs.planning.job_spec_of,
    the same one jobs.plan_edit plans from) in the API's words, with manual segments."""
    index_of = {segment.id: segment.index for segment in job.segments.all()}
    newest: dict[int, ReferenceImage] = {}
    for image in job.reference_images.all():  # prefetched oldest first: the last one wins
        if image.segment_id in index_of:
            newest[index_of[image.segment_id]] = image
    spec = job_spec_of(job)
    return {
        "segment_seconds": job.segment_seconds,
        "max_cards": max(1, int(settings.MAX_DURATION_SECONDS // job.segment_seconds)),
        "upload_max_bytes": settings.UPLOAD_MAX_BYTES,
        "cards": [
            {
                "prompt": segment["prompt"],
                "source": segment["index"],
                "image_url": newest[segment["index"]].image.url if segment["index"] in newest else None,
            }
            for segment in state["segments"]
        ],
        "estimate": {
            "prompt": spec.prompt,
            "segment_seconds": spec.segment_seconds,
            "segmentation_mode": "manual",
            "continuity": spec.continuity,
            "reference_fit": spec.reference_fit,
            "provider": spec.provider,
            "model": spec.model,
            "size": spec.size,
            "fps": spec.fps,
            "fallback_models": list(spec.fallback_models),
        },
    }


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
        "continuity_hints": {str(mode): text for mode, text in CONTINUITY_HINTS.items()},
        "api": {
            "jobs": reverse("api:video-job-list"),
            "estimate": reverse("api:estimate"),
            "job_page": reverse("workspace:job-detail", kwargs={"job_id": NIL}),
            "render": reverse("api:video-job-render", kwargs={"job_id": NIL}),
            "reference_images": reverse("api:reference-image-list", kwargs={"job_id": NIL}),
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
    providers = provider_catalog()
    return {
        "strategies": _strategy_options(),
        "continuities": Continuity.choices,
        "providers": providers,
        "unavailable": [p for p in providers if not p["available"]],
        "default_provider": settings.DEFAULT_PROVIDER,
        "duration_min": segment,
        "duration_max": slider_max,
        "duration_step": segment,
        "duration_default": default,
        "segment_count_default": int(default // segment),
    }
