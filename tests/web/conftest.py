"""A real workspace for the browser tests: daphne in a subprocess on the embedded default (SQLite file,
in-memory channel layer, in-process render pool, local provider) in a temporary data directory, and
Debian's Chromium driven by Playwright.

Without Chromium or Playwright the browser tests are skipped, except in CI (CI=true or
REQUIRE_SERVICES=1), where that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.daphne import Daphne

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
PASSWORDS = {"alice": "alice-pw-8c1f", "bob": "bob-pw-29ad"}
# Variables that would switch the server away from the embedded default or out of its temp dir.
SCRUBBED = {
    "DATABASE_URL",
    "REDIS_URL",
    "TASK_RUNNER",
    "DATA_DIR",
    "MEDIA_ROOT",
    "LOCAL_PROVIDER_DIR",
    "SECRET_KEY",
    "DEBUG",
    "AWS_STORAGE_BUCKET_NAME",
    "ALLOWED_HOSTS",
}

SETUP = """
import json
import os
import re
from django.contrib.auth import get_user_model
from jobs import services
users = {}
for name, password in json.loads(os.environ["PASSWORDS"]).items():
    users[name] = get_user_model().objects.create_user(username=name, password=password)
job = services.video_job_create(
    owner=users["bob"], title="Bob's private video", prompt="A secret garden.", duration_seconds=10,
    size="320x240",
)
print(json.dumps({"foreign_job": str(job.id)}))
"""


def require_browser() -> None:
    required = os.environ.get("CI") == "true" or os.environ.get("REQUIRE_SERVICES") == "1"
    problem = ""
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "playwright is not installed (pip install -e '.[dev]')"
    if problem:
        (pytest.fail if required else pytest.skip)(f"browser tests need a browser: {problem}")


@dataclass(frozen=True)
class Workspace:
    url: str
    root: Path
    foreign_job: str  # bob's job, which alice must not see

    def password(self, username: str) -> str:
        return PASSWORDS[username]


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Iterator[Workspace]:
    require_browser()
    root = tmp_path_factory.mktemp("workspace")
    env = {key: value for key, value in os.environ.items() if key not in SCRUBBED}
    env.update(
        DATA_DIR=str(root / "data"),
        MEDIA_ROOT=str(root / "media"),
        LOCAL_PROVIDER_DIR=str(root / "local-provider"),
        DEBUG="1",
        DJANGO_SETTINGS_MODULE="sora_controller.settings",
        PYTHONUNBUFFERED="1",
        PASSWORDS=json.dumps(PASSWORDS),
        # The Videos protocol is offered (its key is set; the page only prices it, nothing renders there);
        # fal and Veo stay unconfigured, so the page shows them disabled.
        SORA_API_KEY="sk-test-not-used",
        # One render at a time: a job's first card finishes while the others wait, so the tests can
        # play a finished card (and the preview so far) while the rest still renders.
        INPROCESS_WORKERS="1",
    )
    _manage(env, "migrate", "--noinput", "--verbosity", "0")
    created = json.loads(_manage(env, "shell", "-c", SETUP).strip().splitlines()[-1])
    log = root / "daphne.log"
    server = Daphne(env, log, probe="/login/", timeout=30).start()
    try:
        yield Workspace(url=server.url, root=root, foreign_job=created["foreign_job"])
    finally:
        server.stop()
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(log, ARTIFACTS / "workspace-daphne.log")  # for a look after a failure


@pytest.fixture(scope="session")
def browser(workspace) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, workspace) -> Iterator[Any]:
    """A fresh browser context (no cookies) at desktop width. JavaScript errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=workspace.url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def phone(browser, workspace) -> Iterator[Any]:
    """Like `page`, at a 390x844 phone viewport with touch."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, base_url=workspace.url, is_mobile=True, has_touch=True
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


# axe-core's impacts that fail a page; "moderate" and "minor" are reported in the artifacts only.
BLOCKING_IMPACTS = {"serious", "critical"}


def check_accessibility(page: Any, name: str) -> None:
    """Run axe-core (shipped inside axe-playwright-python, no network) on the page as it is now; fail
    on serious or critical violations and keep the whole report in test-artifacts/."""
    from axe_playwright_python.sync_playwright import Axe

    page.wait_for_load_state("load")  # styled, so colour contrast is judged on what people see
    results = Axe().run(page)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"axe-{name}.json").write_text(json.dumps(results.response["violations"], indent=1))
    blocking = [v for v in results.response["violations"] if v.get("impact") in BLOCKING_IMPACTS]
    assert not blocking, f"axe on {name}:\n" + "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}" for v in blocking
    )


def _luminance(rgb: tuple[int, ...]) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two CSS rgb()/rgba() colours (opaque ones)."""
    light, dark = sorted(
        (_luminance(tuple(int(float(n)) for n in re.findall(r"[\d.]+", c)[:3])) for c in (first, second)),
        reverse=True,
    )
    return (light + 0.05) / (dark + 0.05)


def assert_focus_visible(page: Any) -> None:
    """The focused element shows a solid ring at least 2 px wide with 3:1 contrast against the page
    (WCAG 2.2 focus appearance), reached by the keyboard."""
    style = page.evaluate(
        """() => {
            const s = getComputedStyle(document.activeElement);
            return {style: s.outlineStyle, width: parseFloat(s.outlineWidth), color: s.outlineColor,
                    background: getComputedStyle(document.body).backgroundColor,
                    tag: document.activeElement.tagName};
        }"""
    )
    assert style["style"] == "solid" and style["width"] >= 2, style
    assert contrast(style["color"], style["background"]) >= 3, style
    assert contrast(style["color"], "rgb(255, 255, 255)") >= 3, style


def assert_fits_width(page: Any, width: int = 390) -> None:
    """Nothing on the page scrolls sideways; on failure, name the elements that stick out. Measured once
    the page (and its stylesheet) has loaded: an unstyled page is wider than any styled one."""
    page.wait_for_load_state("load")
    wide = page.evaluate(
        """(width) => document.documentElement.scrollWidth <= width ? [] :
            Array.from(document.querySelectorAll('body *'))
                .filter((e) => e.getBoundingClientRect().right > width + 1)
                .map((e) => `${e.tagName}.${e.className}#${e.id} ends at ${e.getBoundingClientRect().right}`)
                .slice(0, 12)""",
        width,
    )
    assert not wide, wide


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page: Any, workspace: Workspace, username: str) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(workspace.password(username))
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{workspace.url}/")
