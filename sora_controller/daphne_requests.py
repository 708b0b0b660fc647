"""Daphne's HTTP requests without Twisted's own parsing of form bodies.

Twisted's Request parses every POST body that is a form (multipart/form-data or URL-encoded) into
`request.args` before handing the request on, and daphne never reads `args`: Django parses the body
again, in the request's thread, within its own limits (DATA_UPLOAD_MAX_MEMORY_SIZE, the number of
fields and parts). Twisted's parse ran in the reactor thread, so a large or many-part upload (a
job's reference images) held every other connection of the process while it ran, and even a small JSON
POST paid for parsing its Content-Type through the email package. Twisted's own switch,
`parsePOSTFormSubmission=False`, turns it off.
"""

from __future__ import annotations

from typing import Any


def skip_twisted_form_parsing() -> None:
    """Make every daphne request of this process skip it (idempotent)."""
    from daphne.http_protocol import WebRequest

    if getattr(WebRequest.__init__, "skips_form_parsing", False):
        return
    daphne_init = WebRequest.__init__

    def __init__(self: WebRequest, *args: Any, **kwargs: Any) -> None:
        daphne_init(self, *args, **{**kwargs, "parsePOSTFormSubmission": False})

    __init__.skips_form_parsing = True  # type: ignore[attr-defined]
    WebRequest.__init__ = __init__
