"""Who may talk to the server: checks on every request before the app sees it (an ASGI middleware), each a
small pure function of the request's headers.

- **Host** must name this server: ``localhost``, ``127.0.0.1``, ``[::1]`` or the address it is bound to (for a
  wildcard bind, any IP address); a DNS-rebinding page reaches the server under its own name and is refused.
- **Cross-site**: a request to ``/api/`` (the routes that compute) must come from the page itself: an ``Origin``
  header, when sent, must be this server's; ``Sec-Fetch-Site``, when sent, must be ``same-origin`` or
  ``none`` (typed into the address bar). Another site's page cannot drive the API.
- **POST** bodies must be declared JSON (``Content-Type: application/json``): a form or text/plain post from
  another site (which needs no CORS preflight) is refused before it is read.
- Every response says ``nosniff``, may not be framed, sends no referrer, and the page may load only its own
  assets (Content-Security-Policy).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from estimator.checkpoint.files import printable

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK = frozenset({"localhost", "127.0.0.1", "[::1]"})
WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # the names of a wildcard bind
SAME_SITE = frozenset({"same-origin", "none"})
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'"),
)


def host_name(header: str) -> str:
    """The host of a ``Host`` header, without its port, lower-cased (``[::1]:8000`` -> ``[::1]``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def bound_name(bound: str) -> str:
    """The bound address as a Host header names it (an IPv6 address in brackets)."""
    bound = bound.strip().lower()
    return f"[{bound}]" if ":" in bound and not bound.startswith("[") else bound


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def host_allowed(header: str | None, bound: str) -> bool:
    """Whether a request's ``Host`` names this server (see the module docstring)."""
    if not header:
        return False
    name = host_name(header)
    if name in LOOPBACK or name == bound_name(bound):
        return True
    return bound.strip("[]") in WILDCARDS and is_ip(name)


def same_site(origin: str | None, fetch_site: str | None, host: str) -> bool:
    """Whether a request comes from this server's own page: its ``Origin`` (if sent) is ``http://`` + the Host
    it asked for, and its ``Sec-Fetch-Site`` (if sent) is same-origin or none."""
    if fetch_site is not None and fetch_site.strip().lower() not in SAME_SITE:
        return False
    if origin is None:
        return True
    parts = urlsplit(origin.strip())
    return parts.scheme == "http" and parts.netloc.lower() == host.strip().lower()


def is_json(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` declares JSON (``application/json``, any parameters)."""
    return content_type is not None and content_type.split(";")[0].strip().lower() == "application/json"


def refusal(scope: Scope, headers: dict[str, list[str]], bound: str) -> tuple[int, str] | None:
    """(status, one line) for a request the server refuses, None for one it serves."""
    hosts = headers.get("host", [])
    if len(hosts) != 1 or not host_allowed(hosts[0], bound):
        shown = printable(hosts[0] if hosts else "", 80)
        return 400, (f"Host {shown!r} is not this server; open it as http://127.0.0.1 or http://localhost "
                     "(other names are refused against DNS rebinding)")  # fmt: skip
    if not scope["path"].startswith("/api/"):
        return None
    origins, sites = headers.get("origin", []), headers.get("sec-fetch-site", [])
    if len(origins) > 1 or len(sites) > 1 or not same_site(next(iter(origins), None), next(iter(sites), None),
                                                            hosts[0]):  # fmt: skip
        return 403, "the API answers this server's own page only; open the page from this server, not another site"
    if scope["method"] not in ("GET", "HEAD") and not is_json(next(iter(headers.get("content-type", [])), None)):
        return 415, "send the body as JSON with Content-Type: application/json"
    return None


class Guard:
    """The checks above in front of ``app``, and the security headers on every response."""

    def __init__(self, app: ASGIApp, bound: str) -> None:
        self.app, self.bound = app, bound

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[str, list[str]] = {}
        for key, value in scope["headers"]:
            headers.setdefault(key.decode("latin-1").lower(), []).append(value.decode("latin-1"))

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        refused = refusal(scope, headers, self.bound)
        if refused is None:
            await self.app(scope, receive, secured)
            return
        status, line = refused
        body = json.dumps({"error": line}).encode()
        await secured({"type": "http.response.start", "status": status,
                       "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                   (b"connection", b"close")]})  # fmt: skip
        await secured({"type": "http.response.body", "body": body})
