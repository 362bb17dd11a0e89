"""How streaming responses reach the ASGI server: batched while the handler runs ahead,
flushed whenever it pauses, bounded when the client is slow.

These drive the app with a bare ASGI ``receive``/``send`` pair that records every message,
because the number and size of ASGI messages is the behaviour under test.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import AsyncIterator, Iterator, MutableMapping
from typing import Any

import anyio
import pytest

from connectpy import ASGIApp, Code, ConnectError, Context, Message
from connectpy._server.stream_writer import HIGH_WATER

pytestmark = pytest.mark.anyio

ASGIMessage = MutableMapping[str, Any]


class Count(Message):
    up_to: int
    pause: float = 0.0
    size: int = 0
    fail_at: int = -1


class Item(Message):
    value: int
    padding: str = ""


class Items:
    async def items(self, request: Count) -> AsyncIterator[Item]:
        for value in range(request.up_to):
            if value == request.fail_at:
                raise ConnectError(Code.ABORTED, f"stopped at {value}")
            yield Item(value=value, padding="x" * request.size)
            if request.pause:
                await anyio.sleep(request.pause)


class SyncItems:
    """The same stream from a sync generator, which runs in a worker thread."""

    def sync_items(self, request: Count) -> Iterator[Item]:
        for value in range(request.up_to):
            if value == request.fail_at:
                raise ConnectError(Code.ABORTED, f"stopped at {value}")
            yield Item(value=value, padding="x" * request.size)
            if request.pause:
                time.sleep(request.pause)


def app() -> ASGIApp:
    rpc = ASGIApp(package="test.v1")
    rpc.mount(Items())
    rpc.mount(SyncItems())
    return rpc


def envelope(data: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(data)) + data


def frames(body: bytes) -> list[tuple[int, bytes]]:
    found = []
    offset = 0
    while offset < len(body):
        flags, length = struct.unpack_from(">BI", body, offset)
        found.append((flags, body[offset + 5 : offset + 5 + length]))
        offset += 5 + length
    assert offset == len(body), "a frame is cut short"
    return found


class Recorder:
    """An ASGI server stand-in: one request body, then the sends, optionally slow."""

    def __init__(self, body: bytes, send_delay: float = 0.0) -> None:
        self._body: list[ASGIMessage] = [{"type": "http.request", "body": body}]
        self.sent: list[ASGIMessage] = []
        self.send_delay = send_delay
        self._done = anyio.Event()

    async def receive(self) -> ASGIMessage:
        if self._body:
            return self._body.pop()
        await self._done.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: ASGIMessage) -> None:
        if self.send_delay and message["type"] == "http.response.body":
            await anyio.sleep(self.send_delay)
        self.sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self._done.set()

    @property
    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]


def scope_for(path: str, content_type: str) -> ASGIMessage:
    """An HTTP/2 POST on a server that can send trailers, as Hypercorn gives it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "2",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", content_type.encode()), (b"te", b"trailers")],
        "extensions": {"http.response.trailers": {}},
    }


async def call(
    content_type: str, body: bytes, send_delay: float = 0.0, path: str = "/test.v1.Items/Items"
) -> Recorder:
    scope = scope_for(path, content_type)
    recorder = Recorder(body, send_delay)
    with anyio.fail_after(10):
        await app()(scope, recorder.receive, recorder.send)
    return recorder


def connect_request(**fields: Any) -> bytes:
    return envelope(json.dumps(fields).encode())


async def test_messages_produced_back_to_back_leave_in_one_body_message() -> None:
    recorder = await call("application/connect+json", connect_request(upTo=50))
    assert len(recorder.bodies) == 1, "50 ready messages and the end of stream in one send"
    got = frames(recorder.bodies[0])
    assert [int(json.loads(data)["value"]) for _, data in got[:-1]] == list(range(50))
    assert got[-1] == (0x02, b"{}")


async def test_a_handler_that_pauses_has_each_message_sent_before_it_waits() -> None:
    recorder = await call("application/connect+json", connect_request(upTo=3, pause=0.05))
    # One body message per message, each sent during the pause after it, then the end.
    assert [len(frames(body)) for body in recorder.bodies] == [1, 1, 1, 1]
    assert frames(recorder.bodies[-1]) == [(0x02, b"{}")]


async def test_a_fast_producer_and_a_slow_client_never_queue_past_the_high_water_mark() -> None:
    size = 10_000
    recorder = await call(
        "application/connect+json", connect_request(upTo=60, size=size), send_delay=0.01
    )
    message_frame = len(envelope(Item(value=59, padding="x" * size).model_dump_json().encode()))
    assert max(len(body) for body in recorder.bodies) < HIGH_WATER + message_frame + 100
    values = [
        int(json.loads(d)["value"]) for body in recorder.bodies for f, d in frames(body) if not f
    ]
    assert values == list(range(60)), "every message, in order"


async def test_messages_before_an_error_go_out_ahead_of_it() -> None:
    recorder = await call("application/connect+json", connect_request(upTo=10, fail_at=4))
    got = [frame for body in recorder.bodies for frame in frames(body)]
    assert [int(json.loads(data)["value"]) for _, data in got[:-1]] == [0, 1, 2, 3]
    flags, end = got[-1]
    assert flags == 0x02
    assert json.loads(end)["error"] == {"code": "aborted", "message": "stopped at 4"}


async def test_grpc_streams_batch_and_end_with_trailers() -> None:
    recorder = await call("application/grpc+json", connect_request(upTo=20))
    types = [m["type"] for m in recorder.sent]
    assert types == ["http.response.start", "http.response.body", "http.response.trailers"]
    body = recorder.bodies[0]
    assert [int(json.loads(d)["value"]) for _, d in frames(body)] == list(range(20))
    trailers = dict(recorder.sent[-1]["headers"])
    assert trailers[b"grpc-status"] == b"0"


async def test_grpc_web_error_after_messages_keeps_the_messages() -> None:
    recorder = await call("application/grpc-web+json", connect_request(upTo=5, fail_at=2))
    got = [frame for body in recorder.bodies for frame in frames(body)]
    assert [int(json.loads(d)["value"]) for f, d in got if f == 0] == [0, 1]
    flags, block = got[-1]
    assert flags == 0x80
    assert block.startswith(b"grpc-status: 10\r\n")


async def test_a_client_that_goes_away_mid_stream_ends_the_call_quietly() -> None:
    class Gone(Recorder):
        async def send(self, message: ASGIMessage) -> None:
            if message["type"] == "http.response.body":
                raise OSError("connection lost")
            await super().send(message)

    scope_app = app()
    recorder = Gone(connect_request(upTo=5, pause=0.01))
    scope = scope_for("/test.v1.Items/Items", "application/connect+json")
    with anyio.fail_after(10):
        await scope_app(scope, recorder.receive, recorder.send)  # no exception escapes
    assert [m["type"] for m in recorder.sent] == ["http.response.start"]


class StalledHeaders(Recorder):
    """The server's socket is backed up, so sending the response headers waits; meanwhile
    the client goes away (``http.disconnect``), which cancels the call."""

    def __init__(self, body: bytes) -> None:
        super().__init__(body)
        self.sending = anyio.Event()
        self.disconnect_delivered = anyio.Event()
        self.socket_free = anyio.Event()
        self.interrupted = False

    async def receive(self) -> ASGIMessage:
        if self._body:
            return self._body.pop()
        await self.sending.wait()
        self.disconnect_delivered.set()
        return {"type": "http.disconnect"}

    async def send(self, message: ASGIMessage) -> None:
        if message["type"] == "http.response.start":
            self.sending.set()
            try:
                await self.socket_free.wait()
            except BaseException:
                self.interrupted = True
                raise
        await super().send(message)


async def test_a_client_leaving_never_cuts_the_headers_send_short() -> None:
    """Headers cancelled inside Hypercorn can lose bytes of the whole HTTP/2 connection: the
    call's cancellation waits for that send instead."""
    recorder = StalledHeaders(connect_request(upTo=3, pause=0.05))
    scope = scope_for("/test.v1.Items/Items", "application/connect+json")

    async def free_the_socket_after_the_disconnect() -> None:
        await recorder.disconnect_delivered.wait()
        await anyio.sleep(0.1)  # time for the cancellation to reach the send, if it could
        recorder.socket_free.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(free_the_socket_after_the_disconnect)
            await app()(scope, recorder.receive, recorder.send)
    assert not recorder.interrupted
    assert recorder.sent[0]["type"] == "http.response.start"  # the send went through


SYNC = "/test.v1.SyncItems/SyncItems"


async def test_a_sync_generator_streams_every_message_in_order() -> None:
    recorder = await call("application/connect+json", connect_request(upTo=500), path=SYNC)
    got = [frame for body in recorder.bodies for frame in frames(body)]
    assert [int(json.loads(data)["value"]) for _, data in got[:-1]] == list(range(500))
    assert got[-1] == (0x02, b"{}")


async def test_a_sync_generator_that_blocks_has_its_message_sent_before_it_resumes() -> None:
    sent_at: list[float] = []
    recorder = Recorder(connect_request(upTo=2, pause=0.3))
    original_send = recorder.send

    async def timed_send(message: ASGIMessage) -> None:
        if message["type"] == "http.response.body":
            sent_at.append(time.monotonic())
        await original_send(message)

    scope = scope_for(SYNC, "application/connect+json")
    started = time.monotonic()
    with anyio.fail_after(10):
        await app()(scope, recorder.receive, timed_send)
    assert sent_at[0] - started < 0.25, "the first message waited for the blocked generator"
    assert len(recorder.bodies) >= 2


async def test_a_sync_generator_error_keeps_its_code() -> None:
    recorder = await call("application/connect+json", connect_request(upTo=9, fail_at=3), path=SYNC)
    got = [frame for body in recorder.bodies for frame in frames(body)]
    assert [int(json.loads(data)["value"]) for _, data in got[:-1]] == [0, 1, 2]
    assert json.loads(got[-1][1])["error"] == {"code": "aborted", "message": "stopped at 3"}


class Early:
    """Sends its headers, then waits for the test to see them before the first message."""

    def __init__(self) -> None:
        self.seen = anyio.Event()

    async def early(self, request: Count, context: Context) -> AsyncIterator[Item]:
        context.response_headers["x-early"] = "yes"
        await context.send_headers()
        await context.send_headers()  # once out, a no-op
        with anyio.fail_after(5):
            await self.seen.wait()
        yield Item(value=1)


@pytest.mark.parametrize(
    "content_type",
    ["application/connect+json", "application/grpc+json", "application/grpc-web+json"],
)
async def test_send_headers_puts_them_out_before_any_message(content_type: str) -> None:
    service = Early()
    rpc = ASGIApp(package="test.v1")
    rpc.mount(service)
    recorder = Recorder(connect_request(upTo=1))
    original_send = recorder.send

    async def watching_send(message: ASGIMessage) -> None:
        await original_send(message)
        if message["type"] == "http.response.start":
            service.seen.set()

    scope = scope_for("/test.v1.Early/Early", content_type)
    with anyio.fail_after(10):
        await rpc(scope, recorder.receive, watching_send)
    start = recorder.sent[0]
    assert start["type"] == "http.response.start"
    assert (b"x-early", b"yes") in start["headers"]
    messages = [f for body in recorder.bodies for f in frames(body) if f[0] == 0]
    assert [int(json.loads(data)["value"]) for _, data in messages] == [1]


async def test_send_headers_in_a_unary_handler_does_nothing() -> None:
    class Unary:
        async def once(self, request: Count, context: Context) -> Item:
            await context.send_headers()
            return Item(value=request.up_to)

    rpc = ASGIApp(package="test.v1")
    rpc.mount(Unary())
    recorder = Recorder(b'{"upTo": 7}')
    scope = scope_for("/test.v1.Unary/Once", "application/json")
    with anyio.fail_after(10):
        await rpc(scope, recorder.receive, recorder.send)
    assert recorder.sent[0]["status"] == 200
    assert json.loads(recorder.bodies[0])["value"] == "7"
