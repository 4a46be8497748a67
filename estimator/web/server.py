"""Serving the app with uvicorn, bounded: the socket is bound before anything is printed, a connection must
send its request's headers within :data:`HEADER_SECONDS` (uvicorn's h11 protocol has no such limit: a
thousand half-open connections would otherwise be held forever), an idle keep-alive connection is closed
after :data:`IDLE_SECONDS`, headers are capped at :data:`MAX_HEADER_BYTES`, and connections at
:data:`MAX_CONNECTIONS` (uvicorn answers 503 beyond)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from estimator.errors import EstimatorError

HEADER_SECONDS = 10.0  # from the connection (or the last response) to a complete request line and headers
IDLE_SECONDS = 5  # uvicorn's keep-alive: an idle connection between requests
MAX_HEADER_BYTES = 16_384  # h11's incomplete-event cap: a request line and headers
MAX_CONNECTIONS = 512  # open connections and requests in progress; beyond, 503


class HeaderTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers do not arrive in time."""

    header_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
        self.header_timer = self.loop.call_later(HEADER_SECONDS, self._header_timeout)

    def _header_timeout(self) -> None:
        self.header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()  # no complete request came: drop it without a word

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None
        super().connection_lost(exc)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost`` (the page stays on this machine)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening; one line if it cannot be (a busy port, a foreign
    address, a name that is not an address)."""
    address = host.strip("[]")
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    except ValueError:
        if address != "localhost":
            raise EstimatorError(
                f"--host {host!r} is not an IP address; give 127.0.0.1 (this machine), ::1, or 0.0.0.0 (every "
                "network, which exposes the page)"
            ) from None
        address, family = "127.0.0.1", socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio sets TCP_NODELAY only then
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise EstimatorError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port, or stop what holds it"
        ) from None
    sock.set_inheritable(True)
    return sock


def config_for(app: Any, host: str, port: int) -> Any:
    """uvicorn's configuration with the limits above."""
    import uvicorn

    return uvicorn.Config(
        app, host=host, port=port, log_level="warning", http=HeaderTimeoutH11, timeout_keep_alive=IDLE_SECONDS,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES, limit_concurrency=MAX_CONNECTIONS, server_header=False,
        proxy_headers=False, lifespan="on",
    )  # fmt: skip


def serve(sock: socket.socket, host: str, port: int) -> None:
    """Serve the app on the bound socket until interrupted."""
    import uvicorn

    from estimator.web.app import create_app

    uvicorn.Server(config_for(create_app(host), host, port)).run(sockets=[sock])
