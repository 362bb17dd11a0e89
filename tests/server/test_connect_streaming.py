"""Connect streaming on a real Hypercorn, over HTTP/1.1 and h2c: enveloped messages that
arrive while the handler is still running, and the end-of-stream frame."""

from __future__ import annotations

import json
import struct
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio.to_thread
import httpx
import pytest
from google.protobuf import wrappers_pb2

from connectpy import ASGIApp, Code, ConnectError, Context, Message
from connectpy.testing import RunningServer, serve_in_thread

HTTP_VERSIONS = {"http1": "HTTP/1.1", "h2c": "HTTP/2"}
STREAM_JSON = {"content-type": "application/connect+json", "connect-protocol-version": "1"}

# Set by the test when the first message has reached the client; the handler waits for it.
ACKS: dict[str, threading.Event] = {}


class TickRequest(Message):
    count: int
    wait_for: str = ""
    fail: bool = False


class Tick(Message):
    n: int


class Ticker:
    async def ticks(self, request: TickRequest, context: Context) -> AsyncIterator[Tick]:
        context.response_trailers["x-count"] = str(request.count)
        yield Tick(n=1)
        if request.wait_for:
            seen = await anyio.to_thread.run_sync(ACKS[request.wait_for].wait, 5.0)
            if not seen:
                raise ConnectError(Code.DEADLINE_EXCEEDED, "the first message never arrived")
        for n in range(2, request.count + 1):
            yield Tick(n=n)
        if request.fail:
            raise ConnectError(
                Code.ABORTED, "stopped", details=[wrappers_pb2.StringValue(value="detail")]
            )

    async def sum(self, requests: AsyncIterator[Tick]) -> Tick:
        return Tick(n=sum([r.n async for r in requests]))

    async def double(self, requests: AsyncIterator[Tick]) -> AsyncIterator[Tick]:
        async for request in requests:
            yield Tick(n=request.n * 2)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    app = ASGIApp(package="ticker.v1")
    app.mount(Ticker())
    with serve_in_thread(app) as server:
        yield server


@pytest.fixture(params=list(HTTP_VERSIONS))
def protocol(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def client(server: RunningServer, protocol: str) -> Iterator[httpx.Client]:
    h2 = protocol == "h2c"
    with httpx.Client(base_url=server.url, http1=not h2, http2=h2, timeout=10) as client:
        yield client


def envelope(payload: dict[str, Any], flags: int = 0) -> bytes:
    data = json.dumps(payload).encode()
    return struct.pack(">BI", flags, len(data)) + data


class FrameReader:
    """Incremental envelope parser for the response body."""

    def __init__(self) -> None:
        self.buffer = b""
        self.frames: list[tuple[int, Any]] = []

    def feed(self, chunk: bytes) -> None:
        self.buffer += chunk
        while len(self.buffer) >= 5:
            flags, length = struct.unpack_from(">BI", self.buffer)
            if len(self.buffer) < 5 + length:
                return
            self.frames.append((flags, json.loads(self.buffer[5 : 5 + length])))
            self.buffer = self.buffer[5 + length :]


def split(frames: list[tuple[int, Any]]) -> tuple[list[Any], Any]:
    assert frames, "no frames"
    *messages, (end_flags, end) = frames
    assert end_flags == 0x02
    assert all(flags == 0 for flags, _ in messages)
    return [m for _, m in messages], end


def call(client: httpx.Client, method: str, body: bytes | Iterator[bytes]) -> httpx.Response:
    return client.post(f"/ticker.v1.Ticker/{method}", headers=STREAM_JSON, content=body)


def test_server_stream_arrives_while_the_handler_runs(client: httpx.Client, protocol: str) -> None:
    token = uuid.uuid4().hex
    ACKS[token] = threading.Event()
    reader = FrameReader()
    try:
        with client.stream(
            "POST",
            "/ticker.v1.Ticker/Ticks",
            headers=STREAM_JSON,
            content=envelope({"count": 3, "waitFor": token}),
        ) as response:
            assert response.status_code == 200
            assert response.http_version == HTTP_VERSIONS[protocol]
            assert response.headers["content-type"] == "application/connect+json"
            for chunk in response.iter_raw():
                reader.feed(chunk)
                if reader.frames:
                    # The handler is blocked until we see message 1: streaming, not buffering.
                    ACKS[token].set()
    finally:
        ACKS.pop(token)
    messages, end = split(reader.frames)
    assert messages == [{"n": "1"}, {"n": "2"}, {"n": "3"}]
    assert end == {"metadata": {"x-count": ["3"]}}
    assert reader.buffer == b""


def test_server_stream_error_in_end_frame(client: httpx.Client) -> None:
    response = call(client, "Ticks", envelope({"count": 2, "fail": True}))
    assert response.status_code == 200
    reader = FrameReader()
    reader.feed(response.content)
    messages, end = split(reader.frames)
    assert messages == [{"n": "1"}, {"n": "2"}]
    assert end == {
        "error": {
            "code": "aborted",
            "message": "stopped",
            "details": [{"type": "google.protobuf.StringValue", "value": "CgZkZXRhaWw"}],
        },
        "metadata": {"x-count": ["2"]},
    }
    # The connection is still good.
    again = call(client, "Ticks", envelope({"count": 1}))
    reader = FrameReader()
    reader.feed(again.content)
    assert split(reader.frames) == ([{"n": "1"}], {"metadata": {"x-count": ["1"]}})


def test_client_stream_with_body_in_pieces(client: httpx.Client, protocol: str) -> None:
    def body() -> Iterator[bytes]:
        for n in (1, 2, 3, 4):
            frame = envelope({"n": n})
            yield frame[:3]  # split inside the envelope header
            time.sleep(0.005)
            yield frame[3:]

    response = call(client, "Sum", body())
    assert response.status_code == 200
    assert response.http_version == HTTP_VERSIONS[protocol]
    reader = FrameReader()
    reader.feed(response.content)
    assert split(reader.frames) == ([{"n": "10"}], {})


def test_bidi_half_duplex(client: httpx.Client) -> None:
    response = call(client, "Double", b"".join(envelope({"n": n}) for n in (1, 5, 7)))
    assert response.status_code == 200
    reader = FrameReader()
    reader.feed(response.content)
    assert split(reader.frames) == ([{"n": "2"}, {"n": "10"}, {"n": "14"}], {})


def test_bad_stream_then_good(client: httpx.Client) -> None:
    truncated = envelope({"count": 1})[:-2]
    response = call(client, "Ticks", truncated)
    assert response.status_code == 200
    reader = FrameReader()
    reader.feed(response.content)
    messages, end = split(reader.frames)
    assert messages == []
    assert end["error"]["code"] == "invalid_argument"
    ok = call(client, "Ticks", envelope({"count": 2}))
    reader = FrameReader()
    reader.feed(ok.content)
    assert split(reader.frames)[0] == [{"n": "1"}, {"n": "2"}]
