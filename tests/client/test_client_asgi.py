"""The in-memory transport: the typed client calls an ASGI app with no socket, over every
protocol and stream type, full duplex included."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import anyio
import anyio.to_thread
import pytest
from client_service import Echo, Item, make_app, wait_stream_ended

from connectpy import Code, ConnectError
from connectpy.client import Client, asgi_transport, call_options

pytestmark = pytest.mark.anyio

PROTOCOLS = ["connect", "grpc", "grpc-web"]


@pytest.fixture(params=PROTOCOLS)
def echo_client(request: pytest.FixtureRequest) -> Client[Echo]:
    return Client(Echo, "http://test", protocol=request.param, transport=asgi_transport(make_app()))


async def test_unary(echo_client: Client[Echo]) -> None:
    async with echo_client as echo:
        with call_options(headers={"x-request": "in memory"}) as call:
            assert await echo.echo(Item(value=1, text="a")) == Item(value=1, text="a")
    assert call.header("x-echo") == "in memory"
    assert call.trailer("x-trailer") == "t"


async def test_server_and_client_streams(echo_client: Client[Echo]) -> None:
    async def values() -> AsyncIterator[Item]:
        for n in (4, 5):
            yield Item(value=n)

    async with echo_client as echo:
        assert [i.value async for i in echo.count(Item(value=3))] == [0, 1, 2]
        assert (await echo.total(values())).value == 9


async def test_bidi_is_full_duplex(echo_client: Client[Echo]) -> None:
    """Each request waits for the previous reply: only full duplex can get through."""
    replied = anyio.Event()
    replies: list[str] = []

    async def requests() -> AsyncIterator[Item]:
        nonlocal replied
        for text in ("a", "b", "c"):
            yield Item(text=text)
            await replied.wait()
            replied = anyio.Event()

    async with echo_client as echo:
        with anyio.fail_after(5):
            async for reply in echo.chat(requests()):
                replies.append(reply.text)
                replied.set()
    assert replies == ["A", "B", "C"]


async def test_errors(echo_client: Client[Echo]) -> None:
    async with echo_client as echo:
        with pytest.raises(ConnectError) as caught:
            await echo.echo(Item(text="fail"))
    assert caught.value.code is Code.FAILED_PRECONDITION
    assert caught.value.message == "not now"


async def test_leaving_a_stream_cancels_the_handler(echo_client: Client[Echo]) -> None:
    request = Item(value=1000, text=f"slow-{uuid.uuid4().hex}")
    async with echo_client as echo:
        async for _ in echo.count(request):
            break
        assert await anyio.to_thread.run_sync(wait_stream_ended, request.text)


async def test_a_request_of_the_wrong_type_is_not_sent(echo_client: Client[Echo]) -> None:
    async with echo_client as echo:
        with pytest.raises(ConnectError) as caught:
            await echo.echo("not an item")  # type: ignore[arg-type]
    assert caught.value.code is Code.INTERNAL
    assert caught.value.message.endswith("cannot send str as Item")


async def test_a_cancel_scope_whose_deadline_the_call_took_ends_it(
    echo_client: Client[Echo],
) -> None:
    # The call's deadline is the scope's (propagated): when both pass together, the caller
    # gets the scope's cancellation it asked for, not a deadline_exceeded escaping the scope.
    request = Item(value=1000, text=f"slow-{uuid.uuid4().hex}")
    async with echo_client as echo:
        with anyio.move_on_after(0.2) as scope:
            async for _ in echo.count(request):
                time.sleep(0.3)  # noqa: ASYNC251 - blocks the loop: both deadlines pass at once
        assert scope.cancelled_caught
