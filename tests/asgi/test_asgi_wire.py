"""The exact ASGI messages connectpy sends and reads on its fast paths: complete bodies with
``content-length``, gRPC's last message followed directly by the trailers, the single request
read of unary and server-streaming calls, the disconnect watch of server streams, and the
request view and context built lazily."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import anyio
import pytest
from starlette.datastructures import Headers, QueryParams

from connectpy import ASGIApp, Code, ConnectError, Context, Message
from connectpy._server.asgi import HttpRequest
from connectpy._wire.envelope import EnvelopeReader, encode_envelope

pytestmark = pytest.mark.anyio

Sent = list[dict[str, Any]]


class Echo(Message):
    text: str


class Seen(Message):
    headers: list[str] = []
    query: str = ""
    trailers_touched: bool = False


class WireService:
    def __init__(self) -> None:
        self.stalled: anyio.Event | None = None  # set by a test that waits for the stall
        self.finalized = False

    async def say(self, request: Echo) -> Echo:
        return Echo(text=request.text.upper())

    async def fail(self, request: Echo) -> Echo:
        raise ConnectError(Code.NOT_FOUND, f"no {request.text}")

    async def inspect(self, request: Echo, context: Context) -> Seen:
        headers = context.request_headers
        assert isinstance(headers, Headers)
        return Seen(
            headers=headers.getlist("x-multi"),
            query=str(context.query_params),
            trailers_touched=bool(context.response_trailer_pairs()),
        )

    async def repeat(self, request: Echo) -> AsyncIterator[Echo]:
        for _ in range(3):
            yield Echo(text=request.text)

    async def stall(self, request: Echo) -> AsyncIterator[Echo]:
        yield Echo(text="first")
        try:
            if self.stalled is not None:
                self.stalled.set()
            await anyio.sleep_forever()
            yield Echo(text="never")
        finally:
            self.finalized = True


@pytest.fixture
def service() -> WireService:
    return WireService()


@pytest.fixture
def app(service: WireService) -> ASGIApp:
    app = ASGIApp(package="wire.v1")
    app.mount(service)
    return app


def scope(path: str, headers: list[tuple[bytes, bytes]], *, http2: bool = False) -> dict[str, Any]:
    return {
        "type": "http",
        "http_version": "2" if http2 else "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/wire.v1.WireService/{path}",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "extensions": {"http.response.trailers": {}} if http2 else {},
    }


async def call(
    app: ASGIApp, path: str, headers: list[tuple[bytes, bytes]], chunks: list[bytes], **kw: bool
) -> tuple[Sent, list[dict[str, Any]]]:
    """Run one call; return the messages sent and the receive messages left unread."""
    pending = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]
    sent: Sent = []

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    with anyio.fail_after(5):
        await app(scope(path, headers, **kw), receive, send)
    return sent, pending


def header(message: dict[str, Any], name: bytes) -> bytes | None:
    return next((v for k, v in message["headers"] if k == name), None)


CONNECT_JSON = [(b"content-type", b"application/json"), (b"connect-protocol-version", b"1")]
GRPC = [(b"content-type", b"application/grpc"), (b"te", b"trailers")]
GRPC_WEB = [(b"content-type", b"application/grpc-web+json")]
STREAM_JSON = [(b"content-type", b"application/connect+json")]


def frame(payload: dict[str, Any], flags: int = 0) -> bytes:
    return encode_envelope(flags, json.dumps(payload).encode())


async def test_connect_unary_has_content_length(app: ASGIApp) -> None:
    sent, _ = await call(app, "Say", CONNECT_JSON, [b'{"te', b'xt":"hi"}'])
    start, body = sent
    assert start["status"] == 200
    assert body["body"] == b'{"text":"HI"}'
    assert header(start, b"content-length") == str(len(body["body"])).encode()
    assert not body.get("more_body", False)


async def test_connect_unary_error_has_content_length(app: ASGIApp) -> None:
    sent, _ = await call(app, "Fail", CONNECT_JSON, [b'{"text":"x"}'])
    start, body = sent
    assert start["status"] == 404
    assert json.loads(body["body"]) == {"code": "not_found", "message": "no x"}
    assert header(start, b"content-length") == str(len(body["body"])).encode()


async def test_grpc_unary_sends_the_message_last_then_trailers(app: ASGIApp) -> None:
    request = encode_envelope(0, b"\n\x02hi")  # Echo{text: "hi"} in protobuf
    sent, _ = await call(app, "Say", GRPC, [request], http2=True)
    assert [m["type"] for m in sent] == [
        "http.response.start",
        "http.response.body",
        "http.response.trailers",
    ]
    start, body, trailers = sent
    assert start["trailers"] is True
    assert body["body"] == encode_envelope(0, b"\n\x02HI")
    assert body["more_body"] is False
    assert trailers["headers"] == [(b"grpc-status", b"0")]


async def test_grpc_unary_error_is_headers_then_trailers(app: ASGIApp) -> None:
    sent, _ = await call(app, "Fail", GRPC, [encode_envelope(0, b"\n\x01x")], http2=True)
    _, body, trailers = sent
    assert body == {"type": "http.response.body", "body": b"", "more_body": False}
    assert (b"grpc-status", b"5") in trailers["headers"]


async def test_grpc_web_unary_is_one_complete_body(app: ASGIApp) -> None:
    sent, _ = await call(app, "Say", GRPC_WEB, [frame({"text": "hi"})])
    start, body = sent
    assert header(start, b"content-length") == str(len(body["body"])).encode()
    reader = EnvelopeReader(1024)
    frames = reader.feed(body["body"])
    assert frames == [(0, b'{"text":"HI"}'), (0x80, b"grpc-status: 0\r\n")]
    assert not body.get("more_body", False)


@pytest.mark.parametrize(
    ("chunks", "detail"),
    [([b""], "none"), ([frame({"text": "a"}) + frame({"text": "b"})], "more than one")],
    ids=["no-message", "two-messages"],
)
async def test_grpc_unary_needs_exactly_one_message(
    app: ASGIApp, chunks: list[bytes], detail: str
) -> None:
    headers = [(b"content-type", b"application/grpc+json"), (b"te", b"trailers")]
    sent, pending = await call(app, "Say", headers, chunks, http2=True)
    assert not pending
    trailers = dict(sent[-1]["headers"])
    assert trailers[b"grpc-status"] == b"12"
    assert detail.encode() in trailers[b"grpc-message"].replace(b"%20", b" ")


@pytest.mark.parametrize(
    ("chunks", "status"),
    [
        ([encode_envelope(0, b"\n\x02hi")], b"0"),
        ([b"\x00", b"\x00\x00\x00", b"\x04\n\x02", b"hi"], b"0"),
        ([encode_envelope(0, b"\n\x02hi") + b"\x00\x00"], b"3"),  # then a cut-off frame
        ([encode_envelope(0, b"\n\x02hi")[:-1]], b"3"),  # the frame is cut off
        ([encode_envelope(0, b"\n\x02hi") + encode_envelope(0, b"")], b"12"),
        # Hypercorn's way: the body, then an empty message that ends it.
        ([encode_envelope(0, b"\n\x02hi"), b""], b"0"),
        ([encode_envelope(0, b"\n\x02hi"), encode_envelope(0, b"")], b"12"),
        ([encode_envelope(0, b"\n\x02hi"), b"\x00"], b"3"),
    ],
    ids=[
        "one-chunk",
        "split",
        "trailing-bytes",
        "truncated",
        "two-frames",
        "then-empty-end",
        "then-another-frame",
        "then-cut-off-frame",
    ],
)
async def test_grpc_unary_reads_one_frame_however_it_arrives(
    app: ASGIApp, chunks: list[bytes], status: bytes
) -> None:
    sent, pending = await call(app, "Say", GRPC, chunks, http2=True)
    assert not pending
    trailers = dict(sent[-1]["headers"])
    assert trailers[b"grpc-status"] == status, trailers
    if status == b"0":
        assert sent[1]["body"] == encode_envelope(0, b"\n\x02HI")


async def test_server_stream_reads_the_request_then_streams(app: ASGIApp) -> None:
    body = frame({"text": "ab"})
    sent, pending = await call(app, "Repeat", STREAM_JSON, [body[:3], body[3:]])
    assert not pending
    frames = EnvelopeReader(1 << 20).feed(b"".join(m.get("body", b"") for m in sent[1:]))
    assert frames[:3] == [(0, b'{"text":"ab"}')] * 3
    assert frames[3] == (2, b"{}")


async def test_server_stream_error_drains_the_body_first(app: ASGIApp) -> None:
    # A refused request (bad protocol version) is answered only after its body is read: see
    # EnvelopedCall._drain_before_status.
    headers = [*STREAM_JSON, (b"connect-protocol-version", b"2")]
    sent, pending = await call(app, "Repeat", headers, [b"\x00\x00", b"\x00\x00\x02{}"])
    assert not pending
    flags, data = EnvelopeReader(1024).feed(sent[-1]["body"])[0]
    assert flags == 2
    assert json.loads(data)["error"]["code"] == "invalid_argument"


async def test_server_stream_disconnect_cancels_a_stalled_handler(
    app: ASGIApp, service: WireService
) -> None:
    gone = anyio.Event()
    delivered = [{"type": "http.request", "body": frame({"text": "x"}), "more_body": False}]
    sent: Sent = []

    async def receive() -> dict[str, Any]:
        if delivered:
            return delivered.pop()
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    stalled = service.stalled = anyio.Event()

    async def disconnect_once_stalled() -> None:
        await stalled.wait()
        gone.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(disconnect_once_stalled)
            await app(scope("Stall", STREAM_JSON), receive, send)
    assert service.finalized
    # The first message went out; no end-of-stream message follows a disconnect.
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    assert len(bodies) == 1
    assert bodies[0]["more_body"] is True


async def test_context_builds_headers_and_query_on_demand(app: ASGIApp) -> None:
    headers = [*CONNECT_JSON, (b"x-multi", b"a"), (b"x-multi", b"b")]
    sent, _ = await call(app, "Inspect", headers, [b'{"text":""}'])
    assert json.loads(sent[1]["body"]) == {
        "headers": ["a", "b"],
        "query": "",
        "trailersTouched": False,
    }


def test_request_view_first_header_wins() -> None:
    raw = [
        (b"content-type", b"Application/JSON; charset=utf-8"),
        (b"te", b"gzip"),
        (b"te", b"trailers"),
    ]

    async def receive() -> dict[str, Any]:
        raise AssertionError

    async def send(message: Any) -> None:
        raise AssertionError

    request = HttpRequest({"method": "POST", "headers": iter(raw)}, receive, send)
    assert request.content_type == "application/json"
    assert request.header(b"te") == "gzip"
    assert request.header(b"x-absent") is None
    assert request.header_values(b"te") == ["gzip", "trailers"]
    assert request.headers.getlist("te") == ["gzip", "trailers"]
    assert str(request.query_params) == ""


def test_envelope_reader_keeps_a_partial_frame_after_whole_ones() -> None:
    stream = encode_envelope(0, b"one") + encode_envelope(1, b"two")
    reader = EnvelopeReader(1024)
    assert reader.feed(stream[:-2]) == [(0, b"one")]
    assert reader.pending == 6
    assert reader.feed(stream[-2:]) == [(1, b"two")]
    assert reader.pending == 0


def test_context_still_takes_headers_and_query(app: ASGIApp) -> None:
    method = next(iter(app.services[0].methods))
    context = Context(
        method=method,
        protocol="connect",
        http_method="GET",
        request_headers=Headers({"x-a": "1"}),
        query_params=QueryParams("encoding=json"),
    )
    assert context.request_headers["x-a"] == "1"
    assert context.query_params["encoding"] == "json"
    assert context.response_header_pairs() == ()
    context.response_headers["x-b"] = "2"
    assert list(context.response_header_pairs()) == [(b"x-b", b"2")]
    bare = Context(method=method, protocol="grpc", http_method="POST")
    assert list(bare.request_headers.items()) == []
    assert str(bare.query_params) == ""
