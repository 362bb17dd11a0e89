"""A small service for the client tests: one method per stream type, plus errors, headers,
trailers, slow streams and a record of streams the server saw end (for cancellation)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import ClassVar, Protocol

import anyio
from google.protobuf import wrappers_pb2

from connectpy import ASGIApp, Code, ConnectError, Context, IdempotencyLevel, Message, rpc

PACKAGE = "clienttest.v1"


class Item(Message):
    value: int = 0
    text: str = ""


ended_streams: list[str] = []
"""Texts of the ``count`` streams whose handler has finished, however it finished."""
stream_ended = threading.Condition()


class EchoService:
    """The implementation the test server mounts."""

    @rpc(idempotency=IdempotencyLevel.NO_SIDE_EFFECTS)
    async def echo(self, request: Item, ctx: Context) -> Item:
        ctx.response_headers["x-echo"] = ctx.request_headers.get("x-request", "")
        ctx.response_trailers["x-trailer"] = "t"
        if request.text == "fail":
            raise ConnectError(
                Code.FAILED_PRECONDITION,
                "not now",
                details=[wrappers_pb2.StringValue(value="why")],
                metadata={"x-meta": "m"},
            )
        if request.text == "sleep":
            await anyio.sleep(10)
        if request.text == "timeout":
            return Item(value=ctx.timeout_ms or -1)
        if request.text == "method":
            return Item(text=ctx.http_method)
        return Item(value=request.value, text=request.text * max(1, request.value))

    async def count(self, request: Item, ctx: Context) -> AsyncIterator[Item]:
        ctx.response_headers["x-count"] = str(request.value)
        try:
            for n in range(request.value):
                if request.text.startswith("slow"):
                    await anyio.sleep(0.05)
                yield Item(value=n)
            if request.text == "fail":
                raise ConnectError(Code.RESOURCE_EXHAUSTED, "no more")
        finally:
            with stream_ended:
                ended_streams.append(request.text)
                stream_ended.notify_all()

    async def total(self, requests: AsyncIterator[Item]) -> Item:
        values = [item.value async for item in requests]
        return Item(value=sum(values), text=",".join(map(str, values)))

    async def chat(self, requests: AsyncIterator[Item]) -> AsyncIterator[Item]:
        async for item in requests:
            if item.text == "fail":
                raise ConnectError(Code.ABORTED, "chat failed")
            yield Item(value=item.value * 10, text=item.text.upper())


class Echo(Protocol):
    """What a client needs to know of the service: its signatures, no bodies."""

    __connectpy_package__: ClassVar[str] = PACKAGE
    __connectpy_name__: ClassVar[str] = "EchoService"

    @rpc(idempotency=IdempotencyLevel.NO_SIDE_EFFECTS)
    async def echo(self, request: Item) -> Item: ...

    def count(self, request: Item) -> AsyncIterator[Item]: ...

    async def total(self, requests: AsyncIterator[Item]) -> Item: ...

    def chat(self, requests: AsyncIterator[Item]) -> AsyncIterator[Item]: ...


def make_app() -> ASGIApp:
    app = ASGIApp(package=PACKAGE)
    app.mount(EchoService())
    return app


def wait_stream_ended(text: str, timeout: float = 2.0) -> bool:
    """Whether a ``count`` stream with ``text`` ended on the server within ``timeout``."""
    with stream_ended:
        return stream_ended.wait_for(lambda: text in ended_streams, timeout)


class SyncEcho(Protocol):
    """The same service described for the synchronous client: plain methods."""

    __connectpy_package__: ClassVar[str] = PACKAGE
    __connectpy_name__: ClassVar[str] = "EchoService"

    @rpc(idempotency=IdempotencyLevel.NO_SIDE_EFFECTS)
    def echo(self, request: Item) -> Item: ...

    def count(self, request: Item) -> Iterator[Item]: ...

    def total(self, requests: Iterable[Item]) -> Item: ...

    def chat(self, requests: Iterable[Item]) -> Iterator[Item]: ...
