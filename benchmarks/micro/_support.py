"""Shared pieces: the benchmark fixture's type, sample messages, and in-process ASGI calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, MutableMapping
from typing import Any, Protocol

__all__ = ["AsgiCall", "Benchmark", "drive", "in_running_loop"]


class Benchmark(Protocol):
    """The part of pytest-benchmark's ``benchmark`` fixture these files use."""

    group: str | None

    def __call__(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...


def drive(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends to completion, without an event loop's per-call
    overhead (a fake receive and send never wait, so neither does the app)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("the coroutine suspended: it waited on something real")


def in_running_loop(function: Callable[[], Any]) -> Any:
    """Call ``function`` from inside a running asyncio loop (anyio and sniffio look for one),
    so that :func:`drive` can run apps that enter cancel scopes."""

    async def main() -> Any:
        return function()

    return asyncio.run(main())


Message = MutableMapping[str, Any]


class AsgiCall:
    """One HTTP request for an ASGI app, replayed with a fake receive and send."""

    def __init__(
        self, path: str, headers: list[tuple[bytes, bytes]], body: bytes, http2: bool
    ) -> None:
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "2" if http2 else "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                (b"user-agent", b"h2load nghttp2/1.52.0"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            # Hypercorn offers trailers on HTTP/2 only.
            "extensions": {"http.response.trailers": {}} if http2 else {},
        }
        # The body as servers deliver it: whole in one message (uvicorn, pyvoy), or, over
        # HTTP/2 here (where gRPC runs: Hypercorn), followed by an empty message that ends it.
        self._requests: list[Message] = [
            {"type": "http.request", "body": body, "more_body": http2},
            *([{"type": "http.request", "body": b"", "more_body": False}] if http2 else []),
        ]
        self._received = 0
        self.status = 0
        self.body = b""
        self.trailers: list[tuple[bytes, bytes]] = []

    async def receive(self) -> Message:
        if self._received < len(self._requests):
            self._received += 1
            return self._requests[self._received - 1]
        # The body is read; a server's receive now waits until the client disconnects.
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable")

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            self.body = b""
        elif kind == "http.response.body":
            self.body += message.get("body", b"")
        elif kind == "http.response.trailers":
            self.trailers = list(message["headers"])

    def run(self, app: Callable[..., Coroutine[Any, Any, Any]]) -> None:
        """The call, driven without a loop (call it from :func:`in_running_loop`)."""
        self._received = 0
        drive(app(self.scope, self.receive, self.send))

    def run_on(
        self, loop: asyncio.AbstractEventLoop, app: Callable[..., Coroutine[Any, Any, Any]]
    ) -> None:
        """The call as a task on ``loop``: for apps that start tasks (streaming calls)."""
        self._received = 0
        loop.run_until_complete(app(self.scope, self.receive, self.send))
