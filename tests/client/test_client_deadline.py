"""Deadline propagation: a handler's client calls carry its remaining deadline by default."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Protocol

import pytest
from client_service import Echo, EchoService, Item

from connectpy import ASGIApp, Client, Context, call_options
from connectpy.testing import RunningServer, serve_in_thread

pytestmark = pytest.mark.anyio


class Relay:
    """Calls EchoService on the same server from inside a handler."""

    url = ""

    async def relay(self, request: Item, ctx: Context) -> Item:
        propagate = request.text != "no-propagation"
        async with Client(Echo, self.url, protocol="grpc", propagate_deadline=propagate) as echo:
            return await echo.echo(Item(text="timeout"))


class RelayClient(Protocol):
    __connectpy_package__: ClassVar[str] = "clienttest.v1"
    __connectpy_name__: ClassVar[str] = "Relay"

    async def relay(self, request: Item) -> Item: ...


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    app = ASGIApp(package="clienttest.v1")
    app.mount(EchoService())
    relay = Relay()
    app.mount(relay)
    with serve_in_thread(app) as running:
        relay.url = running.url
        yield running


async def test_a_handler_passes_its_remaining_deadline_on(server: RunningServer) -> None:
    async with Client(RelayClient, server.url) as relay:
        with call_options(timeout=3.0):
            inner = await relay.relay(Item())
            unbounded = await relay.relay(Item(text="no-propagation"))
    assert 0 < inner.value <= 3000  # the inner call's timeout_ms, as the inner server saw it
    assert unbounded.value == -1  # no timeout sent
