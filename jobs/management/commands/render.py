"""`manage.py render "PROMPT" --duration 30 ...`: make a video from the command line.

It submits through the same service as the API (jobs.services.video_job_submit: plan, store with the
reference image, start), watches the job with a live progress bar per segment and overall, and prints
where the video is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs import ledger, services
from jobs.catalogue import provider_names
from jobs.errors import IllegalTransition, InvalidInput
from jobs.models import FINISHED_JOB_STATUSES, Continuity, JobStatus, SegmentStatus, VideoJob
from jobs.planning import JobSpec
from segmentation.registry import strategy_names

BAR_WIDTH = 24


def bar(percent: float, width: int = BAR_WIDTH) -> str:
    filled = round(width * max(0.0, min(100.0, percent)) / 100)
    return "█" * filled + "░" * (width - filled)


class Command(BaseCommand):
    help = "Render one long video from a prompt and print where it is."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "prompt", help="the whole prompt (for --strategy manual: the overall description)"
        )
        parser.add_argument("--duration", type=float, required=True, help="length of the video in seconds")
        parser.add_argument("--segment-seconds", type=float, default=None, help="seconds per segment (10)")
        parser.add_argument(
            "--strategy", default=settings.DEFAULT_STRATEGY, help=f"one of: {', '.join(strategy_names())}"
        )
        parser.add_argument(
            "--segment",
            action="append",
            default=[],
            dest="segments",
            metavar="PROMPT",
            help="one segment's prompt, in order (repeat; implies --strategy manual)",
        )
        parser.add_argument(
            "--reference", type=Path, default=None, help="a PNG, JPEG or WebP reference image"
        )
        parser.add_argument("--provider", default=None, help=f"one of: {', '.join(provider_names())}")
        parser.add_argument("--model", default="", help="the provider's model (its default when omitted)")
        parser.add_argument("--size", default=None, help="WIDTHxHEIGHT, e.g. 1280x720")
        parser.add_argument("--fps", type=int, default=None, help="frames per second (30)")
        parser.add_argument(
            "--fallback",
            action="append",
            default=[],
            dest="fallbacks",
            metavar="PROVIDER:MODEL",
            help="render a segment on this model when the provider is down (repeat, in order)",
        )
        parser.add_argument("--continuity", default=Continuity.PARALLEL, choices=Continuity.values)
        parser.add_argument(
            "-o", "--output", type=Path, default=None, help="copy the finished video here (.mp4)"
        )
        parser.add_argument("--user", default=settings.SORA_CLI_USER, help="owner of the job (SORA_CLI_USER)")
        parser.add_argument(
            "--timeout", type=float, default=0, help="give up after this many seconds (0: never)"
        )
        parser.add_argument(
            "--no-cache",
            dest="use_cache",
            action="store_false",
            help="render every segment afresh instead of reusing identical finished clips",
        )

    def handle(self, *args, **options) -> None:
        output = self._check_output(options["output"])
        reference = self._check_reference(options["reference"])
        strategy = options["strategy"]
        if options["segments"] and strategy == settings.DEFAULT_STRATEGY:
            strategy = "manual"
        owner = self._owner(options["user"])
        spec = JobSpec(
            prompt=options["prompt"],
            duration_seconds=options["duration"],
            segment_seconds=options["segment_seconds"],
            strategy=strategy,
            manual_prompts=options["segments"],
            continuity=options["continuity"],
            provider=options["provider"],
            model=options["model"],
            size=options["size"],
            fps=options["fps"],
            use_cache=options["use_cache"],
            fallback_models=options["fallbacks"],
        )
        try:
            with contextlib.ExitStack() as stack:
                references = []
                if reference is not None:
                    references.append(
                        services.ReferenceUpload(file=stack.enter_context(open(reference, "rb")))
                    )
                # Nothing half-made stays behind on a refusal: the job, its image and its start are one.
                job = services.video_job_submit(owner=owner, spec=spec, references=references, render=True)
        except (InvalidInput, IllegalTransition) as exc:
            raise CommandError(_describe(exc) if isinstance(exc, InvalidInput) else str(exc)) from None
        self._print_plan(job)

        job = self._watch(job, options["timeout"])
        if job.status != JobStatus.COMPLETED:
            reason = job.error or f"the job ended {job.status}"
            raise CommandError(f"render failed: {reason}")
        path = self._deliver(job, output)
        self.stdout.write(self.style.SUCCESS(f"video: {path}"))
        self.stdout.write(f"duration: {job.output_duration_seconds:.2f} s")
        self.stdout.write(f"segments: {job.segments.count()}")
        self.stdout.write(
            f"cost: ${job.cost_spent_usd:.2f} spent (estimate ${job.cost_estimate_usd:.2f} for "
            f"{job.billed_seconds_estimate:g} billed seconds on {job.provider}/{job.model})"
        )
        saved = ledger.job_saved(job.id)
        reused = job.segments.filter(cached_from__isnull=False).count()
        if reused:
            self.stdout.write(f"cache: {reused} identical clip(s) reused, ${saved:.2f} saved")
        self.stdout.write(f"job: {job.id}")

    # --- input checks ------------------------------------------------------------------------------

    def _check_output(self, output: Path | None) -> Path | None:
        if output is None:
            return None
        if output.suffix.lower() != ".mp4":
            raise CommandError(f"--output must end in .mp4, got {output}")
        if output.exists() and output.is_dir():
            raise CommandError(f"--output {output} is a directory; name a file")
        parent = output.parent if str(output.parent) else Path(".")
        if not parent.exists():
            raise CommandError(f"--output directory {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise CommandError(f"--output directory {parent} is not writable")
        return output

    def _check_reference(self, reference: Path | None) -> Path | None:
        if reference is None:
            return None
        if not reference.is_file():
            raise CommandError(f"--reference {reference} is not a file")
        return reference

    def _owner(self, username: str):
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        return user

    # --- progress ----------------------------------------------------------------------------------

    def _print_plan(self, job: VideoJob) -> None:
        count = job.segments.count()
        self.stdout.write(
            f"job {job.id}: {job.duration_seconds:g} s in {count} segment{'s' * (count != 1)} "
            f"({job.strategy}, {job.continuity}) on {job.provider}/{job.model} at {job.size}; "
            f"estimate ${job.cost_estimate_usd:.2f} for {job.billed_seconds_estimate:g} billed seconds"
        )
        for notice in job.notices:
            self.stdout.write(self.style.WARNING(f"note: {notice}"))

    def _watch(self, job: VideoJob, timeout: float) -> VideoJob:
        tty = self.stdout.isatty()
        started = time.monotonic()
        drawn_lines = 0
        last_text = ""
        try:
            while True:
                job.refresh_from_db()
                segments = list(job.segments.order_by("index").values("index", "status", "progress", "error"))
                lines = [
                    f"  segment {s['index'] + 1:>3} {bar(s['progress'])} {s['progress']:5.1f}% {s['status']}"
                    + (f"  {s['error'][:80]}" if s["status"] == SegmentStatus.FAILED and s["error"] else "")
                    for s in segments
                ]
                lines.append(f"  overall     {bar(job.progress)} {job.progress:5.1f}% {job.status}")
                text = "\n".join(lines)
                if tty:
                    if drawn_lines:
                        self.stdout.write(f"\x1b[{drawn_lines}F\x1b[J", ending="")
                    self.stdout.write(text)
                    drawn_lines = len(lines)
                elif text != last_text:
                    # Not a terminal (a log, CI): print the table only when something changed.
                    self.stdout.write(text)
                last_text = text
                self.stdout.flush()
                if job.status in FINISHED_JOB_STATUSES:
                    return job
                if timeout and time.monotonic() - started > timeout:
                    services.video_job_cancel(job=job)
                    raise CommandError(f"gave up after {timeout:g} s; the job was cancelled")
                time.sleep(0.25)
        except KeyboardInterrupt:
            with contextlib.suppress(IllegalTransition):
                services.video_job_cancel(job=job)
            self.stderr.write("interrupted: the job was cancelled")
            sys.exit(130)

    def _deliver(self, job: VideoJob, output: Path | None) -> str:
        if output is None:
            try:
                return default_storage.path(job.output_video.name)
            except NotImplementedError:
                return job.output_video.url
        partial = output.with_name(f".{output.name}.partial-{uuid.uuid4().hex[:8]}")
        try:
            with default_storage.open(job.output_video.name, "rb") as source, open(partial, "wb") as dest:
                shutil.copyfileobj(source, dest, length=1024 * 1024)
            os.replace(partial, output)
        finally:
            partial.unlink(missing_ok=True)
        return str(output.resolve())


def _describe(exc: InvalidInput) -> str:
    flags = {
        "duration_seconds": "--duration",
        "segment_seconds": "--segment-seconds",
        "segments": "--segment",
        "strategy": "--strategy",
        "provider": "--provider",
        "model": "--model",
        "size": "--size",
        "fps": "--fps",
        "continuity": "--continuity",
        "fallback_models": "--fallback",
        "prompt": "PROMPT",
        "image": "--reference",
    }
    return "; ".join(
        f"{flags.get(field, field)}: {' '.join(messages)}" for field, messages in exc.errors.items()
    )
