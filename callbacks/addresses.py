"""Which callback URLs we will send to (SSRF).

At registration the URL's shape is checked (https, a host, no credentials; a literal address or
`localhost` must be public), so a client gets a 400 naming the field. At every send the host is
resolved again and every address it resolves to must be public, and the request goes to the address
that was checked (see sender.py): a DNS answer that changes after registration (rebinding) cannot
point a delivery at this machine or the private network. Settings ALLOW_HTTP_CALLBACKS and
ALLOW_PRIVATE_CALLBACKS relax the two rules for local receivers.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from django.conf import settings

MAX_URL_LENGTH = 2000


class UnsafeAddress(Exception):
    """A callback host we refuse to reach; permanent, the message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written in the URL (for Host and TLS server name)
    port: int
    path: str  # path and query
    address: str  # the checked IP the request connects to


def url_problems(url: str) -> list[str]:
    """What is wrong with `url` as a callback URL (empty: nothing)."""
    if len(url) > MAX_URL_LENGTH:
        return [f"must be at most {MAX_URL_LENGTH} characters."]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return [f"is not a valid URL ({exc})."]
    allowed = ("https", "http") if settings.ALLOW_HTTP_CALLBACKS else ("https",)
    if parts.scheme not in allowed:
        return ["must be an https:// URL." if len(allowed) == 1 else "must be an https:// or http:// URL."]
    if not parts.hostname:
        return ["must name a host."]
    if parts.username is not None or parts.password is not None:
        return ["must not contain credentials; authenticate the request by its signature."]
    if port == 0:
        return ["must not use port 0."]
    if parts.fragment:
        return ["must not contain a #fragment."]
    if not settings.ALLOW_PRIVATE_CALLBACKS:
        host = parts.hostname.rstrip(".").lower()
        if host == "localhost" or host.endswith(".localhost"):
            return ["must not point at this machine (localhost)."]
        literal = _as_address(host)
        if literal is not None and not is_public(literal):
            return [f"must not point at a private, loopback or reserved address ({literal})."]
    return []


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def _as_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def resolve_target(url: str) -> Target:
    """Resolve `url`'s host now and pick the address to connect to; UnsafeAddress if any address it
    resolves to is not public (unless ALLOW_PRIVATE_CALLBACKS) or the URL is no longer acceptable."""
    problems = url_problems(url)
    if problems:
        raise UnsafeAddress(f"callback URL {problems[0].rstrip('.')}")
    parts: SplitResult = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeAddress(f"cannot resolve {host}: {exc}") from exc
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if not settings.ALLOW_PRIVATE_CALLBACKS and not is_public(address):
            raise UnsafeAddress(f"{host} resolves to a private, loopback or reserved address ({address})")
        addresses.append(str(address))
    if not addresses:
        raise UnsafeAddress(f"{host} resolves to no address")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme=parts.scheme, host=host, port=port, path=path, address=addresses[0])
