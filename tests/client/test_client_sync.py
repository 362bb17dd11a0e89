"""The synchronous client on a real Hypercorn: the same calls, blocking, with streams as
plain iterators, options, errors, and cancellation from another thread."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from client_service import Item, SyncEcho, make_app, wait_stream_ended

from connectpy import Code, ConnectError
from connectpy.client import SyncClient, call_options
from connectpy.testing import RunningServer, serve_in_thread

CONFIGS = [("connect", "1.1"), ("connect", "2"), ("grpc", "2"), ("grpc-web", "1.1")]


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with serve_in_thread(make_app()) as running:
        yield running


@pytest.fixture(params=CONFIGS, ids="-".join)
def echo_client(request: pytest.FixtureRequest, server: RunningServer) -> SyncClient[SyncEcho]:
    protocol, version = request.param
    return SyncClient(SyncEcho, server.url, protocol=protocol, http_version=version)


def test_every_stream_type(echo_client: SyncClient[SyncEcho]) -> None:
    def values() -> Iterator[Item]:
        yield Item(value=1)
        time.sleep(0.01)  # a blocking iterator runs in a worker thread, not the loop
        yield Item(value=2)

    with echo_client as echo:
        with call_options(headers={"x-request": "sync"}) as call:
            assert echo.echo(Item(value=1, text="s")) == Item(value=1, text="s")
        assert call.header("x-echo") == "sync"
        assert [item.value for item in echo.count(Item(value=3))] == [0, 1, 2]
        assert echo.total(values()).value == 3
        assert [item.text for item in echo.chat([Item(text="a"), Item(text="b")])] == ["A", "B"]


def test_errors_and_timeouts(echo_client: SyncClient[SyncEcho]) -> None:
    with echo_client as echo:
        with pytest.raises(ConnectError) as caught:
            echo.echo(Item(text="fail"))
        assert caught.value.code is Code.FAILED_PRECONDITION
        started = time.monotonic()
        with call_options(timeout=0.2), pytest.raises(ConnectError) as caught:
            echo.echo(Item(text="sleep"))
        assert caught.value.code is Code.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 3


def test_cancel_from_another_thread(echo_client: SyncClient[SyncEcho]) -> None:
    with echo_client as echo, call_options() as call:
        threading.Timer(0.2, call.cancel).start()
        with pytest.raises(ConnectError) as caught:
            echo.echo(Item(text="sleep"))
    assert caught.value.code is Code.CANCELED


def test_closing_a_stream_ends_it_on_the_server(echo_client: SyncClient[SyncEcho]) -> None:
    request = Item(value=1000, text=f"slow-{uuid.uuid4().hex}")
    with echo_client as echo:
        stream = echo.count(request)
        assert next(stream).value == 0
        stream.close()  # type: ignore[attr-defined]
        assert wait_stream_ended(request.text)
        assert echo.echo(Item(text="next")).text == "next"
