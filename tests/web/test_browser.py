"""The workspace in a real browser (headless Chromium) against a real daphne on the embedded default:
make a video and watch it render live, a bad upload, someone else's job. (Cards, takes, versions and
the library: test_storyboard.py.)

Screenshots land in test-artifacts/ (new-job and job pages at 1280 px and at 390 px phone width).
"""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from .conftest import log_in, screenshot

pytestmark = pytest.mark.slow

JOB_URL = re.compile(r"/jobs/[0-9a-f-]{36}/$")
RENDER_TIMEOUT_MS = 90_000


def expect():
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def open_new_job(page) -> None:
    page.get_by_test_id("nav-new-job").click()
    page.wait_for_selector("form[data-ready=true]")


def job_count(page) -> int:
    return page.request.get("/api/video-jobs/").json()["count"]


def test_make_a_video_and_watch_it_render_live(page, workspace):
    check = expect()
    log_in(page, workspace, "alice")
    open_new_job(page)

    # The slider sets whole 10 s segments and the estimate follows it and the provider, live.
    page.get_by_test_id("title-input").fill("Kite at the beach")
    page.get_by_label("Prompt", exact=True).fill(
        "A red kite climbs over a windy beach. It loops twice and dives. It lands softly in the sand."
    )
    slider = page.get_by_test_id("duration-slider")
    cost = page.get_by_test_id("cost-estimate")
    slider.fill("30")
    check(page.get_by_test_id("segment-count")).to_have_text("3 segments")
    page.get_by_label("Provider", exact=True).select_option("openai-videos")
    # The server plans 30 s in lengths the protocol renders (12 + 12 + 8, the last shown for 6 s).
    check(cost).to_have_text("$3.20")
    check(page.get_by_test_id("cost-detail")).to_contain_text("32 s billed for 30 s shown at $0.10/s")
    page.get_by_label("Model", exact=True).select_option("sora-2-pro")
    check(cost).to_have_text("$9.60")
    page.get_by_label("Provider", exact=True).select_option("local")
    check(cost).to_have_text("$0.00")
    slider.fill("20")
    check(page.get_by_test_id("segment-count")).to_have_text("2 segments")
    page.get_by_label("Size", exact=True).select_option("640x360")
    screenshot(page, "new-job-1280")

    page.get_by_test_id("submit-job").click()
    page.wait_for_url(JOB_URL)
    check(page.get_by_test_id("job-title")).to_have_text("Kite at the beach")
    check(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "live")

    for index in (0, 1):
        check(page.get_by_test_id(f"segment-{index}-status")).to_have_text(
            "Completed", timeout=RENDER_TIMEOUT_MS
        )
    check(page.get_by_test_id("job-status")).to_have_attribute(
        "data-status", "completed", timeout=RENDER_TIMEOUT_MS
    )
    # Progress arrived as events over the socket, not only as the first snapshot.
    assert int(page.locator("body").get_attribute("data-events") or 0) > 0
    check(page.get_by_test_id("job-progress")).to_have_attribute("value", "100")

    video = page.get_by_test_id("job-video")
    check(video).to_be_visible()
    page.wait_for_function("document.querySelector('[data-testid=job-video]').readyState >= 1")
    assert page.evaluate("document.querySelector('[data-testid=job-video]').duration") == pytest.approx(
        20, abs=0.2
    )
    for index in (0, 1):
        # A finished card plays its own clip.
        clip = page.get_by_test_id(f"segment-{index}-clip")
        check(clip).to_be_visible()
        page.wait_for_function(
            f"document.querySelector('[data-testid=segment-{index}-clip]').getAttribute('poster')"
        )
        check(page.get_by_test_id(f"segment-{index}-rerender")).to_be_visible()
    download = page.get_by_test_id("download-link")
    response = page.request.get(download.get_attribute("href"))
    assert response.status == 200 and response.headers["content-type"] == "video/mp4"
    screenshot(page, "job-1280")

    # A dropped socket comes back by itself, shows that it is reconnecting, and starts from a snapshot.
    snapshots = int(page.locator("body").get_attribute("data-snapshots"))
    page.evaluate(
        """() => {
            window.seenStates = [];
            const status = document.querySelector('[data-testid=connection-status]');
            new MutationObserver(() => window.seenStates.push(status.dataset.state))
                .observe(status, {attributes: true, attributeFilter: ['data-state']});
            window.soraWorkspace.socket.ws.close();
        }"""
    )
    page.wait_for_function(f"Number(document.body.dataset.snapshots) > {snapshots}")
    check(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "live")
    assert "reconnecting" in page.evaluate("window.seenStates")

    # At phone width nothing overflows sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "job-390")
    open_new_job(page)
    page.get_by_label("Prompt", exact=True).fill("A paper boat on a rainy street. It sails away.")
    page.get_by_test_id("plan-button").click()
    check(page.get_by_test_id("card-0")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "new-job-390")


def test_a_bad_reference_image_shows_an_error_and_keeps_the_form(page, workspace):
    check = expect()
    log_in(page, workspace, "alice")
    before = job_count(page)
    open_new_job(page)
    page.get_by_label("Prompt", exact=True).fill("A lantern in the fog.")
    page.get_by_label("Size", exact=True).select_option("320x240")
    upload = page.get_by_test_id("reference-input")
    error = page.get_by_test_id("reference-error")

    # A text file named .png: refused as soon as it is chosen, and the form will not submit.
    upload.set_input_files(
        files=[{"name": "photo.png", "mimeType": "image/png", "buffer": b"not an image\n"}]
    )
    check(error).to_be_visible()
    check(error).to_contain_text("not a readable PNG, JPEG or WebP image")
    check(page.get_by_test_id("reference-preview")).to_be_hidden()
    page.get_by_test_id("submit-job").click()
    check(page.get_by_test_id("form-errors")).to_contain_text("not a readable")
    screenshot(page, "new-job-bad-image-1280")

    # A real image of a refused type (GIF) passes the browser's check; the server's answer is shown on
    # the same field, the draft it made is gone, and nothing typed is lost.
    gif = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 40, 40)).save(gif, format="GIF")
    upload.set_input_files(files=[{"name": "still.png", "mimeType": "image/png", "buffer": gif.getvalue()}])
    check(error).to_be_hidden()
    check(page.get_by_test_id("reference-preview")).to_be_visible()
    page.get_by_test_id("submit-job").click()
    check(error).to_contain_text("PNG, JPEG or WebP")
    check(page.get_by_test_id("submit-job")).to_be_enabled()
    assert page.url.endswith("/jobs/new/")
    check(page.get_by_label("Prompt", exact=True)).to_have_value("A lantern in the fog.")
    assert job_count(page) == before

    # Removing the image clears the error; a good image then goes through with the job.
    png = io.BytesIO()
    Image.new("RGB", (320, 240), (20, 90, 160)).save(png, format="PNG")
    upload.set_input_files(files=[{"name": "good.png", "mimeType": "image/png", "buffer": png.getvalue()}])
    check(error).to_be_hidden()
    page.get_by_test_id("submit-job").click()
    page.wait_for_url(JOB_URL)
    job_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    assert len(page.request.get(f"/api/video-jobs/{job_id}/").json()["reference_images"]) == 1


def test_another_users_job_is_a_404_and_its_socket_is_refused(page, workspace):
    log_in(page, workspace, "alice")
    response = page.goto(f"/jobs/{workspace.foreign_job}/")
    assert response.status == 404
    code = page.evaluate(
        """(path) => new Promise((resolve) => {
            const socket = new WebSocket(`ws://${location.host}${path}`);
            socket.onclose = (event) => resolve(event.code);
        })""",
        f"/ws/video-jobs/{workspace.foreign_job}/",
    )
    assert code == 4404
    assert page.request.get(f"/api/video-jobs/{workspace.foreign_job}/").status == 404
