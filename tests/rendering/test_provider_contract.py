"""One contract, every remote provider: the same tests run against sora, fal and veo, each talking to its
strict stand-in in rendering.fake_api and configured only through settings (as a deployment is).

What differs per protocol lives in one `Contract` adapter per provider: a request its model accepts, one
its stand-in refuses as bad input (and the field it must name), a prompt its content checker refuses
(and the reason it gives), and the stand-in's knobs (a 429 with a wait, a 5xx on the next call, results
that expire, credentials taken away). The tests below never name a provider; where a protocol cannot do
something (cancel) the provider must say so itself, and the adapter records what we expect it to say.

A knob a stand-in lacks is None in the adapter, with the reason in `missing`: the one test that needs it
is marked xfail(strict=True) at run time (see `Contract.knob`), so wiring the knob up later turns the
case green on its own, and the fake itself is never edited from here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rendering.fake_api import FakeConfig, FakeVideoServer
from rendering.fake_api.fal import FakeFalServer, FalFakeConfig
from rendering.fake_api.vertex import FakeVertexServer, VertexConfig
from rendering.media import probe
from rendering.providers.base import (
    PERMANENT_FAILURE_CODES,
    ProviderError,
    ProviderTask,
    RenderRequest,
    TaskState,
    VideoProvider,
)
from rendering.providers.registry import get_provider

PROVIDERS = ["sora", "fal", "veo"]
LATENCY = 0.3  # seconds each stand-in takes to "render" a clip
POLL_TIMEOUT = 15.0  # the bound on every wait for a task to finish (each call: the short timeouts below)
DEFAULT_POLL = 0.1  # seconds between polls when the provider names no wait
MARKER = "FORBIDDEN"  # the word every stand-in's content checker refuses (their default)


# --- the adapter ------------------------------------------------------------------------------------


@dataclass
class Contract:
    """What one provider's protocol needs for the shared tests, and the knobs of its stand-in."""

    name: str
    fake: Any
    valid: RenderRequest  # a model, length and size the provider and its stand-in accept
    expected_size: str  # WIDTHxHEIGHT of the clip `valid` yields
    bad_input: RenderRequest  # passes the provider's own checks; the stand-in refuses it
    bad_field: str  # the field that refusal must name
    refused: RenderRequest  # its prompt carries the stand-in's content-checker marker
    refusal_reason: str  # text of the stand-in's reason that must reach the error
    credential: str  # the setting whose absence must be named
    can_cancel: bool  # whether the protocol can stop a render
    cancel_note: str  # why not, where it cannot
    creates: Callable[[], int]  # creates the stand-in has accepted (and would bill)
    cancels: Callable[[], int]
    rate_limit_next_create: Callable[[], float]  # arm a 429; returns the wait the stand-in will name
    fail_next_call: Callable[[], None] | None  # arm one transient 5xx answer on the next API call
    prepare_expiry: Callable[[], None]  # before the provider is built: what expiry needs (if anything)
    expire: Callable[[], None]  # make the finished clip of the last task gone
    drop_credentials: Callable[[], None]
    missing: dict[str, str] = field(default_factory=dict)  # knob -> what the stand-in lacks

    def provider(self) -> VideoProvider:
        """A new instance, through the registry, as a worker builds one."""
        return get_provider(self.name)

    def knob(self, name: str, request: pytest.FixtureRequest) -> Callable[[], Any]:
        """The knob `name`; where the stand-in lacks it, this case is xfail(strict=True) and fails here."""
        action = getattr(self, name)
        if action is not None:
            return action
        reason = f"{self.name}'s stand-in lacks a knob: {self.missing[name]}"
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))
        pytest.fail(reason)


def _sora(server: FakeVideoServer, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Contract:
    server.reset(FakeConfig(latency=LATENCY, poll_after_ms=50))
    settings.SORA_BASE_URL = server.url
    settings.SORA_API_KEY = "sk-contract"
    settings.SORA_CONNECT_TIMEOUT, settings.SORA_READ_TIMEOUT = 5.0, 10.0
    settings.SORA_DOWNLOAD_TIMEOUT = 30.0

    def rate_limit() -> float:
        server.config.rate_limit_burst = 1
        server.config.retry_after = 0.25
        return 0.25  # sent as retry-after-ms: 250

    def drop() -> None:
        settings.SORA_API_KEY = ""

    def expire() -> None:
        server.config.expire_next_downloads = 1

    def fail_next() -> None:
        server.config.server_errors_next = 1

    base = {"seconds": 4.0, "size": "1280x720", "fps": 30, "model": "sora-2"}
    return Contract(
        name="sora",
        fake=server,
        valid=RenderRequest(prompt="A lighthouse at dusk", **base),
        expected_size="1280x720",
        bad_input=RenderRequest(prompt="A lighthouse at dusk", **{**base, "seconds": 5.0}),
        bad_field="seconds",
        refused=RenderRequest(prompt=f"A {MARKER} scene at dusk", **base),
        refusal_reason="blocked by our moderation system",
        credential="SORA_API_KEY",
        can_cancel=False,
        cancel_note="the OpenAI Videos protocol has no cancel (only DELETE of a video)",
        creates=lambda: server.stats.creates,
        cancels=lambda: 0,
        rate_limit_next_create=rate_limit,
        fail_next_call=fail_next,
        prepare_expiry=lambda: None,
        expire=expire,
        drop_credentials=drop,
    )


def _fal(server: FakeFalServer, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Contract:
    server.reset(FalFakeConfig(queue_latency=0.05, latency=LATENCY))
    settings.FAL_QUEUE_URL = server.url
    settings.FAL_KEY = server.config.key
    settings.PUBLIC_BASE_URL = ""  # no webhooks: completion is found by polling
    settings.FAL_CONNECT_TIMEOUT, settings.FAL_READ_TIMEOUT = 5.0, 10.0
    settings.FAL_DOWNLOAD_TIMEOUT = 30.0
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))

    def rate_limit() -> float:
        server.config.rate_limit_next = 1
        server.config.retry_after = 2.0
        return 2.0  # sent as Retry-After: 2

    def fail_next() -> None:
        server.config.transient_errors_next = 1
        server.config.transient_status = 503

    def expire() -> None:
        server.config.expire_next_downloads = 1  # the CDN file is gone

    def drop() -> None:
        settings.FAL_KEY = ""

    base = {"seconds": 5.0, "size": "1920x1080", "fps": 24, "model": "fal-ai/kling-video/v2.1/master"}
    return Contract(
        name="fal",
        fake=server,
        valid=RenderRequest(prompt="A lighthouse at dusk", **base),
        expected_size="1920x1080",
        # Kling takes prompts of up to 2,500 characters; the provider leaves that check to fal.
        bad_input=RenderRequest(prompt="A lighthouse at dusk, waves below. " * 80, **base),
        bad_field="prompt",
        refused=RenderRequest(prompt=f"A {MARKER} scene at dusk", **base),
        refusal_reason="flagged by a content checker",
        credential="FAL_KEY",
        can_cancel=True,
        cancel_note="",
        creates=lambda: server.stats.submits,
        cancels=lambda: server.stats.cancels,
        rate_limit_next_create=rate_limit,
        fail_next_call=fail_next,
        prepare_expiry=lambda: None,
        expire=expire,
        drop_credentials=drop,
    )


def _veo(server: FakeVertexServer, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Contract:
    server.reset(VertexConfig(latency=LATENCY))
    for name, value in server.client_env().items():
        monkeypatch.setenv(name, value)
    settings.VERTEX_PROJECT = server.project
    settings.VERTEX_LOCATION = server.location
    settings.VERTEX_BASE_URL = server.url
    settings.GOOGLE_APPLICATION_CREDENTIALS = str(server.key_file)
    settings.VERTEX_OUTPUT_GCS_URI = ""  # clips come inline unless a test asks for Cloud Storage
    settings.VERTEX_GCS_BASE_URL = server.url
    settings.VERTEX_CONNECT_TIMEOUT, settings.VERTEX_READ_TIMEOUT = 5.0, 10.0

    def rate_limit() -> float:
        server.config.rate_limit_next_creates = 1
        server.config.retry_after_header = 3.0
        return 3.0

    def fail_next() -> None:
        server.config.fail_next_calls = 1
        server.config.fail_status = 503

    def gcs_output() -> None:
        # Inline bytes live in the operation and never expire; objects in Cloud Storage do.
        settings.VERTEX_OUTPUT_GCS_URI = "gs://contract-renders/segments"

    def drop() -> None:
        settings.GOOGLE_APPLICATION_CREDENTIALS = ""

    base = {"seconds": 4.0, "size": "1280x720", "fps": 24, "model": "veo-3.1-fast-generate-001"}
    return Contract(
        name="veo",
        fake=server,
        valid=RenderRequest(prompt="A lighthouse at dusk", **base),
        expected_size="1280x720",
        bad_input=RenderRequest(prompt="A lighthouse at dusk", **{**base, "seconds": 5.0}),
        bad_field="durationSeconds",
        refused=RenderRequest(prompt=f"A {MARKER} scene at dusk", **base),
        refusal_reason="violated Vertex AI's usage guidelines",
        credential="GOOGLE_APPLICATION_CREDENTIALS",
        can_cancel=False,
        cancel_note="Vertex AI offers no cancel for publisher-model (Veo) operations",
        creates=lambda: server.stats.creates,
        cancels=lambda: 0,
        rate_limit_next_create=rate_limit,
        fail_next_call=fail_next,
        prepare_expiry=gcs_output,
        expire=server.delete_objects,
        drop_credentials=drop,
    )


# Each stand-in starts once per module (shutting one down waits out its poll interval); every test
# resets it to a fresh configuration and empty counters.
@pytest.fixture(scope="module", params=PROVIDERS)
def stand_in(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any]]:
    name = request.param
    if name == "sora":
        server: Any = FakeVideoServer(FakeConfig(latency=LATENCY))
    elif name == "fal":
        server = FakeFalServer(FalFakeConfig(latency=LATENCY))
    else:
        server = FakeVertexServer(VertexConfig(latency=LATENCY))
    with server:
        yield name, server


@pytest.fixture
def contract(stand_in: tuple[str, Any], settings: Any, monkeypatch: pytest.MonkeyPatch) -> Contract:
    name, server = stand_in
    build = {"sora": _sora, "fal": _fal, "veo": _veo}[name]
    return build(server, settings, monkeypatch)


# --- helpers ----------------------------------------------------------------------------------------


def wait_done(provider: VideoProvider, task_id: str, timeout: float = POLL_TIMEOUT) -> ProviderTask:
    """Poll until the task is finished, honouring the provider's poll_after; bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        task = provider.poll(task_id)
        seen.append(task.status)
        if task.done:
            return task
        left = deadline - time.monotonic()
        assert left > 0, f"{task_id} not done after {timeout:g} s (last states {seen[-3:]})"
        wait = task.poll_after if task.poll_after is not None else DEFAULT_POLL
        time.sleep(max(0.0, min(wait, left, 1.0)))


def permanent_failure(provider: VideoProvider, request: RenderRequest) -> tuple[str, str]:
    """(code, message) of a render the provider fails for good, whichever way its protocol says so:
    ProviderError(permanent=True) at submit, or a FAILED task with a code no retry can fix."""
    try:
        task = provider.submit(request)
    except ProviderError as exc:
        assert exc.permanent, f"refused at submit, but as transient: {exc.code}: {exc.message}"
        return exc.code, exc.message
    final = wait_done(provider, task.id)
    assert final.status == TaskState.FAILED, f"expected a failure, got {final}"
    assert final.error_code in PERMANENT_FAILURE_CODES, (
        f"failed with {final.error_code!r}, which the pipeline would retry: {final.error_message}"
    )
    return final.error_code, final.error_message


def assert_clip(path: Path, contract: Contract) -> None:
    """A real MP4 of the length and size `contract.valid` asked for."""
    info = probe(path)
    assert info.video_codec == "h264"
    assert info.size == contract.expected_size
    assert info.duration == pytest.approx(contract.valid.seconds, abs=0.1)


# --- the contract -----------------------------------------------------------------------------------


def test_create_poll_download_a_real_clip(contract: Contract, tmp_path: Path) -> None:
    provider = contract.provider()

    task = provider.submit(contract.valid)
    assert task.id and task.status in {TaskState.QUEUED, TaskState.IN_PROGRESS}
    final = wait_done(provider, task.id)
    assert final.status == TaskState.COMPLETED, final
    dest = tmp_path / "clips" / "segment-1.mp4"
    assert provider.download(task.id, dest) == dest

    assert_clip(dest, contract)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["segment-1.mp4"]  # no partial file left
    assert contract.creates() == 1


def test_cancel_stops_a_render_where_the_protocol_can(contract: Contract, tmp_path: Path) -> None:
    provider = contract.provider()
    overrides_cancel = type(provider).cancel is not VideoProvider.cancel
    # The provider itself says whether it can cancel (the base class's cancel is a no-op).
    assert overrides_cancel == contract.can_cancel
    if not overrides_cancel:
        pytest.skip(f"{contract.name} cannot cancel: {contract.cancel_note}")

    task = provider.submit(contract.valid)
    provider.cancel(task.id)
    final = wait_done(provider, task.id)
    assert final.status == TaskState.FAILED and final.error_code == "cancelled"
    # A cancelled render is nobody's fault: not a permanent failure code the pipeline would report.
    assert final.error_code not in PERMANENT_FAILURE_CODES
    with pytest.raises(ProviderError) as caught:
        provider.download(task.id, tmp_path / "cancelled.mp4")
    assert caught.value.permanent and not (tmp_path / "cancelled.mp4").exists()

    # Best effort: cancelling a render that has finished leaves it finished and downloadable.
    done = provider.submit(contract.valid)
    assert wait_done(provider, done.id).status == TaskState.COMPLETED
    provider.cancel(done.id)
    assert provider.poll(done.id).status == TaskState.COMPLETED
    assert_clip(provider.download(done.id, tmp_path / "kept.mp4"), contract)
    assert contract.cancels() == 2 and contract.creates() == 2


def test_429_is_transient_and_names_the_wait(contract: Contract) -> None:
    provider = contract.provider()
    wait = contract.rate_limit_next_create()

    with pytest.raises(ProviderError) as caught:
        provider.submit(contract.valid)

    error = caught.value
    assert error.permanent is False and error.status_code == 429
    assert error.retry_after is not None and error.retry_after > 0
    assert error.retry_after == pytest.approx(wait, abs=0.01)  # the server's wait, not a guess
    assert contract.creates() == 0
    # Once the limit has passed, the same request goes through.
    provider.submit(contract.valid)
    assert contract.creates() == 1


def test_a_5xx_on_create_is_transient(contract: Contract, request: pytest.FixtureRequest) -> None:
    fail_next_call = contract.knob("fail_next_call", request)
    provider = contract.provider()
    fail_next_call()

    with pytest.raises(ProviderError) as caught:
        provider.submit(contract.valid)

    assert caught.value.permanent is False
    assert caught.value.status_code is not None and caught.value.status_code >= 500
    assert contract.creates() == 0
    provider.submit(contract.valid)  # the next try is served
    assert contract.creates() == 1


def test_a_5xx_on_poll_is_transient_and_the_task_survives(
    contract: Contract, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    fail_next_call = contract.knob("fail_next_call", request)
    provider = contract.provider()
    task = provider.submit(contract.valid)
    fail_next_call()

    with pytest.raises(ProviderError) as caught:
        provider.poll(task.id)

    assert caught.value.permanent is False
    assert caught.value.status_code is not None and caught.value.status_code >= 500
    assert wait_done(provider, task.id).status == TaskState.COMPLETED
    assert_clip(provider.download(task.id, tmp_path / "c.mp4"), contract)
    assert contract.creates() == 1


def test_content_refusal_is_permanent_with_the_providers_reason(contract: Contract) -> None:
    code, message = permanent_failure(contract.provider(), contract.refused)
    assert contract.refusal_reason in message, f"{code}: {message}"


def test_bad_input_is_permanent_and_names_the_field(contract: Contract) -> None:
    code, message = permanent_failure(contract.provider(), contract.bad_input)
    assert contract.bad_field in message, f"{contract.bad_field!r} is not named: {code}: {message}"


def test_an_expired_result_is_a_permanent_expired_error(contract: Contract, tmp_path: Path) -> None:
    contract.prepare_expiry()
    provider = contract.provider()
    task = provider.submit(contract.valid)
    assert wait_done(provider, task.id).status == TaskState.COMPLETED
    contract.expire()

    dest = tmp_path / "gone.mp4"
    with pytest.raises(ProviderError) as caught:
        provider.download(task.id, dest)

    assert caught.value.code == "expired" and caught.value.permanent is True
    assert not dest.exists() and not list(tmp_path.glob(".*partial*"))


def test_a_restarted_worker_resumes_the_stored_task_without_a_second_create(
    contract: Contract, tmp_path: Path
) -> None:
    before = contract.provider()
    stored_id = before.submit(contract.valid).id  # what the pipeline stores before it polls
    before.poll(stored_id)
    del before  # the worker dies mid-render

    after = contract.provider()  # a new process builds its own instance from settings
    final = wait_done(after, stored_id)
    assert final.status == TaskState.COMPLETED
    dest = after.download(stored_id, tmp_path / "resumed.mp4")

    assert_clip(dest, contract)
    assert contract.creates() == 1


def test_missing_credentials_are_permanent_and_named(contract: Contract, tmp_path: Path) -> None:
    stored_id = contract.provider().submit(contract.valid).id
    contract.drop_credentials()
    provider = contract.provider()

    calls: dict[str, Callable[[], Any]] = {
        "submit": lambda: provider.submit(contract.valid),
        "poll": lambda: provider.poll(stored_id),
        "download": lambda: provider.download(stored_id, tmp_path / "never.mp4"),
    }
    for what, call in calls.items():
        with pytest.raises(ProviderError) as caught:
            call()
        assert caught.value.permanent is True, what
        assert contract.credential in caught.value.message, f"{what}: {caught.value.message}"
    assert contract.creates() == 1  # only the one made while the credentials were there
    assert not (tmp_path / "never.mp4").exists()
