"""`manage.py fake_video_api` serves the Videos, fal and Vertex stand-ins and prints the settings that
point the project at them: proven by starting the command as a user would (a subprocess), reading what
it prints, and calling each stand-in with exactly those settings (HTTPS verified against the CA it wrote).
"""

from __future__ import annotations

import os
import queue
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib import request as urlrequest

import pytest
import requests
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from google.auth.transport.requests import AuthorizedSession
from google.oauth2 import service_account

from rendering.fake_api.vertex import CLOUD_PLATFORM_SCOPE

STARTUP_TIMEOUT = 15.0  # Django start-up plus two CAs and an RSA key; about 2 s here
STOP_TIMEOUT = 10.0
TIMEOUT = (5, 15)  # connect, read: every call below is bounded


class Running:
    """The command in a subprocess; its stdout read on a thread so no read blocks the test."""

    def __init__(self, *args: str, cwd: Path) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "fake_video_api", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def until_ready(self, timeout: float = STARTUP_TIMEOUT) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"not ready after {timeout} s; printed: {self.seen}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"the command exited ({self.proc.wait(5)}); printed: {self.seen}")
            self.seen.append(line)
            if line.startswith("ready"):
                return self.seen

    def terminate(self) -> int:
        """SIGTERM, as a service manager stops it; the command must exit cleanly and promptly."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=STOP_TIMEOUT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)


@pytest.fixture
def start():
    started: list[Running] = []

    def run(*args: str) -> Running:
        one = Running(*args, cwd=Path(settings.BASE_DIR))
        started.append(one)
        return one

    yield run
    for one in started:
        one.kill()


def parse(printed: list[str]) -> tuple[dict[str, dict[str, str]], Path]:
    """{section: {NAME: value}} from the indented settings line under each `section: ...` line, and the
    env file's path."""
    sections: dict[str, dict[str, str]] = {}
    current = ""
    env_file = None
    for line in printed:
        if line.startswith("  "):
            sections[current] = dict(word.split("=", 1) for word in shlex.split(line))
        elif line.startswith("env: "):
            env_file = Path(line.removeprefix("env: "))
        elif ":" in line:
            current = line.split(":", 1)[0]
    assert env_file is not None, printed
    return sections, env_file


def test_every_protocol_answers_with_the_settings_it_prints(start, tmp_path, monkeypatch):
    state = tmp_path / "state dir"  # a space: the printed values must be shell-quoted
    command = start(
        "--protocol",
        "all",
        "--port",
        "0",
        "--fal-port",
        "0",
        "--vertex-port",
        "0",
        "--state-dir",
        str(state),
        "--api-key",
        "sk-only-this",
        "--latency",
        "0.2",
        "--fal-queue-latency",
        "0",
    )
    sections, env_file = parse(command.until_ready())
    assert set(sections) == {"videos", "fal", "vertex", "tls"}
    videos, fal, vertex, tls = (sections[k] for k in ("videos", "fal", "vertex", "tls"))
    assert set(videos) == {"SORA_BASE_URL", "SORA_API_KEY"}
    assert set(fal) == {"FAL_QUEUE_URL", "FAL_KEY", "FAL_WEBHOOK_JWKS_URL"}
    assert set(vertex) == {
        "VERTEX_BASE_URL",
        "VERTEX_PROJECT",
        "VERTEX_LOCATION",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "VERTEX_GCS_BASE_URL",
        "VERTEX_OUTPUT_GCS_URI",
    }
    assert set(tls) == {"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"}
    ca = Path(tls["REQUESTS_CA_BUNDLE"])
    key_file = Path(vertex["GOOGLE_APPLICATION_CREDENTIALS"])
    assert ca.parent == key_file.parent == env_file.parent == state
    assert key_file.stat().st_mode & 0o077 == 0  # a private key: readable by its owner only
    # The env file holds the same settings, ready for `set -a; . file`.
    exported = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in env_file.read_text().splitlines()
    )
    assert exported == {**videos, **fal, **vertex, **tls}

    # Videos (plain http): the printed key is the one it accepts.
    listed = requests.get(
        f"{videos['SORA_BASE_URL']}/videos",
        headers={"Authorization": f"Bearer {videos['SORA_API_KEY']}"},
        timeout=TIMEOUT,
    )
    assert listed.status_code == 200 and listed.json()["object"] == "list"
    wrong = requests.get(
        f"{videos['SORA_BASE_URL']}/videos", headers={"Authorization": "Bearer sk-other"}, timeout=TIMEOUT
    )
    assert wrong.status_code == 401

    # fal (https, verified against the printed bundle): submit, then read the status.
    auth = {"Authorization": f"Key {fal['FAL_KEY']}"}
    submitted = requests.post(
        f"{fal['FAL_QUEUE_URL']}/fal-ai/kling-video/v2.1/master/text-to-video",
        json={"prompt": "A lighthouse at dusk.", "duration": "5"},
        headers=auth,
        verify=str(ca),
        timeout=TIMEOUT,
    )
    assert submitted.status_code == 200, submitted.text
    status = requests.get(submitted.json()["status_url"], headers=auth, verify=str(ca), timeout=TIMEOUT)
    assert status.status_code in {200, 202} and status.json()["status"] in {
        "IN_QUEUE",
        "IN_PROGRESS",
        "COMPLETED",
    }
    # The stdlib (and httpx) trust what SSL_CERT_FILE names: fetch fal's webhook keys that way.
    monkeypatch.setenv("SSL_CERT_FILE", tls["SSL_CERT_FILE"])
    context = ssl.create_default_context()
    with urlrequest.urlopen(fal["FAL_WEBHOOK_JWKS_URL"], timeout=10, context=context) as answer:
        assert b'"Ed25519"' in answer.read()

    # Vertex (https): google-auth takes a token from the key file's token_uri (this stand-in), then
    # Veo renders into the printed bucket and the clip comes back through the GCS download path.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    credentials = service_account.Credentials.from_service_account_file(
        str(key_file), scopes=[CLOUD_PLATFORM_SCOPE]
    )
    session = AuthorizedSession(credentials)
    model = (
        f"{vertex['VERTEX_BASE_URL']}/v1/projects/{vertex['VERTEX_PROJECT']}/locations/"
        f"{vertex['VERTEX_LOCATION']}/publishers/google/models/veo-3.1-fast-generate-001"
    )
    created = session.post(
        f"{model}:predictLongRunning",
        json={
            "instances": [{"prompt": "A lighthouse at dusk."}],
            "parameters": {
                "durationSeconds": 4,
                "generateAudio": True,
                "storageUri": vertex["VERTEX_OUTPUT_GCS_URI"],
            },
        },
        timeout=TIMEOUT,
    )
    assert created.status_code == 200, created.text
    deadline = time.monotonic() + 10
    while True:
        operation = session.post(
            f"{model}:fetchPredictOperation", json={"operationName": created.json()["name"]}, timeout=TIMEOUT
        ).json()
        if operation.get("done") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    uri = operation["response"]["videos"][0]["gcsUri"]
    assert uri.startswith(vertex["VERTEX_OUTPUT_GCS_URI"] + "/")
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    downloaded = session.get(
        f"{vertex['VERTEX_GCS_BASE_URL']}/storage/v1/b/{bucket}/o/{requests.utils.quote(name, safe='')}",
        params={"alt": "media"},
        timeout=TIMEOUT,
    )
    assert downloaded.status_code == 200 and downloaded.content[4:8] == b"ftyp"

    # Without the printed CA nothing verifies: the trust comes from the bundle, not from switching it off.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(fal["FAL_WEBHOOK_JWKS_URL"], verify=requests.certs.where(), timeout=TIMEOUT)

    assert command.terminate() == 0
    assert ca.exists() and env_file.exists()  # a --state-dir given is the user's: kept


def test_the_default_state_dir_is_temporary_and_removed_on_exit(start):
    command = start("--port", "0")  # the Videos fake only, as before the other protocols existed
    printed = command.until_ready()
    sections, env_file = parse(printed)
    assert list(sections) == ["videos"] and sections["videos"]["SORA_API_KEY"] == "sk-fake"
    assert env_file.exists() and not (env_file.parent / "fake-ca.pem").exists()
    assert command.terminate() == 0
    assert not env_file.parent.exists()


@pytest.fixture
def busy_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--protocol", "sora"], "--protocol: unknown protocol 'sora'"),
        (["--protocol", ","], "--protocol: name at least one"),
        (["--protocol", "all", "--fal-port", "8765"], "--fal-port 8765 is the same as --port"),
        (["--port", "70000"], "--port must be between 0 and 65535, got 70000"),
        (["--latency", "-1"], "--latency must not be negative"),
        (["--failure-rate", "2"], "--failure-rate must be between 0 and 1"),
        (["--protocol", "fal", "--host", "0.0.0.0"], "--host 0.0.0.0: the fal and Vertex fakes serve TLS"),
        (["--protocol", "fal", "--fal-key", "nocolon"], "--fal-key must look like <key id>:<key secret>"),
        (["--protocol", "vertex", "--vertex-project", "a/b"], "--vertex-project must be a non-empty name"),
        (["--protocol", "vertex", "--vertex-output-gcs-uri", "s3://x"], "--vertex-output-gcs-uri must be"),
    ],
)
def test_bad_flags_are_refused_naming_the_problem(args, message):
    with pytest.raises(CommandError) as refused:
        call_command("fake_video_api", *args)
    assert message in str(refused.value)


def test_a_state_dir_that_is_a_file_is_refused(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(CommandError, match=r"--state-dir .*: not a directory"):
        call_command("fake_video_api", "--state-dir", str(not_a_dir))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_taken_port_is_refused_and_what_started_is_stopped(busy_port, tmp_path):
    videos_port = free_port()
    with pytest.raises(CommandError, match=f"cannot serve fal on 127.0.0.1:{busy_port}"):
        call_command(
            "fake_video_api",
            "--protocol",
            "videos,fal",
            "--port",
            str(videos_port),
            "--fal-port",
            str(busy_port),
            "--state-dir",
            str(tmp_path),
        )
    # The Videos fake, started first, was stopped again: its port is free.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", videos_port))
