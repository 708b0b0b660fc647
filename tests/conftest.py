"""Project-wide fixtures: users, an isolated media root, and the service probes."""

from __future__ import annotations

import pytest

from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def _no_background_reaper(settings):
    # A sweeper thread in the test process would race the tests that craft stale rows on purpose.
    settings.EMBEDDED_REAPER = False


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2 costs ~0.3 s per user on this machine; tests need no real password strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    # Each test writes its clips under its own temporary media root, so tests never see each
    # other's files and nothing lands in the developer's var/media.
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    yield


@pytest.fixture
def user(db):
    return UserFactory(username="alice")  # password "pw-alice-123"


@pytest.fixture
def other_user(db):
    return UserFactory(username="bob")  # password "pw-bob-123"


@pytest.fixture(autouse=True)
def _isolated_provider_dir(settings, tmp_path):
    settings.LOCAL_PROVIDER_DIR = tmp_path / "local-provider"
    yield


@pytest.fixture
def fake_api(settings):
    """The fake Videos API on a free port, with the sora provider pointed at it."""
    from rendering.fake_api import FakeConfig, FakeVideoServer

    server = FakeVideoServer(FakeConfig(latency=0.3, poll_after_ms=50)).start()
    settings.SORA_BASE_URL = server.url
    settings.SORA_API_KEY = "sk-fake"
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _providers_configured(settings):
    # A provider without its credentials is refused when a job is created (400 naming the variable);
    # tests plan jobs on the Videos protocol without talking to it, as a configured server would.
    settings.SORA_API_KEY = settings.SORA_API_KEY or "sk-test-not-used"
