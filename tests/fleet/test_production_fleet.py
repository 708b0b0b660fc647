"""The production topology end to end: daphne, two Celery workers on different queues, PostgreSQL and
Redis. Jobs go in over the REST API; the submit/poll worker is killed with SIGKILL mid-run and started
again; every job still completes, every segment was created exactly once at the provider, no clip is
lost, and each job's WebSocket stream ends in `completed`."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
import requests
from django.test import Client
from rest_framework.authtoken.models import Token

from jobs.models import JobStatus, SegmentStatus, VideoJob
from tests.support.daphne import Daphne
from tests.support.worker import wait_for, worker_env

from .conftest import FLEET_KEY, start_worker

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

JOBS = 3
SEGMENTS = 3


def watch(url: str, cookie: str, origin: str, into: list[dict], ready: threading.Event) -> None:
    """Collect a job's socket messages until its final job-status (or a deadline)."""
    from websockets.sync.client import connect

    deadline = time.monotonic() + 150
    with connect(url, additional_headers={"Cookie": f"sessionid={cookie}", "Origin": origin}) as socket_:
        ready.set()
        while time.monotonic() < deadline:
            try:
                message = json.loads(socket_.recv(timeout=5))
            except TimeoutError:
                continue
            into.append(message)
            if message.get("event") == "job-status" and message["data"]["status"] in {"completed", "failed"}:
                return


def test_fleet_survives_a_killed_worker(fleet_dirs, fleet_api, redis_clean, fleet_settings, user):
    fleet_api.config.latency = 5.0
    env = worker_env(
        fleet_dirs / "media", fleet_dirs / "data", SORA_BASE_URL=fleet_api.url, SORA_API_KEY=FLEET_KEY
    )
    from django.conf import settings

    web = Daphne(
        # The same SECRET_KEY as this process, which writes the session the socket logs in with.
        {
            **os.environ,
            **env,
            "SECRET_KEY": settings.SECRET_KEY,
            "SECURE_SSL_REDIRECT": "0",
            "SECURE_COOKIES": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
        },
        fleet_dirs / "daphne.log",
    )
    submitter = start_worker("submitter", fleet_dirs, fleet_api, queues="submit,poll")
    assembler = start_worker("assembler", fleet_dirs, fleet_api, queues="assemble", concurrency=1)
    workers = [submitter, assembler]
    try:
        web.start()
        token = Token.objects.create(user=user).key
        browser = Client()
        browser.force_login(user)
        session = browser.cookies["sessionid"].value

        api = requests.Session()
        api.headers["Authorization"] = f"Token {token}"
        job_ids = []
        for n in range(JOBS):
            prompts = [f"Job {n} shot {i}: a lighthouse at dusk" for i in range(SEGMENTS)]
            response = api.post(
                f"{web.url}/api/video-jobs/",
                json={
                    "prompt": " ".join(prompts),
                    "duration_seconds": 4 * SEGMENTS,
                    "segment_seconds": 4,
                    "segmentation_mode": "manual",
                    "segments": [{"prompt": p} for p in prompts],
                    "provider": "sora",
                    "size": "1280x720",
                    "render": False,
                },
                timeout=30,
            )
            assert response.status_code == 201, response.text
            job_ids.append(response.json()["id"])

        streams: dict[str, list[dict]] = {job_id: [] for job_id in job_ids}
        watchers = []
        for job_id in job_ids:
            ready = threading.Event()
            thread = threading.Thread(
                target=watch,
                daemon=True,
                args=(
                    f"ws://127.0.0.1:{web.port}/ws/video-jobs/{job_id}/",
                    session,
                    web.url,
                    streams[job_id],
                    ready,
                ),
            )
            thread.start()
            assert ready.wait(15), "the socket did not open"
            watchers.append(thread)
        for job_id in job_ids:
            assert api.post(f"{web.url}/api/video-jobs/{job_id}/render/", timeout=30).status_code == 202

        total = JOBS * SEGMENTS
        wait_for(
            lambda: (
                VideoJob.objects.filter(id__in=job_ids)
                .values("segments")
                .exclude(segments__provider_task_id="")
                .count()
                == total
            ),
            40,
            what="every segment to be submitted",
        )
        submitter.kill()  # mid-poll: every clip is rendering at the provider
        submitter.stop()
        assert fleet_api.stats.creates == total
        submitter = start_worker("submitter-2", fleet_dirs, fleet_api, queues="submit,poll")
        workers[0] = submitter

        def all_done() -> bool:
            states = set(VideoJob.objects.filter(id__in=job_ids).values_list("status", flat=True))
            return states <= {JobStatus.COMPLETED, JobStatus.FAILED}

        wait_for(all_done, 120, interval=0.5, what="every job to finish after the restart")
        for thread in watchers:
            thread.join(timeout=30)
    finally:
        for worker in workers:
            worker.stop()
        web.stop()

    jobs = list(VideoJob.objects.filter(id__in=job_ids))
    assert {job.status for job in jobs} == {JobStatus.COMPLETED}, [job.error for job in jobs]
    # Exactly one create per segment at the provider, despite the kill.
    assert fleet_api.stats.creates == total and set(fleet_api.stats.creates_by_prompt.values()) == {1}
    for job in jobs:
        segments = list(job.segments.all())
        assert {s.status for s in segments} == {SegmentStatus.COMPLETED}
        assert all(Path(s.clip.path).exists() for s in segments)  # no clip lost
        assert Path(job.output_video.path).exists()
    for job_id, messages in streams.items():
        statuses = [m["data"]["status"] for m in messages if m.get("event") == "job-status"]
        assert messages and messages[0]["event"] == "snapshot"
        assert statuses and statuses[-1] == "completed", (job_id, statuses)
