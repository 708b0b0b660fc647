"""A fake OpenAI-compatible chat completions endpoint for the `llm` segmentation strategy's tests.

`POST /v1/chat/completions` answers, by `FakeChat.mode`:

- "ok": a shot list as JSON (`shots` if set, else one prompt per requested shot, each carrying the
  subject and style), in an OpenAI-shaped chat completion;
- "fenced": the same JSON inside a ```json code fence;
- "malformed": text that is not JSON;
- "wrong_count": one shot fewer than requested;
- "refusal": a refusal message;
- "error": HTTP 500 with an OpenAI-style error body;
- "slow": the "ok" answer after `delay` seconds (longer than the client's timeout).

Every request body is kept in `requests` (with its Authorization header) for assertions.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeChat:
    def __init__(self) -> None:
        self.mode = "ok"
        self.shots: list[str] | None = None
        self.subject = "a small red paper boat"
        self.style = "hand-drawn watercolour, soft morning light"
        self.delay = 2.0
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="fake-chat", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeChat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def shot_list(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            count = len(json.loads(request["messages"][-1]["content"])["shots"])
        except (KeyError, IndexError, TypeError, ValueError):
            count = 1
        shots = self.shots or [
            f"{self.subject}, {self.style}. Shot {i + 1}: the boat drifts on." for i in range(count)
        ]
        if self.mode == "wrong_count":
            shots = shots[: max(0, count - 1)]
        return {"subject": self.subject, "style": self.style, "segments": [{"prompt": p} for p in shots]}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        fake: FakeChat = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        with fake.lock:
            fake.requests.append({**request, "_authorization": self.headers.get("Authorization", "")})
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
        mode = fake.mode
        if mode == "error":
            return self._send(500, {"error": {"message": "The server had an error", "type": "server_error"}})
        if mode == "slow":
            time.sleep(fake.delay)
        content: str | None = json.dumps(fake.shot_list(request))
        refusal = None
        if mode == "fenced":
            content = f"```json\n{content}\n```"
        elif mode == "malformed":
            content = "Sure! Here are your shots: 1. a boat 2. the sea"
        elif mode == "refusal":
            content, refusal = None, "I can't help with that."
        self._send(
            200,
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.get("model", ""),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": refusal},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            },
        )
