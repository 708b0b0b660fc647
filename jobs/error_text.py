"""Provider error codes as sentences for people. The one mapping: the job page shows `explain(error)`
(and applies the same table, sent in its config, to errors that arrive live), while the stored error
keeps the raw "code: message" for operators in the admin and the API.
"""

from __future__ import annotations

import re

# code -> what happened and what the person can do, in plain words.
SENTENCES: dict[str, str] = {
    "moderation_blocked": "The provider refused this segment's prompt under its content rules. "
    "Rephrase the prompt and re-render the segment.",
    "content_policy_violation": "The provider refused this segment's prompt or image under its content "
    "rules. Rephrase the prompt (or change the image) and re-render the segment.",
    "invalid_prompt": "The provider could not use this prompt. Rephrase it and re-render the segment.",
    "invalid_image_size": "The reference image does not fit the size this model renders. Use another "
    "image or size.",
    "invalid_request": "The provider rejected the request for this segment. Check the prompt and the "
    "reference image, then re-render.",
    "rate_limit_exceeded": "The provider is busy with too many requests. Wait a minute and retry.",
    "timeout": "The provider took too long to answer. Retry; it usually works the second time.",
    "connection_error": "The provider could not be reached. Check the network and retry.",
    "server_error": "The provider had a problem on its side. Retry in a few minutes.",
    "bad_response": "The provider sent an answer we could not read. Retry in a few minutes.",
    "invalid_json": "The provider sent an answer we could not read. Retry in a few minutes.",
    "no_api_key": "This provider is not set up on the server (no API key). Choose another model.",
    "not_configured": "This provider is not set up on the server. Choose another model.",
    "invalid_api_key": "The server's key for this provider was refused. Ask an operator to check it.",
    "auth_failed": "The server could not sign in to this provider. Ask an operator to check its credentials.",
    "expired": "The finished clip expired at the provider before it could be saved. Re-render the segment.",
    "video_expired": "The finished clip expired at the provider before it could be saved. Re-render the "
    "segment.",
    "download": "The finished clip could not be downloaded. Retry.",
    "short_download": "The finished clip arrived incomplete. Retry.",
    "no_video": "The provider finished without a video. Re-render the segment, perhaps with a "
    "different prompt.",
    "not_found": "The provider no longer knows this render. Re-render the segment.",
    "video_not_found": "The provider no longer knows this render. Re-render the segment.",
    "ffmpeg_timeout": "Drawing the clip took too long on the server. Retry.",
    "ffmpeg_failed": "The server could not draw this clip. Retry, or ask an operator.",
    "cancelled": "The render was cancelled.",
    "failed": "The provider could not render this segment. Retry or re-render it.",
}

# A stored error starts with its code ("moderation_blocked: ..."); only snake_case words count as codes.
CODE = re.compile(r"^([a-z][a-z0-9_]{1,60}):\s")


def error_code(error: str) -> str:
    """The provider code at the start of a stored error, or "" when there is none."""
    match = CODE.match(error or "")
    return match.group(1) if match else ""


def explain(error: str) -> str:
    """The sentence a person sees for a stored error; an error without a known code is shown as it is
    (our own messages are written for people already)."""
    if not error:
        return ""
    return SENTENCES.get(error_code(error), error)
