"""gRPC on the wire: a minimal HTTP/2 client (the ``h2`` state machine over a socket) checks
what grpcio hides: frame order, exact trailers, encodings, and that an early status never
crashes Hypercorn's connection."""

from __future__ import annotations

import base64
import contextlib
import gzip
import socket
import struct
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest
from google.protobuf import wrappers_pb2
from google.rpc import status_pb2

from connectpy import ASGIApp, Code, ConnectError, Context
from connectpy.testing import RunningServer, serve_in_thread

pytestmark = pytest.mark.timeout(60)

CALL_TIMEOUT = 10.0
UNICODE_MESSAGE = "\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\n"

StringValue = wrappers_pb2.StringValue
Int64Value = wrappers_pb2.Int64Value


class WireService:
    async def say(self, request: StringValue, ctx: Context) -> StringValue:
        ctx.response_headers["x-raw-bin"] = base64.b64encode(b"\x00\xff\x01").decode()
        if request.value == "fail":
            raise ConnectError(Code.FAILED_PRECONDITION, UNICODE_MESSAGE, details=[request])
        return StringValue(value=f"{ctx.protocol}: {request.value}")

    async def count(self, request: Int64Value) -> AsyncIterator[Int64Value]:
        for n in range(request.value):
            yield Int64Value(value=n)

    async def sum(self, requests: AsyncIterator[Int64Value]) -> Int64Value:
        return Int64Value(value=sum([r.value async for r in requests]))


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    app = ASGIApp(read_max_bytes=64 * 1024)
    app.mount(WireService(), package="test.v1")
    with serve_in_thread(app) as running:
        yield running


def _path(method: str) -> str:
    return f"/test.v1.WireService/{method}"


Status = status_pb2.Status
"""From googleapis-common-protos (a dev dependency), not from connectpy."""


@dataclass
class H2Response:
    headers: dict[str, str] = field(default_factory=dict)
    header_blocks: list[list[tuple[str, str]]] = field(default_factory=list)
    data: bytes = b""
    trailers: list[tuple[str, str]] | None = None
    reset: bool = False


class H2Client:
    """A minimal HTTP/2 (h2c prior knowledge) client that exposes headers, data and trailers."""

    def __init__(self, server: RunningServer) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=CALL_TIMEOUT)
        self.authority = server.target
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.responses: dict[int, H2Response] = {}
        self.ended: set[int] = set()

    def close(self) -> None:
        self.sock.close()

    def open(self, path: str, headers: list[tuple[str, str]]) -> int:
        stream_id: int = self.conn.get_next_available_stream_id()
        request = [(":method", "POST"), (":scheme", "http"), (":authority", self.authority)]
        self.conn.send_headers(stream_id, [*request, (":path", path), *headers])
        self.sock.sendall(self.conn.data_to_send())
        self.responses[stream_id] = H2Response()
        return stream_id

    def send(self, stream_id: int, data: bytes, *, end: bool) -> None:
        self.conn.send_data(stream_id, data, end_stream=end)
        self.sock.sendall(self.conn.data_to_send())

    def wait(self, stream_id: int) -> H2Response:
        while stream_id not in self.ended:
            self._read()
        return self.responses[stream_id]

    def answered_within(self, stream_id: int, seconds: float) -> bool:
        """Whether any response for the stream arrives within ``seconds``."""
        deadline = time.monotonic() + seconds
        while not self.responses[stream_id].header_blocks:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                self._read()
            except TimeoutError:
                return False
            finally:
                self.sock.settimeout(CALL_TIMEOUT)
        return True

    def _read(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        for event in self.conn.receive_data(data):
            self._handle(event)
        self.sock.sendall(self.conn.data_to_send())

    def _handle(self, event: h2.events.Event) -> None:
        stream_id = getattr(event, "stream_id", None)
        response = self.responses.get(stream_id) if stream_id else None
        if isinstance(event, h2.events.ResponseReceived) and response:
            response.header_blocks.append(_text(event.headers))
            response.headers = dict(_text(event.headers))
        elif isinstance(event, h2.events.DataReceived) and response:
            response.data += event.data
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived) and response:
            response.header_blocks.append(_text(event.headers))
            response.trailers = _text(event.headers)
        elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset) and stream_id:
            if response and isinstance(event, h2.events.StreamReset):
                response.reset = True
            self.ended.add(stream_id)
        elif isinstance(event, h2.events.ConnectionTerminated):
            raise ConnectionError(f"GOAWAY: {event}")


def _text(headers: Any) -> list[tuple[str, str]]:
    return [(str(name), str(value)) for name, value in headers]  # decoded: header_encoding


def grpc_frame(message: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(message)) + message


GRPC_HEADERS = [("content-type", "application/grpc"), ("te", "trailers")]


@pytest.fixture
def h2c(server: RunningServer) -> Iterator[H2Client]:
    client = H2Client(server)
    yield client
    client.close()


def call_h2(
    client: H2Client, method: str, body: bytes, headers: list[tuple[str, str]] = GRPC_HEADERS
) -> H2Response:
    stream_id = client.open(_path(method), headers)
    client.send(stream_id, body, end=True)
    return client.wait(stream_id)


def status_of(response: H2Response) -> dict[str, str]:
    """The status fields, from the trailers or, for a trailers-only response, the headers."""
    block = response.trailers if response.trailers is not None else response.header_blocks[0]
    names = [name for name, _ in block]
    assert names.count("grpc-status") == 1, block
    return dict(block)


def test_stream_sends_headers_then_trailers_separately(h2c: H2Client) -> None:
    response = call_h2(h2c, "Count", grpc_frame(Int64Value(value=0).SerializeToString()))
    assert len(response.header_blocks) == 2
    assert response.headers["content-type"] == "application/grpc"
    assert "grpc-status" not in response.headers
    assert response.data == b""
    assert status_of(response)["grpc-status"] == "0"
    assert "grpc-message" not in status_of(response)


def test_error_trailers_on_the_wire(h2c: H2Client) -> None:
    response = call_h2(h2c, "Say", grpc_frame(StringValue(value="fail").SerializeToString()))
    status = status_of(response)
    assert status["grpc-status"] == "9"
    assert status["grpc-message"] == (
        "%0Atest with whitespace%0D%0Aand Unicode BMP %E2%98%BA and non-BMP %F0%9F%98%88%0A"
    )
    details = status["grpc-status-details-bin"]
    assert not details.endswith("=")
    decoded = Status.FromString(base64.b64decode(details + "=" * (-len(details) % 4)))
    assert decoded.code == 9
    assert response.headers["x-raw-bin"] == "AP8B"  # unpadded, as gRPC sends binary metadata


def test_unsupported_grpc_encoding_is_unimplemented(h2c: H2Client) -> None:
    headers = [*GRPC_HEADERS, ("grpc-encoding", "snappy")]
    response = call_h2(h2c, "Say", grpc_frame(b"\x00", flags=1), headers)
    assert status_of(response)["grpc-status"] == "12"
    assert "gzip" in response.headers["grpc-accept-encoding"]


def test_compressed_flag_without_encoding_is_internal(h2c: H2Client) -> None:
    response = call_h2(h2c, "Say", grpc_frame(StringValue(value="x").SerializeToString(), 1))
    assert status_of(response)["grpc-status"] == "13"


def test_gzip_on_the_wire(h2c: H2Client) -> None:
    message = StringValue(value="z" * 5000).SerializeToString()
    headers = [*GRPC_HEADERS, ("grpc-encoding", "gzip"), ("grpc-accept-encoding", "gzip")]
    response = call_h2(h2c, "Say", grpc_frame(gzip.compress(message), flags=1), headers)
    assert status_of(response)["grpc-status"] == "0"
    assert response.headers["grpc-encoding"] == "gzip"
    flags, length = struct.unpack(">BI", response.data[:5])
    assert flags == 1
    reply = StringValue.FromString(gzip.decompress(response.data[5 : 5 + length]))
    assert reply.value == "grpc: " + "z" * 5000


def test_missing_te_trailers_is_reported_in_the_headers(h2c: H2Client) -> None:
    response = call_h2(
        h2c, "Say", grpc_frame(b""), headers=[("content-type", "application/grpc+proto")]
    )
    status = status_of(response)
    assert status["grpc-status"] == "13"
    assert "te: trailers" in status["grpc-message"]


@pytest.mark.parametrize(
    ("path", "headers", "first", "status"),
    [
        (_path("Say"), [*GRPC_HEADERS, ("grpc-encoding", "snappy")], b"\x01\x00\x00", "12"),
        (_path("Say"), GRPC_HEADERS, struct.pack(">BI", 0, 10**6), "8"),
    ],
    ids=["bad-encoding", "too-large-unary"],
)
def test_early_unary_answer_waits_for_the_request_body(
    h2c: H2Client, path: str, headers: list[tuple[str, str]], first: bytes, status: str
) -> None:
    # A unary client sends its whole body without waiting for us: reading it to its end
    # first costs nothing, and spares an HTTP/1.1 connection the reset an unread body causes.
    stream_id = h2c.open(path, headers)
    h2c.send(stream_id, first, end=False)
    assert not h2c.answered_within(stream_id, 0.25), "answered before the request body ended"
    h2c.send(stream_id, b"\x00" * 1000, end=True)
    assert status_of(h2c.wait(stream_id))["grpc-status"] == status
    response = call_h2(h2c, "Say", grpc_frame(StringValue(value="again").SerializeToString()))
    assert StringValue.FromString(response.data[5:]).value == "grpc: again"


@pytest.mark.parametrize(
    ("path", "first", "status"),
    [
        ("/test.v1.Nope/Nope", b"\x00\x00\x00", "12"),
        (_path("Sum"), struct.pack(">BI", 0, 10**6), "8"),
    ],
    ids=["unknown-path", "too-large-stream"],
)
def test_early_answer_to_an_open_stream_keeps_the_connection(
    h2c: H2Client, path: str, first: bytes, status: str
) -> None:
    # A streaming client may hold its side open until it hears from us (a reflection probe,
    # full duplex): on HTTP/2 the answer does not wait for the body, and the body's rest,
    # arriving after the answer, leaves the connection working
    # (connectpy._server.hypercorn.late_data).
    stream_id = h2c.open(path, GRPC_HEADERS)
    h2c.send(stream_id, first, end=False)
    assert h2c.answered_within(stream_id, 5.0), "no answer while the request body was open"
    assert status_of(h2c.wait(stream_id))["grpc-status"] == status
    with contextlib.suppress(h2.exceptions.StreamClosedError):  # reset by the server already
        h2c.send(stream_id, b"\x00" * 1000, end=True)
    response = call_h2(h2c, "Say", grpc_frame(StringValue(value="again").SerializeToString()))
    assert StringValue.FromString(response.data[5:]).value == "grpc: again"


def test_json_codec(h2c: H2Client) -> None:
    headers = [("content-type", "application/grpc+json"), ("te", "trailers")]
    response = call_h2(h2c, "Say", grpc_frame(b'"json"'), headers)
    assert status_of(response)["grpc-status"] == "0"
    assert response.headers["content-type"] == "application/grpc+json"
    assert response.data[5:] == b'"grpc: json"'
