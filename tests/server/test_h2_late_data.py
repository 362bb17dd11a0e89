"""Request data that arrives after the response, on a real Hypercorn over HTTP/2: the early
call ends cleanly and the connection, with a slow call in flight beside it, lives on.

Each case answers a call before its client has finished the request body, then the client
sends more. Hypercorn 0.18 raised ``KeyError`` on that data and dropped the connection with
every call on it (pgjones/hypercorn#329); see connectpy/_hypercorn/late_data.py.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import anyio
import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest
from fastapi import FastAPI

from connectpy import ASGIApp, Code, ConnectError, Message, http_option
from connectpy._server.asgi import open_body_grace
from connectpy._server.hypercorn import late_data
from connectpy.testing import RunningServer, serve_in_thread

pytestmark = pytest.mark.timeout(60)

SLOW_SECONDS = 1.5


class Nap(Message):
    seconds: float = 0.0


class Note(Message):
    text: str = ""


class Late:
    async def nap(self, request: Nap) -> Note:
        await anyio.sleep(request.seconds)
        return Note(text="rested")

    @http_option(method="POST", path="/v1/naps", body="*")
    async def rest_nap(self, request: Nap) -> Note:
        return Note(text="never: the deadline passes while the body streams")

    async def first_only(self, requests: AsyncIterator[Note]) -> Note:
        async for request in requests:  # the call ends here, while the client still sends
            raise ConnectError(Code.FAILED_PRECONDITION, f"only one: {request.text}")
        return Note()


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    app = ASGIApp(package="late.v1")
    app.mount(Late())
    with serve_in_thread(app) as running:
        yield running


@dataclass
class Stream:
    status: str = ""
    grpc_status: str = ""
    data: bytes = b""
    ended: bool = False
    reset_code: int | None = None
    events: list[str] = field(default_factory=list)


class Client:
    """A raw HTTP/2 client on one connection, so one test controls every frame."""

    def __init__(self, server: RunningServer) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=10)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.conn.initiate_connection()
        self.authority = server.target
        self.streams: dict[int, Stream] = {}
        self._flush()

    def _flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def start(self, path: str, headers: list[tuple[str, str]], body: bytes, *, end: bool) -> int:
        stream_id: int = self.conn.get_next_available_stream_id()
        pseudo = [(":method", "POST"), (":scheme", "http"), (":authority", self.authority)]
        self.conn.send_headers(stream_id, [*pseudo, (":path", path), *headers])
        self.conn.send_data(stream_id, body, end_stream=end)
        self._flush()
        self.streams[stream_id] = Stream()
        return stream_id

    def send_late(self, stream_id: int, body: bytes, *, end: bool) -> None:
        self.conn.send_data(stream_id, body, end_stream=end)
        self._flush()

    def wait(self, stream_id: int) -> Stream:
        stream = self.streams[stream_id]
        while not stream.ended:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            for event in self.conn.receive_data(data):
                self._record(event)
            self._flush()
        return stream

    def _record(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ConnectionTerminated):
            raise ConnectionError(f"the server sent GOAWAY: {event}")
        stream = self.streams.get(getattr(event, "stream_id", 0) or 0)
        if stream is None:
            return
        stream.events.append(type(event).__name__)
        if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
            headers = {str(name): str(value) for name, value in event.headers}  # decoded
            stream.status = headers.get(":status", stream.status)
            stream.grpc_status = headers.get("grpc-status", stream.grpc_status)
        elif isinstance(event, h2.events.DataReceived):
            stream.data += event.data
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            stream.ended = True
        elif isinstance(event, h2.events.StreamReset):
            stream.ended = True
            if stream.reset_code is None:  # the first; h2 resets data sent after it again
                stream.reset_code = event.error_code


@pytest.fixture
def client(server: RunningServer) -> Iterator[Client]:
    client = Client(server)
    yield client
    client.sock.close()


JSON = [("content-type", "application/json")]
GRPC = [("content-type", "application/grpc"), ("te", "trailers")]
GRPC_WEB = [("content-type", "application/grpc-web+proto")]
STREAM = [("content-type", "application/connect+json")]


def envelope(payload: bytes) -> bytes:
    return struct.pack(">BI", 0, len(payload)) + payload


# Each case: the path, headers and first part of a body the server answers before it ends,
# and the status the early answer carries.
EARLY = {
    "connect deadline mid-upload": (
        "/late.v1.Late/Nap",
        [*JSON, ("connect-timeout-ms", "100")],
        b'{"seconds": ',
        "504",
    ),
    "rest deadline mid-upload": (
        "/v1/naps",
        [*JSON, ("connect-timeout-ms", "100")],
        b'{"seconds": ',
        "504",
    ),
    # gRPC ends with trailers, after which Hypercorn happens to close the stream in h2 too, so
    # h2 itself resets late data there; gRPC-Web ends like Connect, and shows the bug.
    "grpc-web unknown procedure": ("/late.v1.Late/Nope", GRPC_WEB, envelope(b""), "200"),
    "client stream ended by an error": (
        "/late.v1.Late/FirstOnly",
        STREAM,
        envelope(b'{"text": "one"}'),
        "200",
    ),
}


@pytest.mark.parametrize("case", EARLY)
def test_late_data_leaves_the_connection_and_its_other_calls_alive(
    client: Client, case: str
) -> None:
    path, headers, first_part, status = EARLY[case]
    slow = client.start(
        "/late.v1.Late/Nap", JSON, json.dumps({"seconds": SLOW_SECONDS}).encode(), end=True
    )
    early = client.start(path, headers, first_part, end=False)
    answered = client.wait(early)
    assert answered.status == status
    if answered.reset_code is None:  # answered, and then the client keeps sending
        client.send_late(early, b"0" * 16_000, end=False)
        client.send_late(early, b"1}", end=True)
    # The sibling, in flight all along, completes; so does a call started afterwards.
    assert (client.wait(slow).status, client.wait(slow).data) == ("200", b'{"text":"rested"}')
    after = client.start("/late.v1.Late/Nap", JSON, b"{}", end=True)
    assert client.wait(after).status == "200"


def test_late_data_after_a_fastapi_404(option4_app: FastAPI) -> None:
    # The guide's Option 4 (connectpy under FastAPI's /rpc) called by a gRPC client: FastAPI
    # answers 404 before it reads the body, then the body arrives. No connectpy code runs.
    with serve_in_thread(option4_app) as running:
        client = Client(running)
        try:
            sibling = client.start("/rpc/BookRPCService/GetBook", JSON, b'{"id": ', end=False)
            lost = client.start("/BookRPCService/GetBook", GRPC, b"", end=False)
            assert client.wait(lost).status == "404"
            client.send_late(lost, envelope(b"\x0a\x011"), end=True)
            client.send_late(sibling, b'"1"}', end=True)
            assert client.wait(sibling).status == "200"
            assert b"Clean Code" in client.streams[sibling].data
        finally:
            client.sock.close()


def test_late_data_is_answered_by_reset_no_error(client: Client) -> None:
    # Once the response is out in full, the server asks the client to stop sending (RFC 9113
    # section 8.1), and the late bytes go back to the connection's flow-control window: a
    # connection would stall once late data had used up its 64 KiB.
    deadline = [*JSON, ("connect-timeout-ms", "100")]
    early = client.start("/late.v1.Late/Nap", deadline, b'{"seconds": ', end=False)
    assert client.wait(early).status == "504"
    window = client.conn.outbound_flow_control_window
    for _ in range(3):  # sent before the client reads the server's reset
        client.send_late(early, b"x" * 13_000, end=False)
    after = client.start("/late.v1.Late/Nap", JSON, b"{}", end=True)
    assert client.wait(after).status == "200"
    assert client.streams[early].reset_code == h2.errors.ErrorCodes.NO_ERROR
    assert client.conn.outbound_flow_control_window >= window - 1_000


def test_patch_applies_to_the_installed_hypercorn() -> None:
    # Fails on a Hypercorn outside PATCHED_VERSIONS: check whether it still needs the patch.
    assert late_data.apply()
    assert late_data.is_applied()


@pytest.mark.parametrize(("http_version", "grace"), [("2", 0.0), ("1.1", 0.5)])
def test_a_held_open_body_is_waited_for_only_where_late_data_harms(
    http_version: str, grace: float
) -> None:
    # With the patch, an HTTP/2 stream whose client keeps sending (a gRPC probe for an unknown
    # procedure, a full-duplex call ending in an error) is answered without waiting for it.
    assert open_body_grace({"http_version": http_version}) == grace
