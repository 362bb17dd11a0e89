"""Client interceptors, in memory (every protocol and stream type) and over a real Hypercorn:
the headers they add, the order they run in, what they observe, and the outcome at their
``yield`` however a call ends: an error, a refusal, an early exit, a cancellation, a deadline."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from client_service import (
    PACKAGE,
    Echo,
    EchoService,
    Item,
    SyncEcho,
    make_app,
    wait_stream_ended,
)

from connectpy import ASGIApp, Code, ConnectError, Context, StreamType
from connectpy.client import Client, ClientContext, SyncClient, asgi_transport
from connectpy.interceptors import ClientInterceptor, Observer
from connectpy.testing import serve_in_thread

pytestmark = pytest.mark.anyio

PROTOCOLS = ["connect", "grpc", "grpc-web"]


class Recorder:
    """An interceptor that writes down what it sees, under a name, into a shared log."""

    def __init__(self, name: str, log: list[Any]) -> None:
        self.name = name
        self.log = log
        self.contexts: list[ClientContext] = []

    def __call__(self, context: ClientContext) -> Iterator[Observer]:
        self.contexts.append(context)
        self.log.append((self.name, "before"))

        def sent(message: Any, size: int) -> None:
            self.log.append((self.name, "sent", message.value, size > 0))

        def received(message: Any, size: int) -> None:
            self.log.append((self.name, "received", message.value, size > 0))

        try:
            yield Observer(sent=sent, received=received)
        except ConnectError as error:
            self.log.append((self.name, "after", error.code))
            raise
        self.log.append((self.name, "after", None))


class AsyncRecorder(Recorder):
    """The same, as an async generator function (its outcome arrives through an event)."""

    def __init__(self, name: str, log: list[Any]) -> None:
        super().__init__(name, log)
        self.done = anyio.Event()

    async def __call__(self, context: ClientContext) -> AsyncIterator[None]:  # type: ignore[override]
        self.log.append((self.name, "before"))
        await anyio.lowlevel.checkpoint()
        try:
            yield
        except ConnectError as error:
            self.log.append((self.name, "after", error.code))
            raise
        finally:
            self.done.set()
        self.log.append((self.name, "after", None))


def client(protocol: str, *interceptors: ClientInterceptor) -> Client[Echo]:
    return Client(
        Echo,
        "http://test/",
        protocol=protocol,  # type: ignore[arg-type]
        transport=asgi_transport(make_app()),
        interceptors=interceptors,
    )


async def items(*values: int, text: str = "") -> AsyncIterator[Item]:
    for value in values:
        yield Item(value=value, text=text)


async def add_header(context: ClientContext) -> AsyncIterator[None]:
    context.request_headers["x-request"] = "from an interceptor"
    yield


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_interceptor_adds_request_headers_and_reads_the_response(protocol: str) -> None:
    seen: dict[str, Any] = {}

    def read_response(context: ClientContext) -> Iterator[None]:
        yield
        seen["header"] = context.response_headers.get("x-echo")
        seen["trailer"] = context.response_trailers.get("x-trailer")

    async with client(protocol, read_response, add_header) as echo:
        assert await echo.echo(Item(value=1, text="a")) == Item(value=1, text="a")
    assert seen == {"header": "from an interceptor", "trailer": "t"}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_context_describes_the_call(protocol: str) -> None:
    log: list[Any] = []
    recorder = Recorder("r", log)
    async with client(protocol, recorder) as echo:
        await echo.echo(Item(value=1))
        assert [i.value async for i in echo.count(Item(value=2))] == [0, 1]
    unary, stream = recorder.contexts
    assert unary.method.procedure == "/clienttest.v1.EchoService/Echo"
    assert unary.stream_type is StreamType.UNARY
    assert stream.stream_type is StreamType.SERVER_STREAM
    assert unary.protocol == protocol
    assert unary.url == "http://test:80/clienttest.v1.EchoService/Echo"
    assert unary.peer == ("test", 80)
    assert unary.deadline is None
    assert unary.time_remaining() is None
    content_type = unary.request_headers.get("content-type", "")
    assert content_type.startswith("application/")  # the protocol's headers are there too


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_every_stream_type_is_wrapped_in_order_with_each_message(protocol: str) -> None:
    log: list[Any] = []
    outer, inner = Recorder("outer", log), Recorder("inner", log)
    async with client(protocol, outer, inner) as echo:
        await echo.echo(Item(value=7))
        assert log == [
            ("outer", "before"),
            ("inner", "before"),
            ("outer", "sent", 7, True),
            ("inner", "sent", 7, True),
            ("outer", "received", 7, True),
            ("inner", "received", 7, True),
            ("inner", "after", None),
            ("outer", "after", None),
        ]
        log.clear()
        assert [i.value async for i in echo.count(Item(value=2))] == [0, 1]
        assert [entry for entry in log if entry[0] == "inner"] == [
            ("inner", "before"),
            ("inner", "sent", 2, True),
            ("inner", "received", 0, False),  # value 0 encodes to no bytes at all
            ("inner", "received", 1, True),
            ("inner", "after", None),
        ]
        log.clear()
        assert (await echo.total(items(1, 2))).value == 3
        assert [e[1:] for e in log if e[0] == "inner"] == [
            ("before",),
            ("sent", 1, True),
            ("sent", 2, True),
            ("received", 3, True),
            ("after", None),
        ]
        log.clear()
        assert [i.value async for i in echo.chat(items(1, 2))] == [10, 20]
        kinds = [e[1] for e in log if e[0] == "inner"]
        assert kinds.count("sent") == 2
        assert kinds.count("received") == 2
        assert kinds[0] == "before"
        assert log[-1] == ("outer", "after", None)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_yield_raises_the_calls_error_and_an_interceptor_may_replace_it(
    protocol: str,
) -> None:
    log: list[Any] = []

    def replace(context: ClientContext) -> Iterator[None]:
        try:
            yield
        except ConnectError as error:
            raise ConnectError(Code.UNAVAILABLE, f"replaced {error.code.value}") from error

    async with client(protocol, Recorder("outer", log), replace, Recorder("inner", log)) as echo:
        with pytest.raises(ConnectError) as caught:
            await echo.echo(Item(text="fail"))
        assert caught.value.code is Code.UNAVAILABLE
        assert caught.value.message == "replaced failed_precondition"
        assert log[-2:] == [
            ("inner", "after", Code.FAILED_PRECONDITION),
            ("outer", "after", Code.UNAVAILABLE),
        ]
        log.clear()
        with pytest.raises(ConnectError) as caught:
            _ = [i async for i in echo.count(Item(value=1, text="fail"))]
        assert caught.value.message == "replaced resource_exhausted"


async def test_a_refusal_fails_the_call_before_anything_is_sent() -> None:
    log: list[Any] = []
    served: list[str] = []

    def count_calls(context: Context) -> Iterator[None]:
        served.append(context.method.procedure)
        yield

    def refuse(context: ClientContext) -> Iterator[None]:
        raise ConnectError(Code.PERMISSION_DENIED, "not from here")
        yield  # pragma: no cover - makes this a generator function

    app = ASGIApp(package=PACKAGE, interceptors=[count_calls])
    app.mount(EchoService())
    transport = asgi_transport(app)
    async with Client(
        Echo, "http://test", transport=transport, interceptors=[Recorder("r", log), refuse]
    ) as echo:
        with pytest.raises(ConnectError) as caught:
            await echo.echo(Item(value=1))
    assert caught.value.code is Code.PERMISSION_DENIED
    assert log == [("r", "before"), ("r", "after", Code.PERMISSION_DENIED)]
    assert served == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_leaving_async_for_early_tells_sync_and_async_interceptors(protocol: str) -> None:
    log: list[Any] = []
    late = AsyncRecorder("async", log)
    async with client(protocol, Recorder("sync", log), late) as echo:
        stream = echo.count(Item(value=100, text=f"early-{protocol}"))
        async for item in stream:
            if item.value == 1:
                break
        del stream
        with anyio.fail_after(2):
            await late.done.wait()
    assert ("async", "after", Code.CANCELED) in log
    assert log[-1] == ("sync", "after", Code.CANCELED)
    assert await anyio.to_thread.run_sync(wait_stream_ended, f"early-{protocol}")


async def test_a_cancelled_call_tells_its_interceptors() -> None:
    log: list[Any] = []
    late = AsyncRecorder("async", log)
    async with client("connect", Recorder("sync", log), late) as echo:
        with anyio.move_on_after(0.2):
            await echo.echo(Item(text="sleep"))
    assert late.done.is_set()
    assert log[-2:] == [("async", "after", Code.CANCELED), ("sync", "after", Code.CANCELED)]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_deadline_reaches_the_context_and_the_yield(protocol: str) -> None:
    log: list[Any] = []
    recorder = Recorder("r", log)
    transport = asgi_transport(make_app())
    async with Client(
        Echo,
        "http://test",
        protocol=protocol,  # type: ignore[arg-type]
        transport=transport,
        timeout=0.2,
        interceptors=[recorder],
    ) as echo:
        with pytest.raises(ConnectError) as caught:
            await echo.echo(Item(text="sleep"))
    assert caught.value.code is Code.DEADLINE_EXCEEDED
    assert log[-1] == ("r", "after", Code.DEADLINE_EXCEEDED)
    (context,) = recorder.contexts
    assert context.timeout_ms == 200
    assert context.deadline is not None


def test_the_sync_client_takes_interceptors_too() -> None:
    log: list[Any] = []
    with (
        serve_in_thread(make_app()) as server,
        SyncClient(SyncEcho, server.url, interceptors=[Recorder("r", log), add_header]) as echo,
    ):
        assert echo.echo(Item(value=3)).value == 3
        assert [i.value for i in echo.count(Item(value=2))] == [0, 1]
    assert log.count(("r", "after", None)) == 2


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_over_a_real_server(protocol: str) -> None:
    log: list[Any] = []
    seen: list[str | None] = []

    def read_echo(context: ClientContext) -> Iterator[None]:
        yield
        seen.append(context.response_headers.get("x-echo"))

    with serve_in_thread(make_app()) as server:
        async with Client(
            Echo,
            server.url,
            protocol=protocol,  # type: ignore[arg-type]
            interceptors=[read_echo, add_header, Recorder("r", log)],
        ) as echo:
            await echo.echo(Item(value=1))
            assert [i.value async for i in echo.chat(items(1, 2))] == [10, 20]
    assert seen == ["from an interceptor", None]
    assert log.count(("r", "after", None)) == 2


def test_an_interceptor_must_be_a_generator_function() -> None:
    def not_a_generator(context: ClientContext) -> None:
        return None

    with pytest.raises(TypeError, match="generator function"):
        Client(Echo, "http://test", interceptors=[not_a_generator])  # type: ignore[list-item]
