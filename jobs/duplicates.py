"""Duplicate a job as a new draft: the same story, cards, model and reference images, nothing rendered.

The copy keeps every segment's prompt as it stands (edits included) by planning it as manual cards; a
job whose cards no longer fit the manual planner (e.g. snapped lengths) is planned again from its
prompt and strategy instead. Nothing of the original changes and nothing is charged.
"""

from __future__ import annotations

from typing import Any

from django.core.files.storage import default_storage

from .errors import InvalidInput
from .models import VideoJob
from .planning import JobSpec, job_spec_of
from .services import ReferenceUpload, video_job_submit

COPY_SUFFIX = " (copy)"
TITLE_MAX = 200


def _copy_title(title: str) -> str:
    if not title:
        return ""
    return title[: TITLE_MAX - len(COPY_SUFFIX)] + COPY_SUFFIX


def _spec(job: VideoJob, *, manual: bool) -> JobSpec:
    if not manual:
        return job_spec_of(job, title=_copy_title(job.title))
    prompts = [s.prompt for s in job.segments.order_by("index")]
    return job_spec_of(job, title=_copy_title(job.title), strategy="manual", manual_prompts=prompts)


def _about_segments(errors: dict[str, list[str]]) -> bool:
    # "segments" for the cards as a whole, "segments.<i>.prompt" for one card's prompt.
    return any(name == "segments" or name.startswith("segments.") for name in errors)


def video_job_duplicate(*, job: VideoJob, owner: Any) -> VideoJob:
    """A new draft job for `owner` made from `job` (see the module doc). Refused like any new job (400)
    when the job's provider can no longer be used or a budget cap is reached."""
    handles = []
    try:
        references = []
        for image in job.reference_images.select_related("segment").order_by("id"):
            handle = default_storage.open(image.image.name, "rb")
            handles.append(handle)
            index = image.segment.index if image.segment_id else None
            references.append(ReferenceUpload(file=handle, segment_index=index))
        manual = job.strategy == "manual" or job.segments.filter(is_manual=True).exists()
        try:
            return video_job_submit(owner=owner, spec=_spec(job, manual=manual), references=references)
        except InvalidInput as exc:
            if not manual or not _about_segments(exc.errors):
                raise
            for handle in handles:
                handle.seek(0)
            return video_job_submit(owner=owner, spec=_spec(job, manual=False), references=references)
    finally:
        for handle in handles:
            handle.close()
