"""The domain: a VideoJob is split into Segments, each rendered to a clip; ReferenceImages guide them.

State fields (status, progress, costs, files) are only changed by jobs.services, which claims rows with
conditional UPDATEs; nothing else writes them.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone


class JobStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    QUEUED = "queued", "Queued"
    RENDERING = "rendering", "Rendering"
    ASSEMBLING = "assembling", "Assembling"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


# The named status sets. Every rule that asks "is this job/segment in flight?" reads one of these, so
# the answer cannot drift between the services, the workers, the budget and the pages.

# A job in one of these states has work queued or running: it may not be edited, only cancelled.
ACTIVE_JOB_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.RENDERING, JobStatus.ASSEMBLING})
# A job whose segments may still be queued or rendering (assembly has not begun).
RENDERING_JOB_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.RENDERING})
# A job that has stopped: nothing runs until a person starts it again.
FINISHED_JOB_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class SegmentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    QUEUED = "queued", "Queued"
    RENDERING = "rendering", "Rendering"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


# A segment handed to the workers and not yet settled.
IN_FLIGHT_SEGMENT_STATUSES = frozenset({SegmentStatus.QUEUED, SegmentStatus.RENDERING})
# A segment that has not settled yet, including one never started: what a cancel stops.
UNSETTLED_SEGMENT_STATUSES = frozenset({SegmentStatus.PENDING, *IN_FLIGHT_SEGMENT_STATUSES})
# A segment that ended without a clip: what a retry renders again.
UNFINISHED_SEGMENT_STATUSES = frozenset({SegmentStatus.FAILED, SegmentStatus.CANCELLED})
# A segment a run has finished with, one way or the other: the job's next step is due.
SETTLED_SEGMENT_STATUSES = frozenset({SegmentStatus.COMPLETED, *UNFINISHED_SEGMENT_STATUSES})
# A segment whose prompt and images a person may change (not while the workers hold it).
EDITABLE_SEGMENT_STATUSES = frozenset(
    {SegmentStatus.PENDING, SegmentStatus.COMPLETED, *UNFINISHED_SEGMENT_STATUSES}
)


class Continuity(models.TextChoices):
    PARALLEL = "parallel", "Parallel: all segments at once"
    CHAIN = "chain", "Chain: each segment starts from the previous clip's last frame"
    REFERENCE = "reference", "Reference: every segment uses the job's reference images"
    BRIDGE = "bridge", "Bridge: each segment renders from its keyframe to the next segment's keyframe"


class ReferenceFit(models.TextChoices):
    COVER = "cover", "Cover: scale and crop to fill the frame"
    PAD = "pad", "Pad: scale to fit and letterbox"


def _job_dir(job_id: uuid.UUID) -> str:
    return f"jobs/{job_id}"


def job_output_path(instance: VideoJob, filename: str) -> str:
    return f"{_job_dir(instance.id)}/{filename}"


def segment_file_path(instance: Segment, filename: str) -> str:
    return f"{_job_dir(instance.job_id)}/segments/{filename}"


def reference_image_path(instance: ReferenceImage, filename: str) -> str:
    return f"{_job_dir(instance.job_id)}/references/{filename}"


class VideoJob(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="video_jobs")
    title = models.CharField(max_length=200, blank=True)
    prompt = models.TextField()
    duration_seconds = models.FloatField()
    segment_seconds = models.FloatField(default=10.0)
    strategy = models.CharField(max_length=40, default="even")
    continuity = models.CharField(max_length=20, choices=Continuity.choices, default=Continuity.PARALLEL)
    reference_fit = models.CharField(max_length=10, choices=ReferenceFit.choices, default=ReferenceFit.COVER)
    provider = models.CharField(max_length=40, default="local")
    model = models.CharField(max_length=80, blank=True)
    size = models.CharField(max_length=20, default="1280x720")
    fps = models.PositiveSmallIntegerField(default=30)

    status = models.CharField(
        max_length=20, choices=JobStatus.choices, default=JobStatus.DRAFT, db_index=True
    )
    progress = models.FloatField(default=0.0)
    cost_estimate_usd = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0"))
    billed_seconds_estimate = models.FloatField(default=0.0)
    cost_spent_usd = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0"))
    output_video = models.FileField(upload_to=job_output_path, max_length=300, blank=True)
    poster_image = models.FileField(upload_to=job_output_path, max_length=300, blank=True)
    output_duration_seconds = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    # Bumped every time a render starts, so late results of an abandoned run can be told apart.
    render_generation = models.PositiveIntegerField(default=0)
    # Reuse a finished clip with exactly the same inputs instead of paying for it again (rendering.cache).
    # Off: every segment is a fresh take.
    use_cache = models.BooleanField(
        default=True, help_text="Reuse an identical finished clip of the same owner instead of paying again"
    )
    # Models to render a segment on when its provider is down (connection errors, 5xx or capacity
    # refusals past TRANSIENT_RETRIES; never after a content refusal): "provider:model" strings, in order.
    fallback_models = models.JSONField(default=list, blank=True)
    # Things a person should know about how the job was planned, e.g. that the llm planner failed and
    # the `sentences` strategy planned it instead. A list of strings.
    notices = models.JSONField(default=list, blank=True)

    # The version (an assembled video, Version) output_video names, by its number; 0: none yet.
    version_number = models.PositiveIntegerField(default=0)
    # Recovery (jobs.leases): by when the job must have moved on (its run started, the step after a
    # settled segment taken, its assembly begun or heartbeated) before the reaper resumes it; the token
    # names the assembly run that holds it while it assembles.
    lease_token = models.CharField(max_length=32, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"])]
        permissions = [("operate_videojob", "Can render, retry, cancel and re-render video jobs")]
        constraints = [
            models.CheckConstraint(condition=models.Q(duration_seconds__gt=0), name="job_duration_positive"),
            models.CheckConstraint(condition=models.Q(segment_seconds__gt=0), name="job_segment_positive"),
            models.CheckConstraint(
                condition=models.Q(progress__gte=0) & models.Q(progress__lte=100), name="job_progress_0_100"
            ),
        ]

    def __str__(self) -> str:
        return self.title or f"Job {str(self.id)[:8]}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_JOB_STATUSES

    @property
    def is_terminal(self) -> bool:
        return self.status in FINISHED_JOB_STATUSES


class Segment(models.Model):
    job = models.ForeignKey(VideoJob, on_delete=models.CASCADE, related_name="segments")
    index = models.PositiveIntegerField()
    prompt = models.TextField()
    is_manual = models.BooleanField(
        default=False, help_text="True when a person wrote or overrode this prompt"
    )
    start_seconds = models.FloatField()
    end_seconds = models.FloatField()
    # What the provider renders and bills (>= the planned length; the extra is trimmed at assembly).
    render_seconds = models.FloatField(default=0.0)
    # The provider and model this segment renders on when a failover moved it off the job's (blank: the
    # job's), and "provider:model" of the render that made its clip.
    provider = models.CharField(max_length=40, blank=True)
    model = models.CharField(max_length=80, blank=True)
    rendered_by = models.CharField(max_length=130, blank=True)

    status = models.CharField(
        max_length=20, choices=SegmentStatus.choices, default=SegmentStatus.PENDING, db_index=True
    )
    progress = models.FloatField(default=0.0)
    provider_task_id = models.CharField(max_length=200, blank=True, db_index=True)
    provider_status = models.CharField(max_length=40, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    clip = models.FileField(upload_to=segment_file_path, max_length=300, blank=True)
    last_frame = models.FileField(upload_to=segment_file_path, max_length=300, blank=True)
    thumbnail = models.FileField(upload_to=segment_file_path, max_length=300, blank=True)
    cost_usd = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0"))
    error = models.TextField(blank=True)
    # sha256 of everything that decides the clip (rendering.cache.segment_cache_key), stored when the
    # segment completes so a later segment with the same inputs can reuse the clip.
    cache_key = models.CharField(max_length=64, blank=True, db_index=True)
    # The completed segment whose clip was copied instead of rendering (a cache hit); null otherwise.
    cached_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Set by a re-render: the person asked for a fresh take, so the cache is not consulted.
    bypass_cache = models.BooleanField(default=False)
    # The take (a kept render, Take) whose files clip/last_frame/thumbnail name, by its number; 0: none.
    take_number = models.PositiveIntegerField(default=0)
    # Recovery (jobs.leases): the run of render_segment that holds this segment, and by when it must
    # come back (heartbeat while it works, its poll countdown plus a grace while it waits); past that
    # the reaper hands the segment to a new run. `lease_waiting`: between polls, where a provider's
    # webhook may take the segment over instead of starting a second poll chain. `lease_poked`: a webhook
    # came while a step was running, so that step polls again at once instead of waiting.
    lease_token = models.CharField(max_length=32, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    lease_waiting = models.BooleanField(default=False)
    lease_poked = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [
            models.UniqueConstraint(fields=["job", "index"], name="segment_unique_index"),
            models.CheckConstraint(
                condition=models.Q(end_seconds__gt=models.F("start_seconds")), name="segment_positive_length"
            ),
        ]

    def __str__(self) -> str:
        return f"Segment {self.index + 1} of {self.job_id}"

    @property
    def duration_seconds(self) -> float:
        return self.end_seconds - self.start_seconds

    @property
    def render_provider(self) -> str:
        """The provider this segment renders on: its own after a failover, else the job's."""
        return self.provider or self.job.provider

    @property
    def render_model(self) -> str:
        return self.model if self.provider else self.job.model


class Take(models.Model):
    """One finished render of a segment. Every take is kept, so a person can compare takes, pick one and
    go back; the segment's own clip fields name the picked take's files (shared, never copied)."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="takes")
    number = models.PositiveIntegerField()
    prompt = models.TextField()
    clip = models.FileField(max_length=300)
    last_frame = models.FileField(max_length=300, blank=True)
    thumbnail = models.FileField(max_length=300, blank=True)
    duration_seconds = models.FloatField()
    rendered_by = models.CharField(max_length=130, blank=True)
    cost_usd = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0"))
    # Reused from an identical finished clip (the render cache) rather than rendered.
    cached = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["segment", "number"]
        constraints = [models.UniqueConstraint(fields=["segment", "number"], name="take_unique_number")]

    def __str__(self) -> str:
        return f"Take {self.number} of {self.segment}"


class Version(models.Model):
    """One assembled video of a job. Every version is kept with its own file, so a link to an earlier
    version keeps working after a re-render; the job's output_video names the newest."""

    job = models.ForeignKey(VideoJob, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    video = models.FileField(max_length=300)
    poster = models.FileField(max_length=300, blank=True)
    duration_seconds = models.FloatField()
    # The take number of each segment it was assembled from, in segment order.
    takes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job", "-number"]
        constraints = [models.UniqueConstraint(fields=["job", "number"], name="version_unique_number")]

    def __str__(self) -> str:
        return f"Version {self.number} of {self.job}"


class ReferenceImage(models.Model):
    job = models.ForeignKey(VideoJob, on_delete=models.CASCADE, related_name="reference_images")
    segment = models.ForeignKey(
        Segment, on_delete=models.CASCADE, related_name="reference_images", null=True, blank=True
    )
    image = models.FileField(upload_to=reference_image_path, max_length=300)
    content_type = models.CharField(max_length=40)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size_bytes = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"Reference image {self.pk} of {self.job_id}"


class SpendKind(models.TextChoices):
    RENDER = "render", "Render"
    WASTED = "wasted", "Lost render (billed but unusable)"
    CACHE_SAVING = "cache_saving", "Saved by the render cache"


class SpendEntry(models.Model):
    """One line of the spend ledger: a billed provider render, a billed render that was lost (expired
    download), or the amount a cache hit did not spend. Written by jobs.services in the same transaction
    as the state change it accounts for, so job.cost_spent_usd always equals the job's render + wasted
    lines.

    Lines outlive their job and segment (SET_NULL): deleting a job must not give its money back to the
    owner's daily or monthly budget.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="spend_entries"
    )
    job = models.ForeignKey(
        VideoJob, on_delete=models.SET_NULL, null=True, blank=True, related_name="spend_entries"
    )
    segment = models.ForeignKey(
        Segment, on_delete=models.SET_NULL, null=True, blank=True, related_name="spend_entries"
    )
    segment_index = models.PositiveIntegerField(null=True, blank=True)
    kind = models.CharField(max_length=20, choices=SpendKind.choices)
    amount_usd = models.DecimalField(max_digits=10, decimal_places=4)
    billed_seconds = models.FloatField(default=0.0)
    provider = models.CharField(max_length=40)
    model = models.CharField(max_length=80, blank=True)
    size = models.CharField(max_length=20, blank=True)
    provider_task_id = models.CharField(max_length=200, blank=True)
    note = models.CharField(max_length=300, blank=True)
    # A default rather than auto_now_add, so day/month windows can be tested with back-dated lines.
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "spend entries"
        indexes = [models.Index(fields=["owner", "kind", "created_at"])]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount_usd__gte=0), name="spend_amount_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ${self.amount_usd} ({self.provider}/{self.model})"


class WebhookEvent(models.Model):
    """A provider webhook delivery we accepted (signature checked). The unique event id makes a replayed
    delivery a no-op."""

    event_id = models.CharField(max_length=200, unique=True)
    provider = models.CharField(max_length=40, default="sora")
    type = models.CharField(max_length=80)
    video_id = models.CharField(max_length=200, blank=True, db_index=True)
    segment = models.ForeignKey(
        Segment, on_delete=models.SET_NULL, null=True, blank=True, related_name="webhook_events"
    )
    # What the delivery did: "advanced", "unknown_video", "not_rendering", "in_progress", "ignored_type".
    outcome = models.CharField(max_length=40)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
