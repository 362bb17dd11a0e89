"""Connect streaming over a real Hypercorn: every stream type on HTTP/1.1 and h2c, full-duplex
bidi on HTTP/2, cancellation on disconnect, deadlines and errors mid-stream."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Iterator

import anyio
import h2.config
import h2.connection
import h2.events
import httpx
import pytest

from connectpy import ASGIApp, Code, ConnectError, Message
from connectpy.testing import RunningServer, serve_in_thread
from examples.streaming import app as example_app

JSON_STREAM = {"content-type": "application/connect+json"}


def envelope(obj: object, flags: int = 0) -> bytes:
    data = json.dumps(obj).encode()
    return struct.pack(">BI", flags, len(data)) + data


def parse_envelopes(data: bytes) -> list[tuple[int, object]]:
    out: list[tuple[int, object]] = []
    while data:
        flags, length = struct.unpack(">BI", data[:5])
        out.append((flags, json.loads(data[5 : 5 + length])))
        data = data[5 + length :]
    return out


class Item(Message):
    value: int = 0
    text: str = ""


finalized = threading.Event()


class SampleService:
    async def slow_count(self, request: Item) -> AsyncIterator[Item]:
        try:
            for n in range(request.value):
                yield Item(value=n)
                await anyio.sleep(0.2)
        finally:
            finalized.set()

    async def fail_after(self, request: Item) -> AsyncIterator[Item]:
        for n in range(request.value):
            yield Item(value=n)
        raise ConnectError(Code.ABORTED, "stopped on purpose", metadata={"why": "test"})

    def sync_count(self, request: Item) -> Iterator[Item]:
        for n in range(request.value):
            yield Item(value=n)


stream_test_app = ASGIApp(package="test.v1")
stream_test_app.mount(SampleService())


@pytest.fixture(scope="module")
def example_server() -> Iterator[RunningServer]:
    with serve_in_thread(example_app) as server:
        yield server


@pytest.fixture(scope="module")
def test_server() -> Iterator[RunningServer]:
    with serve_in_thread(stream_test_app) as server:
        yield server


@pytest.fixture(params=["http1", "h2c"])
def client(request: pytest.FixtureRequest, example_server: RunningServer) -> Iterator[httpx.Client]:
    http2 = request.param == "h2c"
    with httpx.Client(base_url=example_server.url, http1=not http2, http2=http2, timeout=10) as c:
        yield c


def test_server_stream(client: httpx.Client) -> None:
    response = client.post(
        "/streaming.v1.StreamService/Count", content=envelope({"upTo": 3}), headers=JSON_STREAM
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/connect+json"
    assert parse_envelopes(response.content) == [
        (0, {"n": "1"}),
        (0, {"n": "2"}),
        (0, {"n": "3"}),
        (2, {}),
    ]


def test_server_stream_error_before_any_message(client: httpx.Client) -> None:
    response = client.post(
        "/streaming.v1.StreamService/Count", content=envelope({"upTo": 5000}), headers=JSON_STREAM
    )
    assert response.status_code == 200
    assert parse_envelopes(response.content) == [
        (2, {"error": {"code": "invalid_argument", "message": "up_to must be at most 1000"}})
    ]


def test_client_stream(client: httpx.Client) -> None:
    body = b"".join(envelope({"text": t}) for t in ("a", "b", "c"))
    response = client.post("/streaming.v1.StreamService/Collect", content=body, headers=JSON_STREAM)
    assert parse_envelopes(response.content) == [(0, {"count": "3", "joined": "a b c"}), (2, {})]


def test_half_duplex_bidi(client: httpx.Client) -> None:
    body = envelope({"text": "hi"}) + envelope({"text": "there"})
    response = client.post("/streaming.v1.StreamService/Shout", content=body, headers=JSON_STREAM)
    assert parse_envelopes(response.content) == [
        (0, {"text": "HI"}),
        (0, {"text": "THERE"}),
        (2, {}),
    ]


def test_first_message_arrives_before_the_delay(client: httpx.Client) -> None:
    started = time.monotonic()
    with client.stream(
        "POST",
        "/streaming.v1.StreamService/Count",
        content=envelope({"upTo": 2, "delayMs": 1500}),
        headers=JSON_STREAM,
    ) as response:
        first = next(response.iter_raw())
        assert time.monotonic() - started < 1.0
        assert parse_envelopes(first[:17]) == [(0, {"n": "1"})]


def test_headers_arrive_before_a_delayed_first_message(client: httpx.Client) -> None:
    started = time.monotonic()
    with client.stream(
        "POST",
        "/streaming.v1.StreamService/CountLater",
        content=envelope({"upTo": 1, "delayMs": 1500}),
        headers=JSON_STREAM,
    ) as response:
        assert time.monotonic() - started < 1.0, "the headers waited for the first message"
        assert response.headers["x-count-to"] == "1"
        assert parse_envelopes(response.read()) == [(0, {"n": "1"}), (2, {})]


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "h2c"])
def test_error_after_messages_carries_metadata(test_server: RunningServer, http2: bool) -> None:
    with httpx.Client(base_url=test_server.url, http1=not http2, http2=http2) as c:
        response = c.post(
            "/test.v1.SampleService/FailAfter", content=envelope({"value": 2}), headers=JSON_STREAM
        )
    assert parse_envelopes(response.content) == [
        (0, {"value": "0", "text": ""}),
        (0, {"value": "1", "text": ""}),
        (
            2,
            {
                "error": {"code": "aborted", "message": "stopped on purpose"},
                "metadata": {"why": ["test"]},
            },
        ),
    ]


def test_sync_generator_handler(test_server: RunningServer) -> None:
    with httpx.Client(base_url=test_server.url) as c:
        response = c.post(
            "/test.v1.SampleService/SyncCount", content=envelope({"value": 2}), headers=JSON_STREAM
        )
    assert [flags for flags, _ in parse_envelopes(response.content)] == [0, 0, 2]


def test_deadline_mid_stream(test_server: RunningServer) -> None:
    headers = {**JSON_STREAM, "connect-timeout-ms": "500"}
    started = time.monotonic()
    with httpx.Client(base_url=test_server.url, http1=False, http2=True) as c:
        response = c.post(
            "/test.v1.SampleService/SlowCount", content=envelope({"value": 50}), headers=headers
        )
    assert time.monotonic() - started < 3
    frames = parse_envelopes(response.content)
    assert 1 <= len(frames) - 1 <= 4
    assert frames[-1] == (
        2,
        {"error": {"code": "deadline_exceeded", "message": "the call's deadline passed"}},
    )


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "h2c"])
def test_disconnect_cancels_the_handler(test_server: RunningServer, http2: bool) -> None:
    finalized.clear()
    with (
        httpx.Client(base_url=test_server.url, http1=not http2, http2=http2) as c,
        c.stream(
            "POST",
            "/test.v1.SampleService/SlowCount",
            content=envelope({"value": 1000}),
            headers=JSON_STREAM,
        ) as response,
    ):
        next(response.iter_raw())
    # Leaving the block closes the stream (h2: RST_STREAM; h1: the connection).
    assert finalized.wait(5), "the handler's finally block did not run after the disconnect"


class H2Stream:
    """A raw HTTP/2 (h2c, prior knowledge) client stream that can interleave sends and reads."""

    def __init__(self, server: RunningServer, path: str, headers: dict[str, str]) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=5)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.stream_id = self.conn.get_next_available_stream_id()
        request_headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", server.target),
            (":path", path),
            *headers.items(),
        ]
        self.conn.send_headers(self.stream_id, request_headers)
        self.sock.sendall(self.conn.data_to_send())
        self.buffer = b""
        self.ended = False

    def send(self, data: bytes, end: bool = False) -> None:
        self.conn.send_data(self.stream_id, data, end_stream=end)
        self.sock.sendall(self.conn.data_to_send())

    def read_envelope(self) -> tuple[int, object]:
        while (
            len(self.buffer) < 5 or len(self.buffer) < 5 + struct.unpack(">I", self.buffer[1:5])[0]
        ):
            assert not self.ended, "stream ended early"
            for event in self.conn.receive_data(self.sock.recv(65536)):
                if isinstance(event, h2.events.DataReceived) and event.stream_id == self.stream_id:
                    self.buffer += event.data
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.StreamEnded):
                    self.ended = True
            self.sock.sendall(self.conn.data_to_send())
        length = struct.unpack(">I", self.buffer[1:5])[0]
        frame, self.buffer = self.buffer[: 5 + length], self.buffer[5 + length :]
        return parse_envelopes(frame)[0]

    def close(self) -> None:
        self.sock.close()


def test_full_duplex_ping_pong_over_h2c(example_server: RunningServer) -> None:
    stream = H2Stream(example_server, "/streaming.v1.StreamService/Shout", JSON_STREAM)
    try:
        for word in ("ping", "pong", "again"):
            stream.send(envelope({"text": word}))  # the request stays open
            assert stream.read_envelope() == (0, {"text": word.upper()})
        stream.send(b"", end=True)
        assert stream.read_envelope() == (2, {})
    finally:
        stream.close()
