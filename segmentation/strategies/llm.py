"""`llm`: a planning model writes the shot list as JSON; on any failure, `sentences` plans instead.

The model is any OpenAI-compatible chat completions endpoint (LLM_BASE_URL, LLM_API_KEY, LLM_MODEL,
LLM_TIMEOUT). It is asked, with a JSON schema (`response_format: json_schema`), for a shared
`subject` and `style` and exactly one `prompt` per time slice, each repeating the subject and style so
every separately rendered clip stays on-model. The answer is validated strictly: a JSON object with
exactly those keys, exactly as many prompts as slices, each a non-blank string within the prompt
limit. Each prompt must carry the shared context (the prompt's labelled `Style:`/`Subject:`/... lines
verbatim, or else the model's own subject and style); a prompt that left it out gets it prefixed.

Anything else -- no key configured, HTTP error, timeout, a body that is not JSON, a schema mismatch,
a refusal -- falls back to the `sentences` strategy and says so: a notice is appended to
`context.extra["notices"]` (jobs.services stores it on the job, where the API, the workspace and the
CLI show it). The strategy never fails a job because the planner did.

The HTTP call is the one impure part of segmentation; it is isolated in `ChatClient`, and a test (or
another caller) passes its own client as `context.extra["llm_client"]`.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Protocol

import requests

from ..registry import register
from ..text import ParsedPrompt, is_blank, parse_prompt, truncate_text
from ..timing import build_specs, format_number, plan_boundaries, validate_job, validate_specs
from ..types import SegmentationContext, SegmentationError, SegmentSpec
from .sentences import segment_by_scenes

log = logging.getLogger(__name__)

FALLBACK = "sentences"


class PlannerError(Exception):
    """The planner gave no usable shot list. The message says why, for the person to read."""


class Client(Protocol):
    def complete(self, messages: list[dict[str, str]], response_format: dict[str, Any]) -> str: ...


@dataclass
class ChatClient:
    """POST {base_url}/chat/completions; returns the assistant message's text or raises PlannerError."""

    base_url: str
    api_key: str
    model: str
    timeout: float = 30.0
    session: requests.Session | None = None

    @classmethod
    def from_settings(cls) -> ChatClient:
        from django.conf import settings

        return cls(
            base_url=settings.LLM_BASE_URL,
            api_key=settings.LLM_API_KEY,
            model=settings.LLM_MODEL,
            timeout=settings.LLM_TIMEOUT,
        )

    def complete(self, messages: list[dict[str, str]], response_format: dict[str, Any]) -> str:
        if not self.api_key:
            raise PlannerError("LLM_API_KEY is not set")
        url = f"{self.base_url.rstrip('/')}/chat/completions"
        body = {"model": self.model, "messages": messages, "response_format": response_format}
        session = self.session or requests.Session()
        try:
            response = session.post(
                url,
                json=body,
                headers={"Authorization": f"Bearer {self.api_key}", "User-Agent": "sora-controller/1"},
                timeout=self.timeout,
            )
        except requests.Timeout:
            raise PlannerError(f"the planning model did not answer within {self.timeout:g} s") from None
        except requests.RequestException as exc:
            raise PlannerError(f"could not reach the planning model at {self.base_url}: {exc}") from None
        if response.status_code >= 400:
            raise PlannerError(f"the planning model answered HTTP {response.status_code}: {_error(response)}")
        try:
            data = response.json()
            message = data["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise PlannerError("the planning model's reply is not a chat completion") from None
        if not isinstance(message, dict):
            raise PlannerError("the planning model's reply is not a chat completion")
        if message.get("refusal"):
            raise PlannerError(f"the planning model refused: {str(message['refusal'])[:200]}")
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            raise PlannerError("the planning model's reply is empty")
        return content


def _error(response: requests.Response) -> str:
    try:
        error = response.json().get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error)[:200]
    except (ValueError, AttributeError):
        pass
    return (response.text or response.reason or "").strip()[:200]


# --- The request ------------------------------------------------------------------------------------


def response_format() -> dict[str, Any]:
    """Structured output: strict JSON schema (the count is checked by us; strict mode may not support
    minItems/maxItems)."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "shot_list",
            "strict": True,
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "required": ["subject", "style", "segments"],
                "properties": {
                    "subject": {"type": "string", "description": "who or what appears, drawn the same way"},
                    "style": {"type": "string", "description": "look, lighting, palette, camera"},
                    "segments": {
                        "type": "array",
                        "description": "exactly one item per shot, in order",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["prompt"],
                            "properties": {"prompt": {"type": "string"}},
                        },
                    },
                },
            },
        },
    }


def build_messages(
    prompt: str, boundaries: list[tuple[float, float]], parsed: ParsedPrompt, max_chars: int
) -> list[dict[str, str]]:
    count = len(boundaries)
    system = (
        "You plan shots for a text-to-video model. It renders every shot separately and remembers "
        "nothing between shots, so a shot's prompt must say everything the shot needs. Split the "
        f"user's description into exactly {count} consecutive shots of the given lengths, in story "
        "order. Reply with JSON only, matching the schema: `subject` (who or what appears, described "
        "concretely enough to be drawn identically every time), `style` (look, lighting, palette, "
        f"camera), and `segments`: exactly {count} objects, each with one `prompt` describing that "
        "shot's action AND repeating the subject and style word for word"
        + (
            ", and the user's labelled context lines (Style:, Subject:, ...) verbatim"
            if parsed.labelled
            else ""
        )
        + f", so every clip stays on-model. Each prompt is at most {max_chars} characters."
    )
    user = {
        "description": prompt,
        "shots": [
            {"shot": index + 1, "seconds": round(end - start, 3)}
            for index, (start, end) in enumerate(boundaries)
        ],
        "shared_context": parsed.shared_context or None,
    }
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": json.dumps(user, ensure_ascii=False)},
    ]


# --- The answer -------------------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class ShotList:
    subject: str
    style: str
    prompts: list[str]


def parse_shot_list(content: str, count: int, max_chars: int) -> ShotList:
    """Validate the model's JSON strictly; raise PlannerError naming what is wrong."""
    fenced = _FENCE.match(content)  # some gateways wrap JSON in a code fence despite the schema
    try:
        data = json.loads(fenced.group(1) if fenced else content)
    except ValueError:
        raise PlannerError("the planning model's reply is not valid JSON") from None
    if not isinstance(data, dict):
        raise PlannerError("the planning model's reply is not a JSON object")
    expected = {"subject", "style", "segments"}
    if set(data) != expected:
        missing, extra = sorted(expected - set(data)), sorted(set(data) - expected)
        detail = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unexpected {', '.join(extra)}" if extra else "",
            )
            if part
        )
        raise PlannerError(f"the shot list does not match the schema ({detail})")
    subject, style, segments = data["subject"], data["style"], data["segments"]
    if not isinstance(subject, str) or not isinstance(style, str):
        raise PlannerError("the shot list's subject and style must be text")
    if not isinstance(segments, list):
        raise PlannerError("the shot list's segments must be a list")
    if len(segments) != count:
        raise PlannerError(f"the planning model wrote {len(segments)} shots; {count} were needed")
    prompts = []
    for number, item in enumerate(segments, start=1):
        if not isinstance(item, dict) or set(item) != {"prompt"}:
            raise PlannerError(f"shot {number} must be an object with exactly one key, prompt")
        text = item["prompt"]
        if not isinstance(text, str) or is_blank(text):
            raise PlannerError(f"shot {number} has an empty prompt")
        text = text.strip()
        if len(text) > max_chars:
            raise PlannerError(f"shot {number} is {len(text)} characters; the limit is {max_chars}")
        prompts.append(text)
    return ShotList(subject=subject.strip(), style=style.strip(), prompts=prompts)


def _normalised(text: str) -> str:
    return " ".join(text.split()).casefold()


def shared_block(parsed: ParsedPrompt, shots: ShotList) -> tuple[str, list[str]]:
    """The context every prompt must carry, and the pieces checked for in each prompt.

    The person's labelled lines win (verbatim); without them, the model's subject and style; failing
    those, the prompt's first sentence (the rule the other strategies follow)."""
    if parsed.labelled:
        return parsed.shared_context, list(parsed.context_lines)
    lines = [
        line
        for line in (
            f"Subject: {shots.subject}" if shots.subject else "",
            f"Style: {shots.style}" if shots.style else "",
        )
        if line
    ]
    if lines:
        return "\n".join(lines), [value for value in (shots.subject, shots.style) if value]
    subject = parsed.subject or ""
    return subject, [subject] if subject else []


def with_shared_context(prompts: list[str], block: str, pieces: list[str], max_chars: int) -> list[str]:
    """Prefix `block` to every prompt missing any of `pieces`, keeping within `max_chars`."""
    if not block:
        return prompts
    result = []
    for number, text in enumerate(prompts, start=1):
        folded = _normalised(text)
        if all(_normalised(piece) in folded for piece in pieces):
            result.append(text)
            continue
        room = max_chars - len(block) - 2
        if room < 1:
            raise PlannerError(
                f"the shared context leaves no room for shot {number} within {max_chars} characters"
            )
        result.append(f"{block}\n\n{truncate_text(text, room)}")
    return result


def plan_with_model(
    client: Client, prompt: str, boundaries: list[tuple[float, float]], context: SegmentationContext
) -> list[str]:
    parsed = parse_prompt(prompt)
    max_chars = context.max_segment_prompt_chars
    content = client.complete(build_messages(prompt, boundaries, parsed, max_chars), response_format())
    shots = parse_shot_list(content, len(boundaries), max_chars)
    block, pieces = shared_block(parsed, shots)
    return with_shared_context(shots.prompts, block, pieces, max_chars)


def notices(context: SegmentationContext) -> list[str]:
    """The list of notices for the person (created on first use)."""
    return context.extra.setdefault("notices", [])


@register(
    "llm",
    description="LLM: a planning model writes the shot list (falls back to scenes if it fails)",
)
def segment_llm(
    prompt: str, duration: float, segment_length: float, context: SegmentationContext
) -> list[SegmentSpec]:
    """A planning model writes one prompt per time slice, each carrying the shared subject and style."""
    # Bad input is the person's to fix, exactly as with every strategy: no fallback for that.
    prompt, duration, segment_length = validate_job(prompt, duration, segment_length, context)
    boundaries = plan_boundaries(duration, segment_length, context.min_segment_seconds, context.clip_lengths)
    client: Client = context.extra.get("llm_client") or ChatClient.from_settings()
    try:
        prompts = plan_with_model(client, prompt, boundaries, context)
        specs = build_specs(prompts, boundaries)
        validate_specs(specs, duration, context)
        return specs
    except (PlannerError, SegmentationError) as exc:
        reason = exc.message if isinstance(exc, SegmentationError) else str(exc)
        count = len(boundaries)
        notice = (
            f"The llm planner could not plan the {count} segment{'s' * (count != 1)} "
            f"({format_number(duration)} s): {reason}. The '{FALLBACK}' strategy planned them instead."
        )
        notices(context).append(notice)
        log.warning("llm strategy fell back to %s: %s", FALLBACK, reason)
        return segment_by_scenes(prompt, duration, segment_length, context)
