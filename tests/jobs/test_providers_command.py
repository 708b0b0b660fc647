"""`manage.py providers` shows the catalogue the API shows, with what each provider still needs."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("providers", *args, stdout=out)
    return out.getvalue()


def test_the_table_names_models_lengths_prices_and_missing_settings(settings):
    settings.FAL_KEY = ""
    text = run()
    assert "fal: fal.ai queue" in text and "[unavailable: set FAL_KEY]" in text
    assert "fal-ai/kling-video/v2.1/master" in text and "lengths 5/10 s" in text
    assert "local" in text and "[available]" in text


def test_json_is_the_apis_rows(client, settings, user):
    settings.FAL_KEY = "id:secret"
    rows = json.loads(run("--json", "--provider", "fal"))
    assert [r["name"] for r in rows] == ["fal"] and rows[0]["available"] is True
    client.force_login(user)
    api = client.get("/api/providers/").json()
    assert [m["id"] for m in next(r for r in api if r["name"] == "fal")["models"]] == [
        m["id"] for m in rows[0]["models"]
    ]


def test_an_unknown_provider_is_named():
    with pytest.raises(CommandError, match="--provider: unknown provider 'nope'"):
        run("--provider", "nope")
