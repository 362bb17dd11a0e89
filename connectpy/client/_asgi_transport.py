"""An in-memory transport: calls go straight to an ASGI app, no socket, full duplex.

For unit tests of a service through the same typed client used in production (as connect-es'
router transport and connect-go's in-memory server do). Each request runs the app as a task
with an HTTP/2 scope that offers the trailers extension, so gRPC works too.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio

from ..code import Code
from ._http import Headers, RequestHead, Spawn, Transport, TransportError

__all__ = ["asgi_transport"]

_log = logging.getLogger("connectpy.client")

Message = MutableMapping[str, Any]
ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


def asgi_transport(app: ASGIApp) -> Callable[[Spawn], Transport]:
    """A ``Client(..., transport=...)`` factory that calls ``app`` in memory.

    The URL given to the client still names the path prefix (``http://test/rpc``); its host
    only fills the ``host`` header.
    """

    def build(spawn: Spawn) -> Transport:
        return _AsgiTransport(app, spawn)

    return build


class _AsgiTransport:
    def __init__(self, app: ASGIApp, spawn: Spawn) -> None:
        self._app = app
        self._spawn = spawn
        self._open: set[_AsgiExchange] = set()

    async def open(self, head: RequestHead, body: bytes | None) -> _AsgiExchange:
        exchange = _AsgiExchange(self, head)
        self._open.add(exchange)
        self._spawn(exchange.run_app)
        if body is not None:
            await exchange.send(body)
            await exchange.end()
        return exchange

    async def aclose(self) -> None:
        for exchange in list(self._open):
            exchange.fail(TransportError("the client was closed"))


class _AsgiExchange:
    full_duplex = True

    def __init__(self, transport: _AsgiTransport, head: RequestHead) -> None:
        self._transport = transport
        path, _, query = head.target.partition("?")
        self._scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "2",
            "method": head.method,
            "scheme": head.scheme,
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", head.authority.encode()), *head.headers],
            "client": ("127.0.0.1", 0),
            "server": (head.host, head.port),
            "extensions": {"http.response.trailers": {}},
        }
        self._requests: deque[Message] = deque()
        self._changed = anyio.Event()
        self._status: int | None = None
        self._headers: Headers = []
        self._body: deque[bytes] = deque()
        self._wants_trailers = False
        self._trailers: Headers = []
        self._ended = False
        self._error: TransportError | None = None
        self._scope_of_app: anyio.CancelScope | None = None
        self._request_ended = False

    # The app's side.
    async def run_app(self) -> None:
        with anyio.CancelScope() as scope:
            self._scope_of_app = scope
            try:
                await self._transport._app(self._scope, self._receive, self._send)
            except Exception as exc:
                _log.exception("the ASGI app failed")
                self.fail(TransportError(f"the ASGI app raised {exc!r}", Code.INTERNAL))
        if not self._ended and self._error is None:
            self.fail(TransportError("the ASGI app returned without finishing its response"))
        self._transport._open.discard(self)

    async def _receive(self) -> Message:
        while not self._requests:
            if self._error is not None:
                return {"type": "http.disconnect"}
            await self._changed.wait()
        return self._requests.popleft()

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self._status = int(message["status"])
            self._headers = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", [])]
            self._wants_trailers = bool(message.get("trailers", False))
        elif kind == "http.response.body":
            body = bytes(message.get("body", b""))
            if body:
                self._body.append(body)
            if not message.get("more_body", False) and not self._wants_trailers:
                self._ended = True
        elif kind == "http.response.trailers":
            self._trailers += [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", [])]
            if not message.get("more_trailers", False):
                self._ended = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def fail(self, error: TransportError) -> None:
        if self._error is None:
            self._error = error
        if self._scope_of_app is not None:
            self._scope_of_app.cancel()
        self._wake()

    # The client's side.
    async def send(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        if not self._request_ended and not self._ended:
            self._requests.append({"type": "http.request", "body": data, "more_body": True})
            self._wake()

    async def end(self) -> None:
        if self._error is not None:
            raise self._error
        if not self._request_ended:
            self._request_ended = True
            self._requests.append({"type": "http.request", "body": b"", "more_body": False})
            self._wake()

    async def response(self) -> tuple[int, Headers]:
        while self._status is None:
            if self._error is not None:
                raise self._error
            await self._changed.wait()
        return self._status, self._headers

    async def receive(self) -> bytes:
        while not self._body:
            if self._error is not None:
                raise self._error
            if self._ended:
                return b""
            await self._changed.wait()
        return self._body.popleft()

    @property
    def trailers(self) -> Headers:
        return self._trailers

    def reset(self) -> None:
        if not self._ended or self._error is None:
            self.fail(TransportError("the call was abandoned"))
