"""The seam between the RPC protocols and HTTP: one request/response exchange at a time.

A protocol never sees sockets or HTTP libraries: it opens an :class:`Exchange` on a
:class:`Transport`, writes the request body, reads the status, headers, body and trailers. The
network transport (HTTP/1.1 over h11, HTTP/2 over h2) and the in-memory ASGI transport are
implementations of the same two protocols.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from ..code import Code

__all__ = ["Exchange", "Headers", "RequestHead", "Spawn", "Transport", "TransportError"]

Headers = list[tuple[bytes, bytes]]

Spawn = Callable[[Callable[[], Coroutine[Any, Any, Any]]], object]
"""Starts a background task in the client's task group (``TaskGroup.start_soon``)."""


class TransportError(Exception):
    """The HTTP exchange failed below the RPC: no connection, a reset, a closed connection.

    ``code`` is what the call reports; ``unavailable`` unless the failure says otherwise
    (an HTTP/2 reset's code, an in-memory app that crashed).
    """

    def __init__(self, message: str, code: Code = Code.UNAVAILABLE) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class RequestHead:
    """What starts an HTTP request: method, origin, target (path and query) and headers."""

    method: str
    scheme: str
    host: str
    port: int
    target: str
    headers: Headers

    @property
    def authority(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


class Exchange(Protocol):
    """One HTTP request and its response, streamed both ways.

    ``full_duplex`` says whether the response can be read while the request body is still
    being sent (HTTP/2); over HTTP/1.1 the body must end first.
    """

    full_duplex: bool

    async def send(self, data: bytes) -> None:
        """Send a chunk of the request body."""
        ...

    async def end(self) -> None:
        """End the request body."""
        ...

    async def response(self) -> tuple[int, Headers]:
        """Wait for the response status and headers."""
        ...

    async def receive(self) -> bytes:
        """The next chunk of the response body; ``b""`` once it has ended."""
        ...

    @property
    def trailers(self) -> Headers:
        """The response trailers, once the body has ended (empty if none came)."""
        ...

    def reset(self) -> None:
        """Abandon the exchange (no await: cleanup code calls it while being cancelled)."""
        ...


class Transport(Protocol):
    """Opens exchanges; owns and pools whatever connections they need."""

    async def open(self, head: RequestHead, body: bytes | None) -> Exchange:
        """Start a request. ``body`` is the whole request body when known up front (it is sent
        with a content length), ``None`` for a body streamed with :meth:`Exchange.send`."""
        ...

    async def aclose(self) -> None: ...
