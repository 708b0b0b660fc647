"""The fake Videos API speaks the protocol: proven with the official openai SDK and with our client."""

from __future__ import annotations

import io
import time
import warnings

import openai
import pytest
import requests
from PIL import Image

from rendering.fake_api import FakeConfig, FakeVideoServer
from rendering.media import probe

warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture
def api():
    with FakeVideoServer(FakeConfig(latency=0.4, poll_after_ms=50, api_key="sk-right")) as server:
        yield server


def client(api, key="sk-right") -> openai.OpenAI:
    return openai.OpenAI(base_url=api.url, api_key=key, max_retries=0)


def png(size) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (9, 99, 199)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_official_sdk_create_and_poll_then_download(api, tmp_path):
    sdk = client(api)
    video = sdk.videos.create_and_poll(prompt="a red kite", model="sora-2", seconds="4", size="1280x720")
    assert (video.status, video.progress, video.seconds, video.size) == ("completed", 100, "4", "1280x720")
    assert video.expires_at and video.completed_at
    content = sdk.videos.download_content(video.id)
    path = tmp_path / "sdk.mp4"
    content.write_to_file(path)
    info = probe(path)
    assert info.size == "1280x720" and info.duration == pytest.approx(4.0, abs=0.05)
    assert info.video_codec == "h264" and info.audio_codec == "aac"
    thumbnail = sdk.videos.download_content(video.id, variant="thumbnail").read()
    assert thumbnail[:3] == b"\xff\xd8\xff"
    assert api.stats.creates == 1 and api.stats.downloads == 2


def test_sdk_sees_the_size_check_on_input_reference(api):
    sdk = client(api)
    with pytest.raises(openai.BadRequestError, match="must match the requested width and height"):
        sdk.videos.create(
            prompt="x", seconds="4", size="1280x720", input_reference=("r.png", png((64, 64)), "image/png")
        )
    video = sdk.videos.create(
        prompt="x", seconds="4", size="1280x720", input_reference=("r.png", png((1280, 720)), "image/png")
    )
    assert video.status == "queued"
    assert api.stats.requests[-1]["content_type"] == "multipart/form-data"


def test_sdk_errors_for_bad_key_values_and_unknown_ids(api):
    with pytest.raises(openai.AuthenticationError):
        client(api, key="sk-wrong").videos.retrieve("video_x")
    sdk = client(api)
    with pytest.raises(openai.BadRequestError, match="Supported values are: 4, 8, 12"):
        sdk.videos.create(prompt="x", seconds="5", size="1280x720")
    with pytest.raises(openai.NotFoundError):
        sdk.videos.retrieve("video_missing")


def test_progress_moves_through_steps_and_honours_latency(api):
    sdk = client(api)
    api.config.latency = 1.0
    video = sdk.videos.create(prompt="slow", seconds="4", size="720x1280")
    seen = set()
    deadline = time.time() + 5
    while time.time() < deadline:
        current = sdk.videos.retrieve(video.id)
        seen.add((current.status, current.progress))
        if current.status == "completed":
            break
        time.sleep(0.05)
    statuses = {status for status, _ in seen}
    assert {"queued", "in_progress", "completed"} <= statuses
    assert len({p for s, p in seen if s == "in_progress"}) >= 2


def test_moderation_word_fails_the_video(api):
    api.config.latency = 0.1
    video = client(api).videos.create_and_poll(
        prompt="something FORBIDDEN here", seconds="4", size="1280x720"
    )
    assert video.status == "failed" and video.error.code == "moderation_blocked"


def test_429_with_retry_after_then_success(api):
    api.config.rate_limit_burst = 2
    api.config.retry_after = 0.5
    url = f"{api.url}/videos"
    headers = {"Authorization": "Bearer sk-right"}
    answers = [
        requests.post(url, json={"prompt": "p", "seconds": "4", "size": "1280x720"}, headers=headers)
        for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["retry-after-ms"] == "500" and answers[0].headers["retry-after"] == "1"
    assert api.stats.rejected_429 == 2 and api.stats.creates == 1


def test_downloads_expire(api):
    api.config.latency = 0.05
    api.config.expire_after = 0.2
    sdk = client(api)
    video = sdk.videos.create_and_poll(prompt="p", seconds="4", size="1280x720")
    time.sleep(0.4)
    with pytest.raises(openai.NotFoundError, match="expired"):
        sdk.videos.download_content(video.id)
    assert api.stats.expired_downloads == 1


def test_idempotency_key_replays_the_same_video(api):
    url = f"{api.url}/videos"
    headers = {"Authorization": "Bearer sk-right", "Idempotency-Key": "k-1"}
    first = requests.post(
        url, json={"prompt": "p", "seconds": "4", "size": "1280x720"}, headers=headers
    ).json()
    second = requests.post(
        url, json={"prompt": "p", "seconds": "4", "size": "1280x720"}, headers=headers
    ).json()
    assert first["id"] == second["id"] and api.stats.creates == 1 and api.stats.idempotent_replays == 1


def test_remix_list_delete(api):
    sdk = client(api)
    video = sdk.videos.create(prompt="p", seconds="4", size="1280x720")
    remix = sdk.videos.remix(video.id, prompt="p but at night")
    assert remix.remixed_from_video_id == video.id
    assert {v.id for v in sdk.videos.list().data} == {video.id, remix.id}
    assert sdk.videos.delete(video.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        sdk.videos.retrieve(video.id)


def test_failure_rate_fails_some_videos():
    with FakeVideoServer(FakeConfig(latency=0.0, failure_rate=0.5, seed=7)) as server:
        sdk = client(server, key="anything")
        outcomes = [sdk.videos.create(prompt=f"p{i}", seconds="4", size="1280x720") for i in range(20)]
        statuses = [sdk.videos.retrieve(v.id).status for v in outcomes]
    assert 3 <= statuses.count("failed") <= 17 and "completed" in statuses


def test_command_refuses_bad_options():
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--failure-rate must be between 0 and 1"):
        call_command("fake_video_api", "--failure-rate", "2")
