"""Cancellation and connection handling on a real Hypercorn: leaving a stream early, a
cancelled task, a closed client each end the call on the server too; TLS with ALPN."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import anyio
import anyio.to_thread
import pytest
from anyio.streams.tls import TLSAttribute
from client_service import Echo, Item, make_app, wait_stream_ended

from connectpy import Code, ConnectError
from connectpy.client import Client
from connectpy.server import TLSFiles
from connectpy.testing import RunningServer, serve_in_thread

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with serve_in_thread(make_app()) as running:
        yield running


PROTOCOLS = [("connect", "1.1"), ("connect", "2"), ("grpc", "2"), ("grpc-web", "1.1")]


def client(server: RunningServer, protocol: tuple[str, str]) -> Client[Echo]:
    return Client(
        Echo,
        server.url,
        protocol=protocol[0],  # type: ignore[arg-type]
        http_version=protocol[1],  # type: ignore[arg-type]
    )


def slow(tag: str) -> Item:
    """A stream of 1000 messages, 50 ms apart: it never ends by itself within a test."""
    return Item(value=1000, text=f"slow-{tag}-{uuid.uuid4().hex}")


async def ended(item: Item) -> bool:
    return await anyio.to_thread.run_sync(wait_stream_ended, item.text)


@pytest.mark.parametrize("protocol", PROTOCOLS, ids="-".join)
async def test_leaving_a_stream_early_ends_it_on_the_server(
    server: RunningServer, protocol: tuple[str, str]
) -> None:
    request = slow("break")
    async with client(server, protocol) as echo:
        got = []
        async for item in echo.count(request):
            got.append(item.value)
            if len(got) == 2:
                break  # the generator is dropped here: its finalizer abandons the call
        assert await ended(request)
        # The connection (or pool) stays usable for the next call.
        assert (await echo.echo(Item(text="again"))).text == "again"
    assert got == [0, 1]


@pytest.mark.parametrize("protocol", PROTOCOLS, ids="-".join)
async def test_a_cancelled_task_ends_the_call(
    server: RunningServer, protocol: tuple[str, str]
) -> None:
    async with client(server, protocol) as echo:
        request = slow("cancel")
        with anyio.move_on_after(0.3) as scope:
            async for _ in echo.count(request):
                pass
        assert scope.cancelled_caught
        assert await ended(request)
        with anyio.move_on_after(0.2) as scope:
            await echo.echo(Item(text="sleep"))
        assert scope.cancelled_caught
        assert (await echo.echo(Item(text="after"))).text == "after"


@pytest.mark.parametrize("protocol", PROTOCOLS, ids="-".join)
async def test_closing_the_client_cancels_calls_in_flight(
    server: RunningServer, protocol: tuple[str, str]
) -> None:
    outcome: list[BaseException] = []
    echo_client = client(server, protocol)

    async def call_in_flight(echo: Echo) -> None:
        try:
            await echo.echo(Item(text="sleep"))
        except ConnectError as exc:
            outcome.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group, echo_client as echo:
            group.start_soon(call_in_flight, echo)
            await anyio.sleep(0.2)
            # The client is closed: the call in flight fails, and so does a new one.
        with pytest.raises(ConnectError) as caught:
            await echo.echo(Item())
    assert caught.value.code is Code.CANCELED
    assert [getattr(e, "code", None) for e in outcome] == [Code.CANCELED]


async def test_stream_finalized_server_side_when_abandoned(server: RunningServer) -> None:
    """The server's handler ends (its finally runs) once the client leaves the stream."""
    async with Client(Echo, server.url, protocol="grpc") as echo:
        request = slow("aclose")
        stream = echo.count(request)
        assert (await anext(aiter(stream))).value == 0
        await stream.aclose()  # type: ignore[attr-defined]
        assert await ended(request)


@pytest.fixture(scope="module")
def tls_server(tls_files: TLSFiles) -> Iterator[RunningServer]:
    with serve_in_thread(make_app(), tls=tls_files) as running:
        yield running


@pytest.mark.parametrize(
    ("protocol", "version", "alpn"),
    [("grpc", None, "h2"), ("connect", None, "h2"), ("connect", "1.1", "http/1.1")],
)
async def test_tls_with_alpn(
    tls_server: RunningServer,
    tls_files: TLSFiles,
    protocol: Literal["connect", "grpc"],
    version: Literal["1.1", "2"] | None,
    alpn: str,
) -> None:
    context = ssl.create_default_context(cafile=tls_files.certfile)
    url = tls_server.url.replace("127.0.0.1", "localhost")
    echo_client = Client(Echo, url, protocol=protocol, http_version=version, ssl_context=context)
    async with echo_client as echo:
        assert (await echo.echo(Item(text="tls"))).text == "tls"
        replies = [item async for item in echo.chat(_two())]
        assert [r.text for r in replies] == ["A", "B"]
        pool: Any = echo_client._transport
        connections = list(pool._all)
        assert len(connections) == 1
        assert connections[0]._stream.extra(TLSAttribute.alpn_protocol) == alpn


async def _two() -> AsyncIterator[Item]:
    yield Item(text="a")
    yield Item(text="b")


async def test_untrusted_certificate_is_unavailable(tls_server: RunningServer) -> None:
    async with Client(Echo, tls_server.url, protocol="grpc") as echo:
        with pytest.raises(ConnectError) as caught:
            await echo.echo(Item())
    assert caught.value.code is Code.UNAVAILABLE
