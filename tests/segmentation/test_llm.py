"""The `llm` strategy against a local fake of an OpenAI-compatible chat endpoint: a valid shot list,
the shared context enforced, and every failure falling back to `sentences` with a notice."""

from __future__ import annotations

import io
import json
import socket

import pytest
from django.core.management import call_command

from jobs import services
from segmentation.registry import segment_prompt
from segmentation.strategies.llm import ChatClient
from segmentation.types import SegmentationContext, SegmentationError
from tests.support.fake_chat import FakeChat

PROMPT = "A paper boat sails down a gutter. It drops into a drain. It reaches the sea."
FALLBACK_NOTE = "The 'sentences' strategy planned them instead."


@pytest.fixture
def chat(settings):
    fake = FakeChat().start()
    settings.LLM_BASE_URL = fake.url
    settings.LLM_API_KEY = "sk-chat"
    settings.LLM_MODEL = "planner-1"
    settings.LLM_TIMEOUT = 5.0
    yield fake
    fake.stop()


def plan(prompt: str = PROMPT, duration: float = 30, length: float = 10, **extra):
    context = SegmentationContext(extra=dict(extra))
    return segment_prompt("llm", prompt, duration, length, context), context.extra.get("notices", [])


def test_the_model_writes_the_shot_list(chat):
    specs, notices = plan()
    assert notices == []
    assert [s.prompt for s in specs] == [
        f"{chat.subject}, {chat.style}. Shot {i}: the boat drifts on." for i in (1, 2, 3)
    ]
    assert [(s.start_seconds, s.end_seconds) for s in specs] == [(0, 10), (10, 20), (20, 30)]
    sent = chat.requests[0]
    assert sent["_authorization"] == "Bearer sk-chat" and sent["model"] == "planner-1"
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["strict"] is True
    assert "exactly 3 consecutive shots" in sent["messages"][0]["content"]
    user = json.loads(sent["messages"][1]["content"])
    assert user["description"] == PROMPT and [s["seconds"] for s in user["shots"]] == [10, 10, 10]


def test_the_persons_labelled_context_is_put_back_where_the_model_left_it_out(chat):
    chat.shots = [
        "Rain falls on the street.",
        "Style: noir, black and white\nSubject: a tired detective. He smokes.",
    ]
    prompt = "Style: noir, black and white\nSubject: a tired detective\nRain falls. He lights a cigarette."
    specs, notices = plan(prompt, 20, 10)
    assert notices == []
    assert specs[0].prompt == (
        "Style: noir, black and white\nSubject: a tired detective\n\nRain falls on the street."
    )
    assert specs[1].prompt == chat.shots[1]  # already carried it: left as written


def test_the_models_own_subject_and_style_are_put_back_where_a_shot_left_them_out(chat):
    chat.shots = ["The boat tips over the edge.", f"{chat.subject} in {chat.style} reaches the sea."]
    specs, _ = plan(duration=20)
    assert specs[0].prompt == f"Subject: {chat.subject}\nStyle: {chat.style}\n\nThe boat tips over the edge."
    assert specs[1].prompt == chat.shots[1]


def test_a_fenced_answer_is_accepted(chat):
    chat.mode = "fenced"
    specs, notices = plan()
    assert notices == [] and len(specs) == 3 and chat.subject in specs[0].prompt


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("malformed", "reply is not valid JSON"),
        ("wrong_count", "wrote 2 shots; 3 were needed"),
        ("refusal", "refused"),
        ("error", "answered HTTP 500: The server had an error"),
        ("slow", "did not answer within 0.3 s"),
        ("no_key", "LLM_API_KEY is not set"),
        ("outage", "could not reach the planning model"),
    ],
)
def test_any_failure_falls_back_to_sentences_and_says_so(chat, settings, mode, reason):
    if mode == "no_key":
        settings.LLM_API_KEY = ""
    elif mode == "outage":
        settings.LLM_BASE_URL = closed_port_url()
    else:
        chat.mode = mode
    settings.LLM_TIMEOUT = 0.3
    chat.delay = 1.0

    specs, notices = plan()

    assert specs == segment_prompt("sentences", PROMPT, 30, 10, SegmentationContext())
    assert len(notices) == 1
    assert notices[0].startswith("The llm planner could not plan the 3 segments (30 s): ")
    assert reason in notices[0] and notices[0].endswith(FALLBACK_NOTE)
    if mode == "no_key":
        assert chat.requests == []  # nothing is sent without a key


def test_a_shot_over_the_prompt_limit_is_a_schema_failure(chat):
    chat.shots = ["x" * 150, "short", "short"]
    context = SegmentationContext(max_segment_prompt_chars=100)
    specs = segment_prompt("llm", PROMPT, 30, 10, context)
    assert "shot 1 is 150 characters; the limit is 100" in context.extra["notices"][0]
    assert all(len(s.prompt) <= 100 for s in specs)


def test_bad_input_is_the_persons_to_fix_not_a_fallback(chat):
    with pytest.raises(SegmentationError) as refused:
        plan(duration=0)
    assert refused.value.field == "duration_seconds" and chat.requests == []


def test_a_client_can_be_injected():
    class Scripted:
        def complete(self, messages, response_format):
            return json.dumps({"subject": "s", "style": "t", "segments": [{"prompt": "s t one"}]})

    specs, notices = plan("One shot.", 5, 10, llm_client=Scripted())
    assert [s.prompt for s in specs] == ["s t one"] and notices == []


def test_the_client_reads_its_settings(settings):
    settings.LLM_BASE_URL, settings.LLM_API_KEY, settings.LLM_MODEL, settings.LLM_TIMEOUT = (
        "http://x/v1",
        "k",
        "m",
        7,
    )
    client = ChatClient.from_settings()
    assert (client.base_url, client.api_key, client.model, client.timeout) == ("http://x/v1", "k", "m", 7)


@pytest.mark.django_db(transaction=True)
def test_the_notice_is_kept_on_the_job_and_printed_by_the_cli(chat, user, tmp_path):
    chat.mode = "malformed"
    job = services.video_job_create(owner=user, prompt=PROMPT, duration_seconds=20, strategy="llm")
    assert len(job.notices) == 1 and job.notices[0].endswith(FALLBACK_NOTE)
    assert job.strategy == "llm"

    out = io.StringIO()
    call_command(
        "render",
        "A kite climbs. It loops.",
        "--duration",
        "2",
        "--segment-seconds",
        "1",
        "--strategy",
        "llm",
        "--size",
        "160x120",
        "--fps",
        "10",
        stdout=out,
    )
    assert (
        "note: The llm planner could not plan the 2 segments (2 s): the planning model's reply is not "
        in (out.getvalue())
    )
