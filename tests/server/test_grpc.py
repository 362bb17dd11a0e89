"""gRPC over a real Hypercorn (h2c), called by a stock grpcio client.

Stubs are hand-written multicallables over protobuf well-known types, so no generated code is
needed. ``test_grpc_h2.py`` checks the same protocol frame by frame.
"""

from __future__ import annotations

import base64
import queue
import struct
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.to_thread
import grpc
import httpx
import pytest
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    empty_pb2,
    message_factory,
    wrappers_pb2,
)
from google.protobuf.message import Message as ProtoMessage
from google.rpc import status_pb2

from connectpy import ASGIApp, Code, ConnectError, Context
from connectpy.testing import RunningServer, serve_in_thread

pytestmark = pytest.mark.timeout(90)

UNICODE_MESSAGE = "\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\n"
CALL_TIMEOUT = 10.0

StringValue = wrappers_pb2.StringValue
Int64Value = wrappers_pb2.Int64Value


Status = status_pb2.Status
"""From googleapis-common-protos (a dev dependency), not from connectpy."""


class Probe:
    """What the server saw, for assertions made from the client thread."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.stream_closed = threading.Event()
        self.metadata_seen = threading.Event()
        self.clients: set[object] = set()


probe = Probe()


class EchoService:
    async def say(self, request: StringValue, ctx: Context) -> StringValue:
        ctx.response_headers["x-header"] = "h"
        ctx.response_headers["x-raw-bin"] = base64.b64encode(b"\x00\xff\x01").decode()
        ctx.response_trailers["x-trailer"] = "t"
        if request.value == "fail":
            raise ConnectError(
                Code.FAILED_PRECONDITION,
                UNICODE_MESSAGE,
                details=[StringValue(value="first"), Int64Value(value=2)],
                metadata={"x-error": "e"},
            )
        if request.value == "crash":
            raise RuntimeError("a bug with a secret in it")
        return StringValue(value=f"{ctx.protocol}: {request.value}")

    async def ping(self, request: empty_pb2.Empty, ctx: Context) -> StringValue:
        probe.clients.add(ctx.scope["client"])  # type: ignore[index]
        return StringValue(value="pong")

    async def header(self, request: StringValue, ctx: Context) -> StringValue:
        """The raw value of the request header named in the request, and the timeout."""
        value = ctx.request_headers.get(request.value, "")
        return StringValue(value=f"{value}|{ctx.timeout_ms}")

    async def slow(self, request: Int64Value) -> Int64Value:
        try:
            await anyio.sleep(request.value / 1000)
        except anyio.get_cancelled_exc_class():
            probe.cancelled.set()
            raise
        return request

    async def count(self, request: Int64Value, ctx: Context) -> AsyncIterator[Int64Value]:
        ctx.response_trailers["x-count"] = str(request.value)
        for n in range(abs(request.value)):
            yield Int64Value(value=n)
        if request.value < 0:
            raise ConnectError(Code.ABORTED, "stopped", metadata={"x-why": "negative"})

    async def forever(self, request: Int64Value) -> AsyncIterator[Int64Value]:
        try:
            n = 0
            while True:
                yield Int64Value(value=n)
                n += 1
                await anyio.sleep(0.05)
        finally:
            probe.stream_closed.set()

    async def early(self, request: Int64Value, ctx: Context) -> AsyncIterator[Int64Value]:
        ctx.response_headers["x-early"] = "yes"
        await ctx.send_headers()
        # The first message waits until the client has read the initial metadata.
        if not await anyio.to_thread.run_sync(probe.metadata_seen.wait, 5):
            raise ConnectError(Code.FAILED_PRECONDITION, "the client never saw the headers")
        yield Int64Value(value=request.value)

    async def sum(self, requests: AsyncIterator[Int64Value]) -> Int64Value:
        total = 0
        async for request in requests:
            total += request.value
        return Int64Value(value=total)

    async def echo(self, requests: AsyncIterator[StringValue]) -> AsyncIterator[StringValue]:
        async for request in requests:
            yield StringValue(value=request.value.upper())


def make_app(read_max_bytes: int = 4 * 1024 * 1024) -> ASGIApp:
    app = ASGIApp(read_max_bytes=read_max_bytes)
    app.mount(EchoService(), package="test.v1")
    return app


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with serve_in_thread(make_app(read_max_bytes=64 * 1024)) as running:
        yield running


@pytest.fixture(scope="module")
def channel(server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.target, options=[("grpc.enable_http_proxy", 0)]) as ch:
        yield ch


def _path(method: str) -> str:
    return f"/test.v1.EchoService/{method}"


def unary(ch: grpc.Channel, method: str, request: type[ProtoMessage] = StringValue) -> Any:
    return ch.unary_unary(
        _path(method),
        request_serializer=request.SerializeToString,
        response_deserializer=StringValue.FromString if method != "Slow" else Int64Value.FromString,
    )


def server_stream(ch: grpc.Channel) -> Any:
    return ch.unary_stream(
        _path("Count"),
        request_serializer=Int64Value.SerializeToString,
        response_deserializer=Int64Value.FromString,
    )


# --- the four stream types ---------------------------------------------------------------------


def test_unary_with_headers_and_trailers(channel: grpc.Channel) -> None:
    response, call = unary(channel, "Say").with_call(
        StringValue(value="hello"), timeout=CALL_TIMEOUT
    )
    assert response.value == "grpc: hello"
    headers = dict(call.initial_metadata())
    assert headers["x-header"] == "h"
    assert headers["x-raw-bin"] == b"\x00\xff\x01"  # grpcio decodes -bin metadata
    assert dict(call.trailing_metadata()) == {"x-trailer": "t"}
    assert call.code() is grpc.StatusCode.OK


def test_server_stream(channel: grpc.Channel) -> None:
    call = server_stream(channel)(Int64Value(value=5), timeout=CALL_TIMEOUT)
    assert [m.value for m in call] == [0, 1, 2, 3, 4]
    assert dict(call.trailing_metadata()) == {"x-count": "5"}


def test_server_stream_without_messages(channel: grpc.Channel) -> None:
    call = server_stream(channel)(Int64Value(value=0), timeout=CALL_TIMEOUT)
    assert list(call) == []
    assert call.code() is grpc.StatusCode.OK


def test_initial_metadata_before_the_first_message(channel: grpc.Channel) -> None:
    probe.metadata_seen.clear()
    early = channel.unary_stream(
        _path("Early"),
        request_serializer=Int64Value.SerializeToString,
        response_deserializer=Int64Value.FromString,
    )
    call = early(Int64Value(value=7), timeout=CALL_TIMEOUT)
    assert dict(call.initial_metadata())["x-early"] == "yes"  # no message has been sent yet
    probe.metadata_seen.set()
    assert [m.value for m in call] == [7]
    assert call.code() is grpc.StatusCode.OK


def test_client_cancel_stops_a_server_stream(channel: grpc.Channel) -> None:
    probe.stream_closed.clear()
    forever = channel.unary_stream(
        _path("Forever"),
        request_serializer=Int64Value.SerializeToString,
        response_deserializer=Int64Value.FromString,
    )
    call = forever(Int64Value(), timeout=CALL_TIMEOUT)
    assert next(call).value == 0
    call.cancel()
    assert probe.stream_closed.wait(5), "the handler kept running after the client cancelled"


def test_server_stream_error_after_messages(channel: grpc.Channel) -> None:
    call = server_stream(channel)(Int64Value(value=-3), timeout=CALL_TIMEOUT)
    received: list[int] = []

    def read_all() -> None:
        received.extend(message.value for message in call)

    with pytest.raises(grpc.RpcError) as caught:
        read_all()
    assert received == [0, 1, 2]
    assert caught.value.code() is grpc.StatusCode.ABORTED
    assert caught.value.details() == "stopped"
    assert dict(caught.value.trailing_metadata()) == {"x-count": "-3", "x-why": "negative"}


def test_client_stream(channel: grpc.Channel) -> None:
    summer = channel.stream_unary(
        _path("Sum"),
        request_serializer=Int64Value.SerializeToString,
        response_deserializer=Int64Value.FromString,
    )
    requests = (Int64Value(value=n) for n in range(100))
    assert summer(requests, timeout=CALL_TIMEOUT).value == sum(range(100))
    assert summer(iter([]), timeout=CALL_TIMEOUT).value == 0


def test_bidi_stream_is_full_duplex(channel: grpc.Channel) -> None:
    # Each request is sent only after the previous response arrived: a server that waited for
    # the whole request stream would deadlock here and hit the deadline.
    echo = channel.stream_stream(
        _path("Echo"),
        request_serializer=StringValue.SerializeToString,
        response_deserializer=StringValue.FromString,
    )
    outbox: queue.Queue[StringValue | None] = queue.Queue()

    def requests() -> Iterator[StringValue]:
        while (item := outbox.get(timeout=CALL_TIMEOUT)) is not None:
            yield item

    outbox.put(StringValue(value="a"))
    received = []
    for response in echo(requests(), timeout=CALL_TIMEOUT):
        received.append(response.value)
        outbox.put(StringValue(value=chr(ord("a") + len(received))) if len(received) < 5 else None)
    assert received == ["A", "B", "C", "D", "E"]


# --- errors ------------------------------------------------------------------------------------


def test_error_with_details_and_metadata(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        unary(channel, "Say")(StringValue(value="fail"), timeout=CALL_TIMEOUT)
    error = caught.value
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == UNICODE_MESSAGE  # percent-encoded on the wire, decoded by grpcio
    trailers = dict(error.trailing_metadata())
    assert trailers["x-error"] == "e"
    assert trailers["x-trailer"] == "t"
    status = Status.FromString(trailers["grpc-status-details-bin"])
    assert status.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert status.message == UNICODE_MESSAGE
    first, second = StringValue(), Int64Value()
    assert status.details[0].Unpack(first)
    assert status.details[1].Unpack(second)
    assert (first.value, second.value) == ("first", 2)


def test_unexpected_exception_is_internal_without_leaking(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        unary(channel, "Say")(StringValue(value="crash"), timeout=CALL_TIMEOUT)
    assert caught.value.code() is grpc.StatusCode.INTERNAL
    assert "secret" not in caught.value.details()


@pytest.mark.parametrize("path", ["/test.v1.EchoService/Nope", "/test.v1.Nope/Say"])
def test_unknown_procedure_is_unimplemented(channel: grpc.Channel, path: str) -> None:
    call = channel.unary_unary(path, request_serializer=StringValue.SerializeToString)
    with pytest.raises(grpc.RpcError) as caught:
        call(StringValue(value="x"), timeout=CALL_TIMEOUT)
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_unknown_stream_is_unimplemented_while_the_client_still_streams(
    channel: grpc.Channel,
) -> None:
    # As grpcurl probes for reflection: it waits for an answer before it ends its stream.
    done = threading.Event()

    def requests() -> Iterator[StringValue]:
        yield StringValue(value="x")
        done.wait(CALL_TIMEOUT)  # the stream stays open until the call has failed

    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=StringValue.SerializeToString,
    )
    try:
        with pytest.raises(grpc.RpcError) as caught:
            list(call(requests(), timeout=CALL_TIMEOUT))
    finally:
        done.set()
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize("count", [0, 2])
def test_unary_cardinality_violation_is_unimplemented(channel: grpc.Channel, count: int) -> None:
    # A client-streaming stub pointed at a unary method sends 0 or 2 messages.
    wrong = channel.stream_unary(
        _path("Say"),
        request_serializer=StringValue.SerializeToString,
        response_deserializer=StringValue.FromString,
    )
    with pytest.raises(grpc.RpcError) as caught:
        wrong(iter([StringValue(value="x")] * count), timeout=CALL_TIMEOUT)
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_message_over_the_limit_is_resource_exhausted(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        unary(channel, "Say")(StringValue(value="x" * 70_000), timeout=CALL_TIMEOUT)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    # ...and the connection still serves calls.
    assert unary(channel, "Say")(StringValue(value="ok"), timeout=CALL_TIMEOUT).value == "grpc: ok"


def test_deadline_cancels_the_handler(channel: grpc.Channel) -> None:
    probe.cancelled.clear()
    with pytest.raises(grpc.RpcError) as caught:
        unary(channel, "Slow", Int64Value)(Int64Value(value=30_000), timeout=0.3)
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert probe.cancelled.wait(5), "the server did not stop the handler at the deadline"


def test_timeout_reaches_the_handler(channel: grpc.Channel) -> None:
    response = unary(channel, "Header")(StringValue(value="x-none"), timeout=5)
    timeout_ms = int(response.value.split("|")[1])
    # grpcio rounds the timeout it sends up a little (C-core: coarser units, fewer distinct
    # header values), so allow a few milliseconds over.
    assert 4000 < timeout_ms <= 5100
    no_timeout = unary(channel, "Header")(StringValue(value="x-none"))
    assert no_timeout.value == "|None"


def test_binary_request_metadata_is_base64(channel: grpc.Channel) -> None:
    response = unary(channel, "Header")(
        StringValue(value="x-token-bin"),
        metadata=[("x-token-bin", b"\x00\x01\xfe")],
        timeout=CALL_TIMEOUT,
    )
    raw = response.value.split("|")[0]
    assert base64.b64decode(raw + "=" * (-len(raw) % 4)) == b"\x00\x01\xfe"


# --- compression -------------------------------------------------------------------------------


def test_gzip_request_and_response(channel: grpc.Channel) -> None:
    big = "compressible " * 1000
    response = unary(channel, "Say")(
        StringValue(value=big), timeout=CALL_TIMEOUT, compression=grpc.Compression.Gzip
    )
    assert response.value == f"grpc: {big}"


def test_gzip_channel(server: RunningServer) -> None:
    options = [("grpc.enable_http_proxy", 0)]
    with grpc.insecure_channel(
        server.target, options=options, compression=grpc.Compression.Gzip
    ) as ch:
        stream = server_stream(ch)(Int64Value(value=3), timeout=CALL_TIMEOUT)
        assert [m.value for m in stream] == [0, 1, 2]


# --- one channel, many calls -------------------------------------------------------------------


def test_5000_calls_on_one_channel_64_in_flight() -> None:
    # Hypercorn closes an HTTP/2 connection after keep_alive_max_requests (1000 by default)
    # and drops the calls in flight; connectpy lifts that limit. This needs a fresh server and
    # channel so the request count starts at zero on one connection.
    total, in_flight = 5000, 64
    with (
        serve_in_thread(make_app()) as running,
        grpc.insecure_channel(running.target, options=[("grpc.enable_http_proxy", 0)]) as ch,
    ):
        ping = ch.unary_unary(
            _path("Ping"),
            request_serializer=empty_pb2.Empty.SerializeToString,
            response_deserializer=StringValue.FromString,
        )
        probe.clients.clear()
        slots = threading.Semaphore(in_flight)
        failures: list[BaseException] = []
        finished = threading.Event()
        done = [0]
        lock = threading.Lock()

        def on_done(future: grpc.Future) -> None:
            slots.release()
            try:
                assert future.result().value == "pong"
            except BaseException as exc:  # collect, never raise in grpc's thread
                failures.append(exc)
            with lock:
                done[0] += 1
                if done[0] == total:
                    finished.set()

        started = time.monotonic()
        for _ in range(total):
            assert slots.acquire(timeout=30)
            ping.future(empty_pb2.Empty(), timeout=30).add_done_callback(on_done)
        assert finished.wait(60)
        elapsed = time.monotonic() - started
    assert failures == []
    assert done[0] == total
    assert len(probe.clients) == 1, "the calls did not share one connection"
    assert elapsed < 60


# --- Pydantic messages -------------------------------------------------------------------------


def test_pydantic_unary(option3_app: ASGIApp) -> None:
    # BookRequest{id=1} and BookResponse{id=1, title=2, author=3, price=4}, read with a message
    # class defined here.
    book = _book_response_class()
    with (
        serve_in_thread(option3_app) as running,
        grpc.insecure_channel(running.target, options=[("grpc.enable_http_proxy", 0)]) as ch,
    ):
        get_book = ch.unary_unary(
            "/BookService/GetBook",
            request_serializer=StringValue.SerializeToString,  # same wire form as BookRequest
            response_deserializer=book.FromString,
        )
        response = get_book(StringValue(value="123"), timeout=CALL_TIMEOUT)
    assert (response.id, response.title, response.author) == ("123", "Book 123", "Author Name")
    assert response.price == pytest.approx(29.99)


def _book_response_class() -> Any:
    pool = descriptor_pool.DescriptorPool()
    proto = descriptor_pb2.FileDescriptorProto(name="test/book.proto", package="test.book")
    message = proto.message_type.add(name="BookResponse")
    fields = descriptor_pb2.FieldDescriptorProto
    for number, (name, kind) in enumerate(
        [
            ("id", fields.TYPE_STRING),
            ("title", fields.TYPE_STRING),
            ("author", fields.TYPE_STRING),
            ("price", fields.TYPE_DOUBLE),
        ],
        start=1,
    ):
        message.field.add(name=name, number=number, type=kind)
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("test.book.BookResponse"))


# --- where gRPC cannot work ------------------------------------------------------------------


def test_grpc_over_http1_is_refused_clearly(server: RunningServer) -> None:
    body = _frame(StringValue(value="x"))
    headers = {"content-type": "application/grpc", "te": "trailers"}
    with httpx.Client(base_url=server.url, timeout=CALL_TIMEOUT) as client:
        response = client.post(_path("Say"), content=body, headers=headers)
    assert response.http_version == "HTTP/1.1"
    assert response.status_code == 200
    assert response.headers["grpc-status"] == "12"
    assert "HTTP/2" in response.headers["grpc-message"]
    assert response.content == b""


def _frame(message: ProtoMessage) -> bytes:
    data = message.SerializeToString()
    return struct.pack(">BI", 0, len(data)) + data
