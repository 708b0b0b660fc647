"""Plans fit the model: segment lengths come from what the chosen model renders, so nobody pays for
seconds that are thrown away; unusable providers and continuity modes a model cannot do are refused when
the job is planned; an operator's catalogue file changes prices and adds models without a deploy."""

from __future__ import annotations

import textwrap
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured

from jobs.catalogue import model_spec, provider_rows
from jobs.errors import InvalidInput
from jobs.planning import JobSpec, plan_job
from segmentation.timing import fit_lengths

KLING = "fal-ai/kling-video/v2.1/master"
VEO_FAST = "veo-3.1-fast-generate-001"
PROMPT = "A fox runs through fresh snow at dawn. It stops at a frozen river. It crosses at dusk."


@pytest.fixture
def configured(settings):
    settings.FAL_KEY = "id:secret"
    settings.VERTEX_PROJECT = "p"
    settings.GOOGLE_APPLICATION_CREDENTIALS = "/nowhere.json"
    return settings


@pytest.mark.parametrize(
    ("allowed", "lengths"),
    [
        ((4, 6, 8), [8, 8, 8, 6]),  # Veo: exact
        ((5, 10), [10, 10, 10]),  # Kling: exact
        ((4, 8, 12), [12, 12, 8]),  # the Videos protocol: 32 s, the last shown for 6
    ],
)
def test_thirty_seconds_in_about_ten_second_segments(allowed, lengths):
    assert fit_lengths(30, 10, allowed) == lengths


def test_fitting_prefers_an_exact_sum_then_the_smallest_overshoot_then_the_target():
    assert fit_lengths(25, 10, (5, 10)) == [10, 10, 5]
    assert fit_lengths(7, 10, (5, 10)) == [10]  # 3 s trimmed: the least that can be paid for 7 s
    longest_first = fit_lengths(20, 20, (4, 6, 8))  # an ask beyond the longest clip: the fewest clips
    assert sum(longest_first) == 20 and len(longest_first) == 3 and longest_first[0] == 8
    assert sum(fit_lengths(1800, 10, (4, 6, 8))) == 1800


def test_plan_on_veo_and_kling_bills_exactly_the_shown_seconds(configured):
    for provider, model, size, renders in (
        ("veo", VEO_FAST, "1280x720", [8, 8, 8, 6]),
        ("fal", KLING, "1920x1080", [10, 10, 10]),
    ):
        plan = plan_job(
            JobSpec(prompt=PROMPT, duration_seconds=30, provider=provider, model=model, size=size)
        ).plan
        assert [s.render_seconds for s in plan.segments] == renders
        assert plan.billed_seconds == plan.planned_seconds == 30 and plan.trimmed_seconds == 0


def test_veo_1080p_is_planned_in_eight_second_clips(configured):
    plan = plan_job(
        JobSpec(prompt=PROMPT, duration_seconds=30, provider="veo", model=VEO_FAST, size="1920x1080")
    ).plan
    assert [s.render_seconds for s in plan.segments] == [8, 8, 8, 8]
    assert plan.billed_seconds == 32 and plan.trimmed_seconds == 2
    assert plan.segments[-1].trimmed_seconds == 2  # only the last clip is trimmed


def test_manual_segments_are_snapped_one_by_one_and_the_person_is_told(configured):
    checked = plan_job(
        JobSpec(
            prompt=PROMPT,
            duration_seconds=30,
            strategy="manual",
            manual_prompts=["Snow.", "River.", "Dusk."],
            provider="veo",
            model=VEO_FAST,
            size="1280x720",
        )
    )
    assert [s.render_seconds for s in checked.plan.segments] == [8, 8, 8]
    assert checked.duration_seconds == 24 and checked.plan.trimmed_seconds == 0
    assert "segment 1 10 s -> 8 s" in checked.notices[0] and "24 s long" in checked.notices[0]


def test_a_provider_without_credentials_is_refused_naming_the_variable(settings):
    settings.FAL_KEY = ""
    with pytest.raises(InvalidInput) as refused:
        plan_job(JobSpec(prompt=PROMPT, duration_seconds=30, provider="fal", size="1920x1080"))
    assert refused.value.errors == {
        "provider": ["provider 'fal' is not configured on this server: set FAL_KEY"]
    }
    fal = next(row for row in provider_rows() if row["name"] == "fal")
    assert (fal["available"], fal["missing_settings"]) == (False, ["FAL_KEY"])


def test_continuity_needs_what_the_model_takes(configured):
    # Kling 2.1 master takes a first frame but no last frame: chain yes, bridge no.
    plan_job(
        JobSpec(
            prompt=PROMPT,
            duration_seconds=30,
            provider="fal",
            model=KLING,
            size="1920x1080",
            continuity="chain",
        )
    )
    with pytest.raises(InvalidInput) as refused:
        plan_job(
            JobSpec(
                prompt=PROMPT,
                duration_seconds=30,
                provider="fal",
                model=KLING,
                size="1920x1080",
                continuity="bridge",
            )
        )
    assert "renders between a given first and last frame" in refused.value.errors["continuity"][0]


def test_the_catalogue_file_overrides_prices_and_adds_gateway_models(settings, tmp_path):
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(
        textwrap.dedent(
            """
            [[models]]
            provider = "sora"
            id = "sora-2"
            price_per_second = { "*" = "0.05" }

            [[models]]
            provider = "openai-videos"
            id = "gemini/veo-3.1-fast-generate-001"
            clip_seconds = [4, 6, 8]
            sizes = { "720p" = ["1280x720", "720x1280"] }
            price_per_second = { "720p" = "0.15" }
            first_frame = true
            endpoint = "https://litellm.example.com/v1"
            api_key_env = "LITELLM_API_KEY"
            """
        )
    )
    settings.PROVIDER_CATALOG_FILE = str(catalog)
    assert model_spec("sora", "sora-2").price("1280x720") == Decimal("0.05")
    gateway = model_spec("openai-videos", "gemini/veo-3.1-fast-generate-001")
    assert gateway.endpoint == "https://litellm.example.com/v1" and gateway.api_key_env == "LITELLM_API_KEY"
    plan = plan_job(
        JobSpec(
            prompt=PROMPT,
            duration_seconds=30,
            provider="openai-videos",
            model="gemini/veo-3.1-fast-generate-001",
            size="1280x720",
        )
    ).plan
    # LiteLLM would pass "12" through to Veo unchecked; the plan only asks for lengths Veo renders.
    assert [s.render_seconds for s in plan.segments] == [8, 8, 8, 6] and plan.cost_usd == Decimal("4.5")

    catalog.write_text('[[models]]\nprovider = "sora"\nid = "sora-2"\nclip_seconds = "long"\n')
    with pytest.raises(ImproperlyConfigured, match="models entry 1: clip_seconds must be a list"):
        model_spec("sora", "sora-2")


@pytest.mark.parametrize("typed", ["320X240", " 320x240 ", "\u0663\u0662\u0660x\u0662\u0664\u0660"])
def test_sizes_are_stored_in_their_canonical_spelling(typed):
    assert plan_job(JobSpec(prompt=PROMPT, duration_seconds=10, size=typed)).plan.size == "320x240"


def test_a_size_that_is_not_one_is_refused_on_its_field():
    with pytest.raises(InvalidInput) as refused:
        plan_job(JobSpec(prompt=PROMPT, duration_seconds=10, size="320x"))
    assert "WIDTHxHEIGHT" in refused.value.errors["size"][0]
