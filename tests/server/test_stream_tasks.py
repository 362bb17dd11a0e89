"""A finished streaming call returns at once on a real Hypercorn, asyncio and trio workers.

Its helper tasks (the disconnect watcher, the body pump, the writer) are not cancelled when
the call ends: they end when the server answers ``receive()`` with ``http.disconnect`` once
the response is complete, as ASGI servers do. A one-second deadline catches a server that
would not; these tests fail if Hypercorn ever needed it. They also fail if the last response
message's ``send`` does not return normally: trio's Hypercorn reports the disconnect while
that send is still in progress, which once made the watcher cancel it.
"""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import AsyncIterator, Iterator, MutableMapping
from contextlib import contextmanager
from functools import partial
from typing import Any

import anyio
import httpx
import hypercorn.trio
import pytest
import trio

from connectpy import ASGIApp, Message
from connectpy._server.hypercorn import bind_socket, hypercorn_config
from connectpy.testing import RunningServer, serve_in_thread


class Item(Message):
    value: int = 0


class Service:
    async def paused(self, request: Item) -> AsyncIterator[Item]:
        # Pauses between messages, so the disconnect watcher starts.
        for n in range(request.value):
            yield Item(value=n)
            await anyio.sleep(0.01)

    async def echo(self, requests: AsyncIterator[Item]) -> AsyncIterator[Item]:
        async for item in requests:
            yield item


class TimedApp:
    """Records, per call, how long the app ran on after its last response message."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.lingered: list[float] = []
        self.done = threading.Event()

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ended: list[float] = []

        async def timed_send(message: MutableMapping[str, Any]) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                ended.append(time.monotonic())

        await self.app(scope, receive, timed_send)
        if ended:
            self.lingered.append(time.monotonic() - ended[0])
        self.done.set()


rpc = ASGIApp(package="test.v1")
rpc.mount(Service())
timed = TimedApp(rpc)


@contextmanager
def serve_on_trio(app: TimedApp) -> Iterator[RunningServer]:
    """Hypercorn's trio worker (``connectpy serve --worker-class trio``) in a thread."""
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = hypercorn_config(sock=sock)
    sock.detach()
    stop = threading.Event()

    async def until_stopped() -> None:
        await trio.to_thread.run_sync(stop.wait)

    def run() -> None:
        serve = partial(hypercorn.trio.serve, app, config, shutdown_trigger=until_stopped)  # type: ignore[arg-type]
        trio.run(serve)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield RunningServer("127.0.0.1", port, False)
    finally:
        stop.set()
        thread.join(10)


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    serve = serve_in_thread if request.param == "asyncio" else serve_on_trio
    with serve(timed) as running:
        yield running


def envelope(value: int) -> bytes:
    data = json.dumps({"value": value}).encode()
    return struct.pack(">BI", 0, len(data)) + data


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "h2c"])
@pytest.mark.parametrize(
    ("path", "body"),
    [("/test.v1.Service/Paused", envelope(3)), ("/test.v1.Service/Echo", envelope(1) * 3)],
    ids=["server-stream", "bidi"],
)
def test_the_call_ends_with_its_response(
    server: RunningServer, http2: bool, path: str, body: bytes
) -> None:
    timed.done.clear()
    timed.lingered.clear()
    headers = {"content-type": "application/connect+json"}
    with httpx.Client(base_url=server.url, http1=not http2, http2=http2, timeout=10) as client:
        response = client.post(path, content=body, headers=headers)
        assert response.status_code == 200
        assert response.content.endswith(struct.pack(">BI", 2, 2) + b"{}")
        assert timed.done.wait(5)
    assert len(timed.lingered) == 1
    assert timed.lingered[0] < 0.5, "the call waited for the fallback deadline"
