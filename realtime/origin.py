"""WebSockets only from the page's own origin, port included (a page on the same host but another port
is another site), or from a front end named in FRONTEND_ORIGIN. Channels' AllowedHostsOriginValidator
compares host names only and so admits any port."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def origin_allowed(origin: str, host: str) -> bool:
    """`origin` (scheme://host[:port]) is this server as the browser reached it (the Host header, an
    allowed host), or a configured front end."""
    if not origin:
        return False
    if origin.rstrip("/") in {o.rstrip("/") for o in settings.FRONTEND_ORIGIN}:
        return True
    parsed = urlsplit(origin)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        return False
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    default_port = "443" if parsed.scheme == "https" else "80"
    return _with_port(parsed.netloc, default_port) == _with_port(host, default_port)


def _with_port(netloc: str, default_port: str) -> str:
    domain, port = split_domain_port(netloc.lower())
    return f"{domain}:{port or default_port}"


class SameOriginValidator:
    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(
            _header(scope, b"origin"), _header(scope, b"host")
        ):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
