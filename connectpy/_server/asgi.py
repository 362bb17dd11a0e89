"""Thin ASGI plumbing: types, the request view, bounded body reading, plain responses."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
from starlette.datastructures import Headers, QueryParams

from ..code import Code
from ..errors import ConnectError
from .hypercorn import late_data

__all__ = [
    "ASGIApp",
    "BodyPump",
    "Disconnected",
    "HttpRequest",
    "Receive",
    "Scope",
    "Send",
    "drain_body",
    "open_body_grace",
    "read_body",
    "send_plain",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Past the limit we keep reading (and dropping) this much more, so an HTTP/1.1 client that is
# still sending sees our error instead of a reset; beyond it we stop and let the server cope.
_DRAIN_LIMIT = 16 * 1024 * 1024


# How long an answer that is ready waits for the rest of a request body whose client may hold
# its side open (full duplex, or a probe awaiting our answer): see open_body_grace.
_OPEN_BODY_GRACE_SECONDS = 0.5


def open_body_grace(scope: Scope) -> float:
    """Seconds to let a streaming client's body arrive before an answer ends its call.

    Unpatched Hypercorn drops a whole HTTP/2 connection when data arrives for a stream it has
    answered (see ``hypercorn.late_data``), and on HTTP/1.1 an unread body can reset the
    connection. With the patch in place, HTTP/2 takes late data in its stride: answer at once.
    """
    if scope.get("http_version") == "2" and late_data.is_applied():
        return 0.0
    return _OPEN_BODY_GRACE_SECONDS


class Disconnected(Exception):
    """The client went away before the call finished."""


class HttpRequest:
    """The parts of an ASGI HTTP request every protocol looks at, read once.

    Protocol code looks headers up with :meth:`header`, answered from a dict of the raw
    headers built here once: starlette's ``Headers.get`` scans and decodes every header per
    lookup, and a call makes five to seven. ``headers`` (starlette's, for handlers) and
    ``query_params`` are built only when asked for: most calls never need them.
    """

    __slots__ = (
        "_headers",
        "_index",
        "_query",
        "content_type",
        "method",
        "receive",
        "scope",
        "send",
    )

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.method: str = scope["method"]
        raw = scope["headers"]
        if not isinstance(raw, list):  # ASGI allows any iterable; it is read more than once
            raw = scope["headers"] = list(raw)
        # Reversed, so the first of repeated headers wins, as with starlette's Headers.get.
        self._index: dict[bytes, bytes] = dict(reversed(raw))
        self._headers: Headers | None = None
        self._query: QueryParams | None = None
        raw_type = self._index.get(b"content-type", b"")
        content_type = _CONTENT_TYPES.get(raw_type)
        if content_type is None:
            content_type = raw_type.decode("latin-1").split(";", 1)[0].strip().lower()
            if len(_CONTENT_TYPES) < _CONTENT_TYPES_MAX:
                _CONTENT_TYPES[raw_type] = content_type
        self.content_type = content_type

    def header(self, name: bytes) -> str | None:
        """The first value of the header ``name`` (lower case), or None."""
        value = self._index.get(name)
        return None if value is None else value.decode("latin-1")

    def header_values(self, name: bytes) -> list[str]:
        """Every value of the header ``name`` (lower case), in order."""
        return [v.decode("latin-1") for k, v in self.scope["headers"] if k == name]

    @property
    def headers(self) -> Headers:
        """The request headers as starlette's case-insensitive, multi-valued mapping."""
        if self._headers is None:
            self._headers = Headers(scope=self.scope)
        return self._headers

    @property
    def query_params(self) -> QueryParams:
        """The parsed query string (empty for most calls: only Connect GET and REST use it)."""
        if self._query is None:
            query = self.scope.get("query_string", b"")
            self._query = QueryParams(query) if query else _NO_QUERY
        return self._query

    @property
    def has_trailers(self) -> bool:
        """Whether the server can send HTTP trailers on this response (HTTP/2 on Hypercorn)."""
        return "http.response.trailers" in (self.scope.get("extensions") or {})


_NO_QUERY = QueryParams()  # immutable, so one instance serves every request without a query

# Content types seen, raw to normalised: a service sees a handful, and normalising one costs
# four string operations a request. Bounded, as clients choose what they send.
_CONTENT_TYPES: dict[bytes, str] = {}
_CONTENT_TYPES_MAX = 64


async def read_body(receive: Receive, max_bytes: int) -> bytes:
    """The whole request body; ``resource_exhausted`` past ``max_bytes``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        body: bytes = message.get("body", b"")
        size += len(body)
        more = message.get("more_body", False)
        if size > max_bytes:
            if more:
                await drain_body(receive, _DRAIN_LIMIT)
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED, f"request body is larger than the {max_bytes}-byte limit"
            )
        if body:  # Hypercorn and Granian end every body with an empty message
            chunks.append(body)
        if not more:
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def drain_body(receive: Receive, limit: int = _DRAIN_LIMIT) -> None:
    """Read and drop the rest of the request body (up to ``limit`` bytes)."""
    dropped = 0
    while dropped <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        dropped += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def send_plain(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> None:
    """A complete response in two ASGI messages, with ``content-length`` (appended to
    ``headers``): HTTP/1.1 servers then send the body as is, not chunked."""
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyPump:
    """Reads the request body in its own task, ahead of the handler (calls whose client
    streams; a server stream reads its one message first, then only watches for a disconnect).

    Two reasons: Hypercorn's per-stream queue is small, and a handler that stops reading
    would stall every stream on its HTTP/2 connection; and a streaming response must notice
    a client disconnect even while the handler only sends. The pump buffers up to
    ``max_buffered`` bytes that the handler has not read yet, then gives up with
    ``resource_exhausted`` rather than grow without bound.
    """

    def __init__(self, receive: Receive, max_buffered: int) -> None:
        self._receive = receive
        self._max_buffered = max_buffered
        self._buffered = 0
        self._send_stream, self._receive_stream = anyio.create_memory_object_stream[Message](
            math.inf
        )
        self.disconnected = False
        self.overflowed = False
        self.body_complete = anyio.Event()
        self.call_over = False
        """Set once the call is sending its status: a disconnect then cancels nothing."""

    async def run(self, on_disconnect: anyio.CancelScope) -> None:
        """Pump until the client disconnects, then cancel ``on_disconnect``."""
        while True:
            message = await self._receive()
            if message["type"] != "http.request":
                self.disconnected = True
                self.body_complete.set()
                if not self.call_over:
                    on_disconnect.cancel()
                return
            self._buffered += len(message.get("body", b""))
            if self._buffered > self._max_buffered:
                self.overflowed = True
                message = {"type": "http.request", "body": b"", "more_body": False}
            self._send_stream.send_nowait(message)
            if not message.get("more_body", False):
                break
        self.body_complete.set()
        # Body complete: keep listening, only for the disconnect.
        while (await self._receive())["type"] == "http.request":
            pass
        self.disconnected = True
        if not self.call_over:
            on_disconnect.cancel()

    def close(self) -> None:
        """Release the buffer (the call is over)."""
        self._send_stream.close()
        self._receive_stream.close()

    async def receive(self) -> Message:
        """The ASGI ``receive`` the call reads instead of the server's."""
        message = await self._receive_stream.receive()
        self._buffered -= len(message.get("body", b""))
        if self.overflowed and not message.get("more_body", False):
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED, "request stream buffered past its limit unread"
            )
        return message
