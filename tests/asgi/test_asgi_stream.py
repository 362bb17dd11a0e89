"""Connect streaming, in process: enveloped messages and the end-of-stream frame.

The in-process transport sends the whole request body before reading the response, so
these are half-duplex; the real-server tier covers streaming over HTTP/1.1 and h2c.
"""

from __future__ import annotations

import gzip
import json
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from connectpy import ASGIApp, Code, ConnectError, Context, Message

pytestmark = pytest.mark.anyio

STREAM_JSON = {"content-type": "application/connect+json"}
LIMIT = 1024


def client_for(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")  # type: ignore[arg-type]


def envelope(data: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(data)) + data


def message(payload: dict[str, Any], flags: int = 0) -> bytes:
    return envelope(json.dumps(payload).encode(), flags)


def split_envelopes(body: bytes) -> list[tuple[int, bytes]]:
    frames = []
    offset = 0
    while offset < len(body):
        assert len(body) - offset >= 5, "truncated envelope header"
        flags, length = struct.unpack_from(">BI", body, offset)
        data = body[offset + 5 : offset + 5 + length]
        assert len(data) == length, "truncated envelope body"
        frames.append((flags, data))
        offset += 5 + length
    return frames


def parse_stream(body: bytes) -> tuple[list[Any], dict[str, Any]]:
    """Messages (JSON) and the end-of-stream object; asserts the framing is well formed."""
    frames = split_envelopes(body)
    assert frames, "empty response body"
    *messages, (end_flags, end_data) = frames
    assert end_flags == 0x02, f"last frame flags {end_flags:#x}"
    for flags, _ in messages:
        assert flags == 0x00
    return [json.loads(data) for _, data in messages], json.loads(end_data)


class Count(Message):
    up_to: int
    fail_at: int = -1


class Number(Message):
    value: int


class Text(Message):
    text: str


class Streams:
    async def count(self, request: Count, context: Context) -> AsyncIterator[Number]:
        context.response_headers["x-stream"] = "yes"
        context.response_trailers["x-total"] = str(request.up_to)
        for value in range(1, request.up_to + 1):
            if value == request.fail_at:
                raise ConnectError(Code.OUT_OF_RANGE, f"stopped at {value}")
            yield Number(value=value)

    def count_sync(self, request: Count) -> Iterator[Number]:
        for value in range(request.up_to):
            yield Number(value=value)

    async def crash(self, request: Count) -> AsyncIterator[Number]:
        yield Number(value=1)
        raise RuntimeError("SECRET internal detail")

    async def total(self, requests: AsyncIterator[Number]) -> Number:
        return Number(value=sum([r.value async for r in requests]))

    async def first(self, requests: AsyncIterator[Number]) -> Number:
        async for request in requests:
            return request
        return Number(value=-1)

    async def echo(self, requests: AsyncIterator[Text]) -> AsyncIterator[Text]:
        async for request in requests:
            yield Text(text=request.text.upper())

    async def unary(self, request: Text) -> Text:
        return request


@pytest.fixture(scope="module")
def app() -> ASGIApp:
    app = ASGIApp(package="streams.v1", read_max_bytes=LIMIT)
    app.mount(Streams())
    return app


async def post(app: ASGIApp, method: str, body: bytes, **headers: str) -> httpx.Response:
    async with client_for(app) as client:
        return await client.post(
            f"/streams.v1.Streams/{method}", headers={**STREAM_JSON, **headers}, content=body
        )


async def test_server_stream(app: ASGIApp) -> None:
    response = await post(app, "Count", message({"upTo": 3}))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/connect+json"
    assert response.headers["x-stream"] == "yes"
    messages, end = parse_stream(response.content)
    assert messages == [{"value": "1"}, {"value": "2"}, {"value": "3"}]
    assert end == {"metadata": {"x-total": ["3"]}}


async def test_server_stream_with_no_messages(app: ASGIApp) -> None:
    response = await post(app, "CountSync", message({"upTo": 0}))
    assert response.status_code == 200
    messages, end = parse_stream(response.content)
    assert messages == []
    assert end == {}


async def test_sync_server_stream(app: ASGIApp) -> None:
    response = await post(app, "CountSync", message({"upTo": 4}))
    messages, end = parse_stream(response.content)
    assert messages == [{"value": str(v)} for v in range(4)]
    assert end == {}


async def test_server_stream_error_in_end_frame(app: ASGIApp) -> None:
    response = await post(app, "Count", message({"upTo": 5, "failAt": 3}))
    assert response.status_code == 200  # streaming errors never change the HTTP status
    messages, end = parse_stream(response.content)
    assert messages == [{"value": "1"}, {"value": "2"}]
    assert end == {
        "error": {"code": "out_of_range", "message": "stopped at 3"},
        "metadata": {"x-total": ["5"]},
    }


async def test_server_stream_crash_is_generic_internal(app: ASGIApp) -> None:
    response = await post(app, "Crash", message({"upTo": 1}))
    assert response.status_code == 200
    messages, end = parse_stream(response.content)
    assert messages == [{"value": "1"}]
    assert end == {"error": {"code": "internal", "message": "internal error"}}
    assert b"SECRET" not in response.content


async def test_client_stream(app: ASGIApp) -> None:
    body = b"".join(message({"value": v}) for v in (1, 2, 39))
    response = await post(app, "Total", body)
    assert response.status_code == 200
    messages, end = parse_stream(response.content)
    assert messages == [{"value": "42"}]
    assert end == {}


async def test_client_stream_with_no_messages(app: ASGIApp) -> None:
    response = await post(app, "Total", b"")
    messages, end = parse_stream(response.content)
    assert messages == [{"value": "0"}]  # every field is written, int64 as a string
    assert end == {}


async def test_bidi_stream_half_duplex(app: ASGIApp) -> None:
    body = message({"text": "a"}) + message({"text": "b"})
    response = await post(app, "Echo", body)
    messages, end = parse_stream(response.content)
    assert messages == [{"text": "A"}, {"text": "B"}]
    assert end == {}


async def test_server_stream_with_no_request_is_unimplemented(app: ASGIApp) -> None:
    response = await post(app, "Count", b"")
    assert response.status_code == 200
    messages, end = parse_stream(response.content)
    assert messages == []
    assert end["error"]["code"] == "unimplemented"


async def test_server_stream_with_two_requests_is_unimplemented(
    app: ASGIApp, anyio_backend: str, request: pytest.FixtureRequest
) -> None:
    response = await post(app, "Count", message({"upTo": 1}) + message({"upTo": 1}))
    assert response.status_code == 200
    messages, end = parse_stream(response.content)
    assert messages == []
    assert end["error"]["code"] == "unimplemented"


async def test_client_stream_handler_may_stop_reading_early(
    app: ASGIApp, anyio_backend: str, request: pytest.FixtureRequest
) -> None:
    body = b"".join(message({"value": v}) for v in (7, 8, 9))
    response = await post(app, "First", body)
    assert response.status_code == 200
    messages, end = parse_stream(response.content)
    assert messages == [{"value": "7"}]
    assert end == {}


async def test_compressed_request_and_response_envelopes() -> None:
    app = ASGIApp(package="streams.v1", read_max_bytes=64 * 1024)
    app.mount(Streams())
    big = json.dumps({"text": "x" * 3000}).encode()
    body = envelope(gzip.compress(big), flags=0x01) + message({"text": "small"})
    response = await post(
        app,
        "Echo",
        body,
        **{"connect-content-encoding": "gzip", "connect-accept-encoding": "gzip"},
    )
    assert response.status_code == 200
    assert response.headers["connect-content-encoding"] == "gzip"
    (flags, data), (small_flags, small), (end_flags, end_data) = split_envelopes(response.content)
    # Large messages are compressed, small ones may go out as they are (flag 0).
    assert flags == 0x01
    assert json.loads(gzip.decompress(data)) == {"text": "X" * 3000}
    assert small_flags == 0x00
    assert json.loads(small) == {"text": "SMALL"}
    assert end_flags & 0x02
    end = json.loads(gzip.decompress(end_data) if end_flags & 0x01 else end_data)
    assert end == {}


@pytest.mark.parametrize(
    ("body", "headers", "code"),
    [
        (message({"upTo": 1}, flags=0x01), {}, "internal"),  # compressed flag, identity
        (message({"upTo": 1}, flags=0x02), {}, "invalid_argument"),  # end-stream from client
        (message({"upTo": 1})[:-1], {}, "invalid_argument"),  # truncated frame
        (b"\x00\x00\x00", {}, "invalid_argument"),  # truncated header
        (envelope(b"x" * (LIMIT + 1)), {}, "resource_exhausted"),
        (message({"upTo": 1}), {"connect-content-encoding": "foo"}, "unimplemented"),
        (message({"upTo": 1}), {"connect-timeout-ms": "nope"}, "invalid_argument"),
        (message({"upTo": 1}), {"connect-protocol-version": "2"}, "invalid_argument"),
        (envelope(b"{not json"), {}, "invalid_argument"),
    ],
    ids=[
        "compressed-without-encoding",
        "end-stream-flag",
        "truncated-frame",
        "truncated-header",
        "oversize",
        "unknown-encoding",
        "bad-timeout",
        "protocol-version-2",
        "bad-json",
    ],
)
async def test_stream_errors_are_in_the_end_frame(
    app: ASGIApp, body: bytes, headers: dict[str, str], code: str
) -> None:
    async with client_for(app) as client:
        response = await client.post(
            "/streams.v1.Streams/Count", headers={**STREAM_JSON, **headers}, content=body
        )
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/connect+json"
        messages, end = parse_stream(response.content)
        assert messages == []
        assert set(end) == {"error"}
        assert end["error"]["code"] == code
        ok = await client.post(
            "/streams.v1.Streams/Count", headers=STREAM_JSON, content=message({"upTo": 1})
        )
        assert parse_stream(ok.content) == ([{"value": "1"}], {"metadata": {"x-total": ["1"]}})


async def test_gzip_bomb_envelope_is_resource_exhausted(app: ASGIApp, gzip_bomb: bytes) -> None:
    # The bomb is ~100 KB on the wire: make a bomb that fits in one LIMIT-sized envelope.
    small_bomb = gzip.compress(bytes(10 * 1024 * 1024))
    assert len(small_bomb) <= LIMIT * 16
    app_big = ASGIApp(package="streams.v1", read_max_bytes=len(small_bomb))
    app_big.mount(Streams())
    response = await post(
        app_big, "Count", envelope(small_bomb, 0x01), **{"connect-content-encoding": "gzip"}
    )
    messages, end = parse_stream(response.content)
    assert messages == []
    assert end["error"]["code"] == "resource_exhausted"


async def test_unary_method_refuses_streaming_content_type(app: ASGIApp) -> None:
    response = await post(app, "Unary", message({"text": "x"}))
    assert response.status_code == 415


async def test_streaming_method_refuses_unary_content_type(app: ASGIApp) -> None:
    async with client_for(app) as client:
        response = await client.post("/streams.v1.Streams/Count", json={"upTo": 1})
    assert response.status_code == 415


async def test_stream_proto_codec_content_type(app: ASGIApp) -> None:
    # Count{up_to: 2} in binary: field 1, varint 2.
    response = await post(
        app, "Count", envelope(b"\x08\x02"), **{"content-type": "application/connect+proto"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/connect+proto"
    frames = split_envelopes(response.content)
    assert frames[:-1] == [(0, b"\x08\x01"), (0, b"\x08\x02")]
    assert frames[-1][0] == 0x02
    assert json.loads(frames[-1][1]) == {"metadata": {"x-total": ["2"]}}
