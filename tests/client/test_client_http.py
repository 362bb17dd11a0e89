"""The client against a real Hypercorn on 127.0.0.1:0: every protocol, codec, HTTP version
and stream type, with headers, trailers, errors, deadlines, compression and limits."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import anyio
import pytest
from client_service import Echo, Item, make_app

from connectpy import Code, ConnectError
from connectpy.client import Client, call_options
from connectpy.testing import RunningServer, serve_in_thread

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with serve_in_thread(make_app()) as running:
        yield running


CONFIGS = [
    ("connect", "1.1", "proto"),
    ("connect", "1.1", "json"),
    ("connect", "2", "proto"),
    ("connect", "2", "json"),
    ("grpc", "2", "proto"),
    ("grpc", "2", "json"),
    ("grpc-web", "1.1", "proto"),
    ("grpc-web", "1.1", "json"),
    ("grpc-web", "2", "proto"),
    ("grpc-web", "2", "json"),
]


@pytest.fixture(params=CONFIGS, ids=["-".join(c) for c in CONFIGS])
def config(request: pytest.FixtureRequest) -> tuple[str, str, str]:
    value: tuple[str, str, str] = request.param
    return value


def client(server: RunningServer, config: tuple[str, str, str], **options: Any) -> Client[Echo]:
    protocol, version, codec = config
    return Client(
        Echo,
        server.url,
        protocol=protocol,  # type: ignore[arg-type]
        http_version=version,  # type: ignore[arg-type]
        codec=codec,  # type: ignore[arg-type]
        **options,
    )


async def items(*values: int, text: str = "") -> AsyncIterator[Item]:
    for value in values:
        yield Item(value=value, text=text)


async def test_unary(server: RunningServer, config: tuple[str, str, str]) -> None:
    async with client(server, config) as echo:
        with call_options(headers={"x-request": "hi"}) as call:
            reply = await echo.echo(Item(value=2, text="ab"))
    assert reply == Item(value=2, text="abab")
    assert call.header("x-echo") == "hi"
    assert call.trailer("x-trailer") == "t"


async def test_server_stream(server: RunningServer, config: tuple[str, str, str]) -> None:
    async with client(server, config) as echo:
        with call_options() as call:
            values = [item.value async for item in echo.count(Item(value=3))]
    assert values == [0, 1, 2]
    assert call.header("x-count") == "3"


async def test_client_stream(server: RunningServer, config: tuple[str, str, str]) -> None:
    async with client(server, config) as echo:
        reply = await echo.total(items(1, 2, 3))
    assert reply == Item(value=6, text="1,2,3")


async def test_bidi_stream(server: RunningServer, config: tuple[str, str, str]) -> None:
    async with client(server, config) as echo:
        replies = [item async for item in echo.chat(items(1, 2, text="x"))]
    assert replies == [Item(value=10, text="X"), Item(value=20, text="X")]


async def test_unary_error(server: RunningServer, config: tuple[str, str, str]) -> None:
    async with client(server, config) as echo:
        with call_options() as call, pytest.raises(ConnectError) as caught:
            await echo.echo(Item(text="fail"))
    error = caught.value
    assert error.code is Code.FAILED_PRECONDITION
    assert error.message == "not now"
    assert [d.type_name for d in error.details] == ["google.protobuf.StringValue"]
    assert ("x-meta", "m") in error.metadata
    assert call.trailer("x-trailer") == "t"


async def test_error_after_messages(server: RunningServer, config: tuple[str, str, str]) -> None:
    got: list[int] = []

    async def read_all(echo: Echo) -> None:
        async for item in echo.count(Item(value=2, text="fail")):
            got.append(item.value)

    async with client(server, config) as echo:
        with pytest.raises(ConnectError) as caught:
            await read_all(echo)
    assert got == [0, 1]
    assert caught.value.code is Code.RESOURCE_EXHAUSTED


async def test_timeout_is_sent_and_enforced(
    server: RunningServer, config: tuple[str, str, str]
) -> None:
    async with client(server, config) as echo:
        with call_options(timeout=5):
            reply = await echo.echo(Item(text="timeout"))
        assert 4000 < reply.value <= 5000
        with call_options(timeout=0.2), anyio.fail_after(3), pytest.raises(ConnectError) as caught:
            await echo.echo(Item(text="sleep"))
    assert caught.value.code is Code.DEADLINE_EXCEEDED


@pytest.mark.parametrize("compression", ["gzip", "br", "zstd"])
async def test_compression(
    server: RunningServer, config: tuple[str, str, str], compression: str
) -> None:
    big = Item(value=3, text="z" * 2000)
    async with client(server, config, send_compression=compression) as echo:
        reply = await echo.echo(big)
        values = [item.value async for item in echo.count(Item(value=2))]
    assert reply.text == "z" * 6000
    assert values == [0, 1]


async def test_receive_limit(server: RunningServer, config: tuple[str, str, str]) -> None:
    async with client(server, config, read_max_bytes=100, accept_compression=["identity"]) as echo:
        with pytest.raises(ConnectError) as caught:
            await echo.echo(Item(value=1, text="y" * 500))
        assert caught.value.code is Code.RESOURCE_EXHAUSTED
        assert (await echo.echo(Item(value=1, text="ok"))).text == "ok"


async def test_send_limit(server: RunningServer, config: tuple[str, str, str]) -> None:
    async with client(server, config, send_max_bytes=100) as echo:
        with pytest.raises(ConnectError) as caught:
            await echo.echo(Item(text="y" * 500))
    assert caught.value.code is Code.RESOURCE_EXHAUSTED


async def test_connect_get(server: RunningServer) -> None:
    async with Client(Echo, server.url, use_get=True) as echo:
        assert (await echo.echo(Item(text="method"))).text == "GET"
    async with Client(Echo, server.url) as echo:
        assert (await echo.echo(Item(text="method"))).text == "POST"


@pytest.mark.parametrize("protocol", ["connect", "grpc", "grpc-web"])
async def test_no_server_is_unavailable(protocol: Literal["connect", "grpc", "grpc-web"]) -> None:
    with anyio.fail_after(5):
        async with Client(Echo, "http://127.0.0.1:1", protocol=protocol) as echo:
            with pytest.raises(ConnectError) as caught:
                await echo.echo(Item())
    assert caught.value.code is Code.UNAVAILABLE


async def test_unknown_path_is_unimplemented(server: RunningServer) -> None:
    for protocol in ("connect", "grpc", "grpc-web"):
        async with Client(Echo, server.url + "/nowhere", protocol=protocol) as echo:
            with pytest.raises(ConnectError) as caught:
                await echo.echo(Item())
        assert caught.value.code is Code.UNIMPLEMENTED, protocol


async def test_calls_share_one_http2_connection(server: RunningServer) -> None:
    async with Client(Echo, server.url, protocol="grpc") as echo:
        async with anyio.create_task_group() as group:
            for n in range(20):
                group.start_soon(echo.echo, Item(value=n))
        pool: Any = echo._client._transport  # type: ignore[attr-defined]
        assert sum(len(c) for c in pool._h2.values()) == 1


async def test_a_pooled_connection_the_server_closed_is_not_reused() -> None:
    """A keep-alive server that closes idle connections (Hypercorn does after 5 s): the next
    call must open a new connection, not fail on the dead one."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    answered = 0

    def serve() -> None:
        nonlocal answered
        for _ in range(2):
            conn, _ = listener.accept()
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/proto\r\ncontent-length: 0\r\n\r\n"
            )
            answered += 1
            time.sleep(0.05)
            conn.close()  # idle: the server closes it

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        async with Client(Echo, f"http://127.0.0.1:{port}") as echo:
            assert await echo.echo(Item()) == Item()
            await anyio.sleep(0.3)
            with anyio.fail_after(5):
                assert await echo.echo(Item()) == Item()
    finally:
        listener.close()
    assert answered == 2
