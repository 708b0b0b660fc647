"""The storyboard workspace in a real browser (Debian's Chromium) against a real daphne on the embedded
default, with one render at a time (INPROCESS_WORKERS=1, see conftest) so a job's first card finishes
while the others still wait:

- plan, then edit, reorder (mouse drag, Move buttons, Alt+Arrow keys), add, split, merge and remove
  cards, with the server's estimate following; save a draft that survives a reload, edit its cards on its
  own page; render it from the list (a saved draft's card editor: test_draft_plan.py);
- play a finished card and the preview so far while the others render; edit a card and re-render it;
  compare its takes and pick one; a new version does not replace the playing video without asking;
  open an old version's link; a notification when the video is ready;
- cancel with confirmation, duplicate, delete with confirmation;
- the same flows at a 390x844 phone viewport, and axe-core on every page (no serious or critical
  violations). Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from .conftest import assert_fits_width, assert_focus_visible, check_accessibility, log_in, screenshot

pytestmark = pytest.mark.slow

JOB_URL = re.compile(r"/jobs/[0-9a-f-]{36}/$")
RENDER_TIMEOUT_MS = 120_000
STORY = (
    "A lighthouse keeper climbs the stairs at dusk. She lights the great lamp. "
    "The beam sweeps over a stormy sea. A small boat turns toward the light."
)
# Records notifications instead of showing them; permission starts undecided, as for a new visitor.
NOTIFICATION_STUB = """
window.__notes = [];
window.Notification = class {
  constructor(title, options) { window.__notes.push(title); }
  static requestPermission() {
    window.Notification.permission = 'granted';
    return Promise.resolve('granted');
  }
};
window.Notification.permission = 'default';
"""


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (20, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


def expect():
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def job_id_of(page) -> str:
    return page.url.rstrip("/").rsplit("/", 1)[-1]


def open_new_video(page) -> None:
    page.get_by_test_id("nav-new-job").click()
    page.wait_for_selector("form[data-ready=true]")


def plan(page, prompt: str, seconds: int, size: str = "320x240") -> None:
    """Fill the story on the new-video page and plan it into cards."""
    page.get_by_label("Prompt", exact=True).fill(prompt)
    page.get_by_test_id("duration-slider").fill(str(seconds))
    page.get_by_label("Size", exact=True).select_option(size)
    page.get_by_test_id("plan-button").click()
    expect()(page.get_by_test_id("card-0")).to_be_visible()


def card_prompts(page) -> list[str]:
    return page.evaluate("window.soraStoryboard.cards()")


def play(page, testid: str) -> None:
    """Start a video muted (autoplay rules allow that without a gesture)."""
    page.evaluate(
        "(id) => { const v = document.querySelector(`[data-testid=${id}]`);"
        " v.muted = true; return v.play(); }",
        testid,
    )


def estimate_settled(page) -> None:
    page.wait_for_function("document.querySelector('#new-job-form').dataset.estimating === 'false'")


def test_plan_edit_and_reorder_cards_then_save_a_draft_and_render_it_from_the_list(page, workspace):
    check = expect()
    page.goto("/login/")
    check_accessibility(page, "login")
    log_in(page, workspace, "alice")
    open_new_video(page)
    check_accessibility(page, "new-video")
    # Focus is visible, with contrast, on what the keyboard reaches.
    page.get_by_test_id("title-input").focus()
    page.keyboard.press("Tab")
    assert_focus_visible(page)
    page.get_by_label("Size", exact=True).focus()
    page.keyboard.press("Tab")  # the Plan button
    assert page.evaluate("document.activeElement.dataset.testid") == "plan-button"
    assert_focus_visible(page)
    # Providers without credentials are offered disabled, with the reason in words.
    check(page.locator("#id_provider option[value=fal]")).to_be_disabled()
    check(page.get_by_test_id("unavailable-fal")).to_contain_text("needs FAL_KEY")
    # The page says what a reference image does in each continuity mode.
    page.get_by_label("Continuity").select_option("chain")
    check(page.get_by_test_id("continuity-hint")).to_contain_text("previous clip's last frame")
    page.get_by_label("Continuity").select_option("parallel")
    check(page.get_by_test_id("continuity-hint")).to_contain_text("first frame of card 1")

    # An empty prompt cannot be planned; the message goes as soon as the prompt is written.
    page.get_by_test_id("plan-button").click()
    check(page.get_by_test_id("error-prompt")).to_be_visible()
    page.get_by_test_id("title-input").fill("Lighthouse keeper's night")
    plan(page, STORY, 40)
    check(page.get_by_test_id("error-prompt")).to_be_hidden()
    check(page.get_by_test_id("form-errors")).to_be_hidden()
    check(page.locator("#cards > li")).to_have_count(4)
    check(page.get_by_test_id("card-0")).to_contain_text("0\u201310 s")
    check(page.get_by_test_id("duration-value")).to_have_text("40 s")
    planned = card_prompts(page)
    assert all(prompt.strip() for prompt in planned)

    # Edit a card; the server prices the cards again (a paid model shows the change in dollars).
    page.get_by_label("Provider", exact=True).select_option("openai-videos")
    page.get_by_label("Size", exact=True).select_option("1280x720")
    estimate_settled(page)
    # Priced for the Videos protocol: each card takes its clip length (12 s), so nothing billed is cut.
    check(page.get_by_test_id("cost-detail")).to_contain_text("48 s billed for 48 s shown")
    check(page.get_by_test_id("card-0")).to_contain_text("0\u201312 s")
    cost_before = page.get_by_test_id("cost-estimate").inner_text()
    page.get_by_label("Prompt for card 2").fill("The lamp flares to life, gold light on wet glass.")

    # Reorder with the keyboard: Alt+ArrowUp in card 2's prompt moves it to the top, focus stays.
    page.get_by_label("Prompt for card 2").press("Alt+ArrowUp")
    assert card_prompts(page)[0] == "The lamp flares to life, gold light on wet glass."
    assert page.evaluate("document.activeElement.dataset.testid") == "card-0-prompt"
    check(page.get_by_test_id("form-status")).to_contain_text("moved to position 1")
    # ... with the Move buttons ...
    page.get_by_role("button", name="Move card 1 down").click()
    assert card_prompts(page)[1] == "The lamp flares to life, gold light on wet glass."
    # ... and with the mouse: drag card 4's handle onto card 1.
    last = card_prompts(page)[3]
    page.get_by_test_id("card-3-handle").drag_to(page.get_by_test_id("card-0"))
    assert card_prompts(page)[0] == last
    # Time ranges are positional: the moved card shows its new slot's range at once, not its old one.
    assert "0\u201312 s" in page.get_by_test_id("card-0").inner_text()

    # Add, split, merge and remove: the duration follows the cards and the estimate follows too.
    page.get_by_test_id("add-card").click()
    check(page.locator("#cards > li")).to_have_count(5)
    check(page.get_by_test_id("duration-value")).to_have_text("50 s")
    # A new empty card is pointed out on Render and the message goes once it has a prompt.
    page.get_by_test_id("submit-job").click()
    check(page.get_by_test_id("card-4-error")).to_have_text("Card 5 needs a prompt.")
    page.get_by_label("Prompt for card 5").fill("Dawn. The boat is moored. The keeper sleeps.")
    check(page.get_by_test_id("card-4-error")).to_be_hidden()
    page.get_by_role("button", name="Split card 5 in two").click()
    check(page.locator("#cards > li")).to_have_count(6)
    assert card_prompts(page)[4:] == ["Dawn. The boat is moored.", "The keeper sleeps."]
    page.get_by_role("button", name="Merge card 5 with the next card").click()
    assert card_prompts(page)[4] == "Dawn. The boat is moored. The keeper sleeps."
    page.get_by_role("button", name="Remove card 5").click()
    check(page.locator("#cards > li")).to_have_count(4)
    check(page.get_by_test_id("duration-value")).to_have_text("40 s")
    estimate_settled(page)
    check(page.get_by_test_id("cost-detail")).to_contain_text("4 segments")
    assert page.get_by_test_id("cost-estimate").inner_text().startswith("$")
    assert cost_before.startswith("$")
    screenshot(page, "storyboard-cards-1280")
    check_accessibility(page, "new-video-cards")

    # The estimate under the cards follows them too.
    check(page.get_by_test_id("cards-estimate")).to_contain_text("4 segments")

    # Save a draft on the free local provider: stored with the cards as they are, nothing rendered,
    # with card 2's own reference image attached to its segment.
    page.get_by_label("Provider", exact=True).select_option("local")
    page.get_by_label("Size", exact=True).select_option("320x240")
    page.get_by_label("Reference image for card 2 (optional)").set_input_files(
        files=[{"name": "keyframe.png", "mimeType": "image/png", "buffer": png(320, 240)}]
    )
    check(page.locator("[data-testid=card-1] img")).to_be_visible()
    cards = card_prompts(page)
    page.get_by_test_id("save-draft").click()
    page.wait_for_url(JOB_URL)
    job_id = job_id_of(page)
    check(page.get_by_test_id("job-status")).to_have_attribute("data-status", "draft")
    page.reload()
    page.wait_for_selector("#plan-editor[data-ready=true]")
    assert card_prompts(page) == cards
    job = page.request.get(f"/api/video-jobs/{job_id}/").json()
    assert job["status"] == "draft" and job["segmentation_mode"] == "manual"
    assert [s["prompt"] for s in job["segments"]] == cards
    assert [image["segment_index"] for image in job["reference_images"]] == [1]
    # A draft's cards are still edited in place (saved, not rendered): tests/web/test_draft_plan.py
    # reorders, splits, merges and removes them too.
    page.get_by_label("Prompt for card 4").fill("The boat reaches the harbour.")
    page.get_by_test_id("save-plan").click()
    check(page.get_by_test_id("plan-status")).to_contain_text("The plan is saved")
    page.reload()
    page.wait_for_selector("#plan-editor[data-ready=true]")
    assert card_prompts(page)[3] == "The boat reaches the harbour."
    check_accessibility(page, "job-draft")

    # The list shows it as a draft with a Render button; rendering it from there starts it.
    page.get_by_test_id("nav-jobs").click()
    check(page.get_by_test_id(f"job-status-{job_id}")).to_have_text("Draft")
    check_accessibility(page, "library")
    page.get_by_test_id(f"job-render-{job_id}").click()
    page.wait_for_url(re.compile(f"/jobs/{job_id}/$"))
    check(page.get_by_test_id("job-status")).to_have_attribute(
        "data-status", "completed", timeout=RENDER_TIMEOUT_MS
    )


def test_iterate_in_place_play_preview_rerender_takes_and_versions(page, workspace):
    check = expect()
    page.context.grant_permissions(["notifications"])
    page.add_init_script(NOTIFICATION_STUB)
    log_in(page, workspace, "alice")
    open_new_video(page)
    page.get_by_test_id("title-input").fill("Four lamps")
    plan(page, STORY, 40, size="640x360")
    page.get_by_test_id("submit-job").click()
    page.wait_for_url(JOB_URL)
    job_id = job_id_of(page)
    # Everything the live region says is recorded, to check that it announces progress.
    page.evaluate(
        """() => {
            window.said = [];
            const region = document.querySelector('[data-testid=announcer]');
            new MutationObserver(() => window.said.push(region.textContent))
                .observe(region, {childList: true, characterData: true, subtree: true});
        }"""
    )
    # Ask for a notification while it renders.
    page.get_by_test_id("job-notify").click()
    check(page.get_by_test_id("job-notify")).to_be_hidden()

    # The first card finishes while the others still render (one render at a time): at that moment
    # its clip is on its card and the rest are not finished.
    others = page.wait_for_function(
        """() => {
            const card = document.querySelector('[data-testid=segment-0]');
            if (card.dataset.status !== 'completed') return null;
            return Array.from(document.querySelectorAll('#timeline li'))
                .slice(1).map((li) => li.dataset.status);
        }""",
        timeout=RENDER_TIMEOUT_MS,
    ).json_value()
    assert any(status != "completed" for status in others), others
    # Progress shows in the tab title and the timing line while the job renders.
    assert re.match(r"^\d+% · ", page.title()) or page.title().startswith("Ready")
    check(page.get_by_test_id("segment-0-clip")).to_be_visible()
    play(page, "segment-0-clip")
    page.wait_for_function("document.querySelector('[data-testid=segment-0-clip]').currentTime > 0")
    # The preview so far: the finished beginning, joined on the server.
    page.get_by_test_id("preview-button").click()
    check(page.get_by_test_id("preview-status")).to_contain_text(re.compile("Segments 1\u2013\\d of 4"))
    page.wait_for_function("document.querySelector('[data-testid=preview-video]').readyState >= 1")
    screenshot(page, "job-rendering-1280")

    check(page.get_by_test_id("job-status")).to_have_attribute(
        "data-status", "completed", timeout=RENDER_TIMEOUT_MS
    )
    check(page.get_by_test_id("announcer")).to_have_text("The video is ready.")
    said = page.evaluate("window.said")
    assert "Segment 1 completed." in said and "The video is ready." in said, said
    page.wait_for_function("window.__notes.includes('Your video is ready')")
    assert page.title().startswith("Ready")
    check(page.get_by_test_id("version-1-link")).to_be_attached()
    first_version = page.get_by_test_id("version-1-link").get_attribute("href")
    check_accessibility(page, "job-completed")

    # The job's elapsed time showed while it rendered; now this model has a history, so a reloaded page
    # gives an ETA while a card re-renders.
    page.reload()
    check(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "live")
    assert (
        page.evaluate("JSON.parse(document.getElementById('workspace-config').textContent).eta.samples") >= 4
    )
    page.get_by_test_id("segment-3-rerender").click()
    page.wait_for_function(
        "/elapsed · (about .* left|taking longer than usual)/.test("
        "document.querySelector('[data-testid=job-timing]').textContent)",
        timeout=RENDER_TIMEOUT_MS,
    )
    check(page.get_by_test_id("version-2-link")).to_be_attached(timeout=RENDER_TIMEOUT_MS)
    first_version = page.get_by_test_id("version-1-link").get_attribute("href")

    # Watch the video, then edit card 2 and re-render just that card.
    play(page, "job-video")
    page.wait_for_function("document.querySelector('[data-testid=job-video]').currentTime > 0")
    playing = page.evaluate("document.querySelector('[data-testid=job-video]').src")
    page.get_by_test_id("segment-1-edit").click()
    page.get_by_test_id("segment-1-prompt-input").fill("The lamp flares gold over the wet glass.")
    page.get_by_test_id("segment-1-save").click()
    check(page.get_by_test_id("segment-1-take")).to_have_text("· take 2", timeout=RENDER_TIMEOUT_MS)
    check(page.get_by_test_id("job-status")).to_have_attribute(
        "data-status", "completed", timeout=RENDER_TIMEOUT_MS
    )
    check(page.get_by_test_id("segment-1-prompt")).to_have_text("The lamp flares gold over the wet glass.")
    # Version 3 is offered, not forced on the person watching the video.
    check(page.get_by_test_id("new-version")).to_be_visible()
    assert page.evaluate("document.querySelector('[data-testid=job-video]').src") == playing
    page.get_by_test_id("new-version-play").click()
    check(page.get_by_test_id("playing-version")).to_have_text("(version 3)")
    check(page.get_by_test_id("new-version")).to_be_hidden()

    # Compare card 2's takes side by side and go back to take 1: a new version, from the picked takes.
    page.get_by_test_id("segment-1-takes").click()
    check(page.locator("[data-testid=segment-1-takes-panel] video")).to_have_count(2)
    check(page.get_by_test_id("segment-1-take-2-pick")).to_have_text("In use")
    screenshot(page, "job-takes-1280")
    page.get_by_test_id("segment-1-take-1-pick").click()
    check(page.get_by_test_id("segment-1-take")).to_have_text("· take 1", timeout=RENDER_TIMEOUT_MS)
    check(page.get_by_test_id("version-4-link")).to_be_attached(timeout=RENDER_TIMEOUT_MS)
    versions = page.request.get(f"/api/video-jobs/{job_id}/versions/").json()
    assert [v["number"] for v in versions] == [4, 3, 2, 1] and versions[0]["takes"] == [1, 1, 1, 2]

    # The old version's link still plays; its download is named after the title.
    page.get_by_test_id("versions-box").locator("summary").click()
    download = page.get_by_test_id("version-1-download").get_attribute("href")
    assert "four-lamps-v1.mp4" in download
    response = page.goto(first_version)
    assert response.status == 200 and response.headers["content-type"] == "video/mp4"


def test_cancel_asks_first_then_duplicate_and_delete(page, workspace):
    check = expect()
    log_in(page, workspace, "alice")
    open_new_video(page)
    page.get_by_test_id("title-input").fill("Long night")
    plan(page, STORY, 60, size="1280x720")
    page.get_by_test_id("submit-job").click()
    page.wait_for_url(JOB_URL)
    job_id = job_id_of(page)
    check(page.get_by_test_id("job-cancel")).to_be_visible()

    # Keeping it changes nothing; confirming cancels.
    page.get_by_test_id("job-cancel").click()
    check(page.get_by_test_id("cancel-dialog")).to_be_visible()
    screenshot(page, "job-cancel-dialog-1280")
    page.get_by_test_id("cancel-cancel").click()
    check(page.get_by_test_id("cancel-dialog")).to_have_count(0)
    assert page.request.get(f"/api/video-jobs/{job_id}/").json()["status"] in {"queued", "rendering"}
    page.get_by_test_id("job-cancel").click()
    page.get_by_test_id("cancel-ok").click()
    check(page.get_by_test_id("job-status")).to_have_attribute("data-status", "cancelled")

    # Duplicate: a new draft with the same cards.
    page.get_by_test_id("job-duplicate").click()
    page.wait_for_url(lambda url: JOB_URL.search(url) is not None and job_id not in url)
    copy_id = job_id_of(page)
    assert copy_id != job_id
    check(page.get_by_test_id("job-title")).to_have_text("Long night (copy)")
    check(page.get_by_test_id("job-status")).to_have_attribute("data-status", "draft")

    # Delete the copy from its page (asked first), then the original from the list (asked first).
    page.get_by_test_id("job-delete").click()
    page.get_by_test_id("delete-ok").click()
    page.wait_for_url(f"{workspace.url}/")
    assert page.request.get(f"/api/video-jobs/{copy_id}/").status == 404
    page.get_by_test_id(f"job-delete-{job_id}").click()
    check(page.get_by_test_id("delete-dialog")).to_contain_text("Long night")
    page.get_by_test_id("delete-cancel").click()
    check(page.get_by_test_id(f"job-row-{job_id}")).to_be_visible()
    page.get_by_test_id(f"job-delete-{job_id}").click()
    page.get_by_test_id("delete-ok").click()
    check(page.get_by_test_id(f"job-row-{job_id}")).to_have_count(0)
    check(page.get_by_test_id("announcer")).to_contain_text("was deleted")
    assert page.request.get(f"/api/video-jobs/{job_id}/").status == 404
    # The deleted job's page is the project's own 404, accessible too.
    assert page.goto(f"/jobs/{job_id}/").status == 404
    check_accessibility(page, "not-found")


def test_the_storyboard_on_a_phone(phone, workspace):
    check = expect()
    page = phone
    log_in(page, workspace, "alice")
    open_new_video(page)
    page.get_by_test_id("title-input").fill("Phone kite")
    plan(page, "A red kite climbs over a windy beach. It loops twice and dives. It lands in the sand.", 30)
    assert_fits_width(page)
    # Reorder by touch-friendly buttons and by keyboard.
    second = card_prompts(page)[1]
    page.get_by_role("button", name="Move card 2 up").click()
    assert card_prompts(page)[0] == second
    page.get_by_label("Prompt for card 1").press("Alt+ArrowDown")
    assert card_prompts(page)[1] == second
    screenshot(page, "storyboard-cards-390")
    check_accessibility(page, "new-video-cards-390")

    page.get_by_test_id("submit-job").click()
    page.wait_for_url(JOB_URL)
    check(page.get_by_test_id("job-status")).to_have_attribute(
        "data-status", "completed", timeout=RENDER_TIMEOUT_MS
    )
    check(page.get_by_test_id("segment-0-clip")).to_be_visible()
    assert_fits_width(page)
    page.get_by_test_id("segment-2-rerender").click()
    check(page.get_by_test_id("segment-2-take")).to_have_text("· take 2", timeout=RENDER_TIMEOUT_MS)
    check(page.get_by_test_id("job-status")).to_have_attribute(
        "data-status", "completed", timeout=RENDER_TIMEOUT_MS
    )
    screenshot(page, "storyboard-job-390")
    check_accessibility(page, "job-390")
    page.get_by_test_id("nav-jobs").click()
    assert_fits_width(page)
    screenshot(page, "library-390")
    check_accessibility(page, "library-390")
