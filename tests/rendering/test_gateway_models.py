"""One deployment, two /v1/videos gateways: sora-2 behind SORA_BASE_URL and a Veo model behind a LiteLLM-
like gateway named in the operator's catalogue file, each asked only for the lengths it renders."""

from __future__ import annotations

import textwrap

import pytest

from jobs import services
from jobs.models import JobStatus
from rendering.fake_api import FakeConfig, FakeVideoServer
from rendering.transport import inprocess_runner

pytestmark = pytest.mark.django_db(transaction=True)

GATEWAY_MODEL = "gemini/veo-3.1-fast-generate-001"


@pytest.fixture
def gateway(settings, tmp_path, monkeypatch):
    # A gateway that, like Veo behind LiteLLM, refuses any length but 4, 6 and 8 s.
    with FakeVideoServer(
        FakeConfig(latency=0.3, poll_after_ms=50, api_key="sk-litellm", allowed_seconds=("4", "6", "8"),
                   models=(GATEWAY_MODEL,))
    ) as server:  # fmt: skip
        catalog = tmp_path / "catalog.toml"
        catalog.write_text(
            textwrap.dedent(
                f"""
                [[models]]
                provider = "openai-videos"
                id = "{GATEWAY_MODEL}"
                label = "Veo 3.1 Fast through LiteLLM"
                clip_seconds = [4, 6, 8]
                sizes = {{ "720p" = ["1280x720", "720x1280"] }}
                price_per_second = {{ "720p" = "0.15" }}
                first_frame = true
                endpoint = "{server.url}"
                api_key_env = "LITELLM_TEST_KEY"
                """
            )
        )
        settings.PROVIDER_CATALOG_FILE = str(catalog)
        monkeypatch.setenv("LITELLM_TEST_KEY", "sk-litellm")
        yield server


def test_a_gateway_model_renders_on_its_own_gateway_in_its_own_lengths(user, fake_api, gateway):
    job = services.video_job_create(
        owner=user,
        prompt="A kite climbs. It loops. It lands.",
        duration_seconds=14,
        provider="sora",
        model=GATEWAY_MODEL,
        size="1280x720",
    )
    assert list(job.segments.values_list("render_seconds", flat=True)) == [8, 6]
    services.video_job_render(job=job)
    assert inprocess_runner().wait_idle(timeout=60)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error
    assert sorted(r["seconds"] for r in gateway.stats.requests if r.get("seconds")) == ["6", "8"]
    assert gateway.stats.creates == 2 and fake_api.stats.creates == 0
    assert all(s.provider_task_id.startswith(f"{GATEWAY_MODEL}|video_") for s in job.segments.all())


def test_a_gateway_without_its_key_is_a_permanent_failure_naming_the_variable(
    user, fake_api, gateway, monkeypatch
):
    monkeypatch.delenv("LITELLM_TEST_KEY")
    job = services.video_job_create(
        owner=user,
        prompt="A kite.",
        duration_seconds=4,
        provider="sora",
        model=GATEWAY_MODEL,
        size="1280x720",
    )
    services.video_job_render(job=job)
    assert inprocess_runner().wait_idle(timeout=60)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "LITELLM_TEST_KEY is not set" in job.error
