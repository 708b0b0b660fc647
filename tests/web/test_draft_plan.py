"""A saved draft's cards in a real browser (Debian's Chromium against daphne on the embedded default, see
conftest): the draft's page has the new-video page's card editor. Reorder by mouse drag, by the Alt+Arrow
keys and by the handle's arrow keys, split, merge, remove and add cards, see a card's problem on that
card until it is fixed, save the plan, reload and find the new order (with the card's reference image
still on its card), then render it to the end on the local provider. At desktop width and on a 390x844
phone, with axe-core on the page (no serious or critical violations) and screenshots in test-artifacts/.
"""

from __future__ import annotations

import pytest

from .conftest import assert_fits_width, assert_focus_visible, check_accessibility, log_in, screenshot
from .test_storyboard import (
    JOB_URL,
    RENDER_TIMEOUT_MS,
    STORY,
    card_prompts,
    expect,
    job_id_of,
    open_new_video,
    plan,
    png,
)

pytestmark = pytest.mark.slow


def save_a_draft_with_an_image_on_card_2(page, title: str) -> str:
    """Plan STORY into four cards on the new-video page, give card 2 its own image, save the draft and
    return its id (the page is then the draft's page)."""
    open_new_video(page)
    page.get_by_test_id("title-input").fill(title)
    plan(page, STORY, 40)
    page.get_by_label("Reference image for card 2 (optional)").set_input_files(
        files=[{"name": "keyframe.png", "mimeType": "image/png", "buffer": png(320, 240)}]
    )
    page.get_by_test_id("save-draft").click()
    page.wait_for_url(JOB_URL)
    page.wait_for_selector("#plan-editor[data-ready=true]")
    return job_id_of(page)


def image_on(page, index: int) -> None:
    """Card `index` shows the reference image, and no other card does."""
    check = expect()
    count = page.locator("#cards > li").count()
    for other in range(count):
        preview = page.get_by_test_id(f"card-{other}-image-preview")
        if other == index:
            check(preview).to_be_visible()
        else:
            check(preview).to_be_hidden()


def edit_save_reload_and_render(page, workspace, name: str) -> None:
    check = expect()
    log_in(page, workspace, "alice")
    job_id = save_a_draft_with_an_image_on_card_2(page, f"Draft plan {name}")
    a, b, c, d = card_prompts(page)
    check(page.locator("#cards > li")).to_have_count(4)
    image_on(page, 1)
    check(page.get_by_test_id("card-1")).to_contain_text("moves with it")
    check(page.get_by_test_id("card-0")).to_contain_text("0\u201310 s")
    check_accessibility(page, f"draft-plan-{name}")

    # Keyboard: Alt+Arrow in a card, and the arrow keys on a card's handle. The image follows its card.
    page.get_by_label("Prompt for card 1").press("Alt+ArrowDown")
    assert card_prompts(page) == [b, a, c, d]
    image_on(page, 0)
    check(page.get_by_test_id("plan-status")).to_contain_text("moved to position 2")
    page.get_by_test_id("card-3-handle").focus()
    assert_focus_visible(page)
    page.keyboard.press("ArrowUp")
    assert card_prompts(page) == [b, a, d, c]
    # The mouse: drag card 4's handle onto card 1.
    page.get_by_test_id("card-3-handle").drag_to(page.get_by_test_id("card-0"))
    assert card_prompts(page) == [c, b, a, d]
    image_on(page, 1)

    # Split a two-sentence card at the sentence boundary, merge the card with the image into the next
    # one (it keeps its image), remove the first card.
    page.get_by_label("Prompt for card 4").fill("Dawn comes. The boat is moored.")
    page.get_by_role("button", name="Split card 4 in two").click()
    assert card_prompts(page) == [c, b, a, "Dawn comes.", "The boat is moored."]
    page.get_by_role("button", name="Merge card 2 with the next card").click()
    merged = f"{b} {a}"
    assert card_prompts(page) == [c, merged, "Dawn comes.", "The boat is moored."]
    image_on(page, 1)
    page.get_by_role("button", name="Remove card 1").click()
    assert card_prompts(page) == [merged, "Dawn comes.", "The boat is moored."]
    image_on(page, 0)

    # A new card without a prompt is pointed out on that card when saving; the message goes once fixed.
    page.get_by_test_id("add-card").click()
    check(page.get_by_test_id("plan-duration")).to_have_text("40 s in 4 cards (follows the cards)")
    page.get_by_test_id("save-plan").click()
    check(page.get_by_test_id("card-3-error")).to_have_text("Card 4 needs a prompt.")
    check(page.get_by_test_id("plan-errors")).to_contain_text("Card 4: Card 4 needs a prompt.")
    page.get_by_label("Prompt for card 4").fill("The keeper sleeps.")
    check(page.get_by_test_id("card-3-error")).to_be_hidden()
    check(page.get_by_test_id("plan-errors")).to_be_hidden()
    final = [merged, "Dawn comes.", "The boat is moored.", "The keeper sleeps."]
    assert card_prompts(page) == final
    # The server's estimate under the cards follows them.
    check(page.get_by_test_id("cards-estimate")).to_contain_text("4 segments, 40 s billed")
    screenshot(page, f"draft-plan-edited-{name}")
    check_accessibility(page, f"draft-plan-edited-{name}")

    page.get_by_test_id("save-plan").click()
    check(page.get_by_test_id("plan-status")).to_have_text("The plan is saved: 4 cards, 40 s.")
    check(page.get_by_test_id("job-shape")).to_have_text("40 s in 4 segments")
    page.reload()
    page.wait_for_selector("#plan-editor[data-ready=true]")
    assert card_prompts(page) == final
    image_on(page, 0)
    job = page.request.get(f"/api/video-jobs/{job_id}/").json()
    assert [s["prompt"] for s in job["segments"]] == final
    assert job["segmentation_mode"] == "manual" and job["status"] == "draft"
    assert [image["segment_index"] for image in job["reference_images"]] == [0]
    if name == "390":
        assert_fits_width(page)
    screenshot(page, f"draft-plan-saved-{name}")

    # Render it: the page turns into the live timeline and the video completes on the local provider.
    page.get_by_test_id("job-render").click()
    check(page.get_by_test_id("job-status")).to_have_attribute(
        "data-status", "completed", timeout=RENDER_TIMEOUT_MS
    )
    for index, prompt in enumerate(final):
        check(page.get_by_test_id(f"segment-{index}-prompt")).to_have_text(prompt)
    check(page.get_by_test_id("plan-editor")).to_have_count(0)
    screenshot(page, f"draft-plan-rendered-{name}")


def test_edit_a_saved_drafts_cards_then_render_it(page, workspace):
    edit_save_reload_and_render(page, workspace, "1280")


def test_edit_a_saved_drafts_cards_on_a_phone(phone, workspace):
    edit_save_reload_and_render(phone, workspace, "390")


def test_the_servers_refusal_shows_on_the_card_and_goes_when_fixed(page, workspace):
    check = expect()
    log_in(page, workspace, "alice")
    open_new_video(page)
    plan(page, "A lamp is lit. The sea is dark.", 20)
    page.get_by_test_id("save-draft").click()
    page.wait_for_url(JOB_URL)
    page.wait_for_selector("#plan-editor[data-ready=true]")
    job_id = job_id_of(page)
    before = card_prompts(page)
    # Longer than MAX_SEGMENT_PROMPT_CHARS (32000): only the server knows the limit.
    page.get_by_label("Prompt for card 2").fill("x" * 32001)
    page.get_by_test_id("save-plan").click()
    check(page.get_by_test_id("card-1-error")).to_contain_text("32001 characters long; the limit is 32000")
    check(page.get_by_test_id("plan-errors")).to_contain_text("The plan was not saved")
    assert page.get_by_label("Prompt for card 2").get_attribute("aria-invalid") == "true"
    # Nothing was stored; fixing the card clears its message.
    job = page.request.get(f"/api/video-jobs/{job_id}/").json()
    assert [s["prompt"] for s in job["segments"]] == before
    page.get_by_label("Prompt for card 2").fill("The sea is dark and wide.")
    check(page.get_by_test_id("card-1-error")).to_be_hidden()
    check(page.get_by_test_id("plan-errors")).to_be_hidden()
    page.get_by_test_id("save-plan").click()
    check(page.get_by_test_id("plan-status")).to_contain_text("The plan is saved")
