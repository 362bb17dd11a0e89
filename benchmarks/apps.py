"""The two rows that need only the repo's own dependencies: the raw-ASGI floor and connectpy.

The floor reads the whole request body and answers with bytes encoded once at import: it is
what an ASGI server costs with no framework at all, for each case's wire format (a unary body,
enveloped stream messages, or a gRPC frame plus trailers).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from connectpy import ASGIApp, Code, ConnectError, Message
from connectpy.interceptors import Interceptor

from .common import BOOK, BOOKS, PACKAGE, STREAM_COUNT, book_proto, envelope

__all__ = [
    "Book",
    "BookService",
    "GetBookRequest",
    "ListBooksRequest",
    "connectpy_app",
    "raw_app",
    "read_request",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


# --- connectpy -------------------------------------------------------------------------


class GetBookRequest(Message):
    id: str


class Book(Message):
    id: str
    title: str
    author: str
    price: float


class ListBooksRequest(Message):
    count: int


_STREAMED = Book.model_validate(BOOK)


class BookService:
    """The seed's BookService: GetBook looks the book up and builds a response; ListBooks
    streams ``count`` copies of one prebuilt book (so streaming measures the framework)."""

    async def get_book(self, request: GetBookRequest) -> Book:
        data = BOOKS.get(request.id)
        if data is None:
            raise ConnectError(Code.NOT_FOUND, f"book {request.id} not found")
        return Book.model_validate(data)

    async def list_books(self, request: ListBooksRequest) -> AsyncIterator[Book]:
        for _ in range(request.count):
            yield _STREAMED


def connectpy_app(interceptors: Sequence[Interceptor] = ()) -> ASGIApp:
    app = ASGIApp(package=PACKAGE, interceptors=interceptors)
    app.mount(BookService())
    return app


# --- the raw floor -----------------------------------------------------------------------

_JSON = json.dumps(BOOK, separators=(",", ":")).encode()
_PROTO = book_proto()


def _unary(content_type: bytes, body: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    return headers, body


_UNARY = {
    b"application/json": _unary(b"application/json", _JSON),
    b"application/proto": _unary(b"application/proto", _PROTO),
}
_STREAM_HEADERS = [(b"content-type", b"application/connect+proto")]
_STREAM_FRAME = envelope(_PROTO)
_STREAM_END = envelope(b"{}", 0x02)
_GRPC_HEADERS = [(b"content-type", b"application/grpc")]
_GRPC_FRAME = envelope(_PROTO)
_GRPC_TRAILERS = [(b"grpc-status", b"0")]


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Read the body, answer with fixed bytes chosen by content type."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    content_type = await read_request(scope, receive)
    if content_type is None:
        return
    unary = _UNARY.get(content_type)
    if unary is not None:
        await send({"type": "http.response.start", "status": 200, "headers": unary[0]})
        await send({"type": "http.response.body", "body": unary[1]})
    elif content_type == b"application/connect+proto":
        await send({"type": "http.response.start", "status": 200, "headers": _STREAM_HEADERS})
        for _ in range(STREAM_COUNT):
            await send({"type": "http.response.body", "body": _STREAM_FRAME, "more_body": True})
        await send({"type": "http.response.body", "body": _STREAM_END})
    elif content_type.startswith(b"application/grpc"):
        if "http.response.trailers" not in (scope.get("extensions") or {}):
            await send({"type": "http.response.start", "status": 505, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        start = {"type": "http.response.start", "status": 200, "headers": _GRPC_HEADERS}
        await send({**start, "trailers": True})
        await send({"type": "http.response.body", "body": _GRPC_FRAME})
        await send({"type": "http.response.trailers", "headers": _GRPC_TRAILERS})
    else:
        await send({"type": "http.response.start", "status": 415, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def read_request(scope: Scope, receive: Receive) -> bytes | None:
    """Read the whole body and return the content type, or None if the client went away:
    all the floor apps do with a request."""
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None
        more = message.get("more_body", False)
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bytes(value)
    return b""


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
