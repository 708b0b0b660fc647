"""`make demo`'s video belongs to the login `make serve` prints, so a new user sees it in the workspace."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.management import call_command

from jobs.management.commands.serve_info import DEMO_USERNAME
from jobs.models import VideoJob

ROOT = Path(__file__).resolve().parents[2]


def test_make_demo_renders_as_the_serve_login():
    makefile = (ROOT / "Makefile").read_text()
    demo = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert re.search(rf"--user {DEMO_USERNAME}\b", demo), demo


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_demo_users_job_is_listed_for_the_printed_login(tmp_path, settings, client, capsys):
    settings.DATA_DIR = tmp_path
    call_command(
        "render",
        "A paper boat sails down a gutter.",
        "--duration",
        "2",
        "--segment-seconds",
        "2",
        "--user",
        DEMO_USERNAME,
        "--output",
        str(tmp_path / "demo.mp4"),
    )
    call_command("serve_info", "--port", "8000")
    printed = capsys.readouterr().out
    password = re.search(rf"Log in as: {DEMO_USERNAME} / (\S+)", printed).group(1)
    # Log in through the login page, as a person would (django-axes wants the request).
    answer = client.post("/login/", {"username": DEMO_USERNAME, "password": password})
    assert answer.status_code == 302, answer.content[:300]
    job = VideoJob.objects.get(owner__username=DEMO_USERNAME)
    assert str(job.id) in client.get("/").content.decode()
