"""gRPC-Web over a real Hypercorn, called by a plain httpx client (HTTP/1.1, and h2c).

The status travels in a final body frame (flag 0x80) holding ``name: value`` lines, never in
HTTP trailers, so gRPC-Web works wherever HTTP/1.1 does.
"""

from __future__ import annotations

import base64
import gzip
import struct
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

from connectpy import ASGIApp, Code, ConnectError, Context
from connectpy.testing import RunningServer, serve_in_thread

pytestmark = pytest.mark.timeout(60)

StringValue = wrappers_pb2.StringValue
Int64Value = wrappers_pb2.Int64Value

PROTO = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"}
TRAILERS_FLAG = 0x80

release_stream = threading.Event()


class WebService:
    async def say(self, request: StringValue, ctx: Context) -> StringValue:
        ctx.response_headers["x-header"] = "h"
        ctx.response_trailers["x-trailer"] = "t"
        ctx.response_trailers["x-data-bin"] = base64.b64encode(b"\x00\xff").decode()
        if request.value == "fail":
            raise ConnectError(
                Code.OUT_OF_RANGE,
                "50% ☺\r\ndone",
                details=[StringValue(value="why")],
                metadata={"x-error": "e"},
            )
        return StringValue(value=f"{ctx.protocol}: {request.value}")

    async def slow(self, request: Int64Value) -> Int64Value:
        await anyio.sleep(request.value / 1000)
        return request

    async def count(self, request: Int64Value) -> AsyncIterator[Int64Value]:
        for n in range(request.value):
            yield Int64Value(value=n)

    async def held(self, request: Int64Value) -> AsyncIterator[Int64Value]:
        """One message, then wait until the test saw it: proves the response streams."""
        yield Int64Value(value=1)
        assert await anyio.to_thread.run_sync(release_stream.wait, 10)
        yield Int64Value(value=2)

    async def sum(self, requests: AsyncIterator[Int64Value]) -> Int64Value:
        return Int64Value(value=sum([r.value async for r in requests]))

    async def echo(self, requests: AsyncIterator[StringValue]) -> AsyncIterator[StringValue]:
        async for request in requests:
            yield StringValue(value=request.value[::-1])


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    app = ASGIApp(read_max_bytes=64 * 1024)
    app.mount(WebService(), package="web.v1")
    with serve_in_thread(app) as running:
        yield running


@pytest.fixture
def http1(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def frame(message: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(message)) + message


def frames(body: bytes) -> list[tuple[int, bytes]]:
    out = []
    while body:
        flags, length = struct.unpack(">BI", body[:5])
        assert len(body) >= 5 + length, "truncated frame"
        out.append((flags, body[5 : 5 + length]))
        body = body[5 + length :]
    return out


def split(body: bytes) -> tuple[list[bytes], dict[str, str]]:
    """Messages and the trailers of a gRPC-Web body, checking the trailer frame's format."""
    parsed = frames(body)
    assert parsed, "no frames"
    flags, block = parsed[-1]
    assert flags == TRAILERS_FLAG, "the last frame must carry the trailers"
    assert all(f & TRAILERS_FLAG == 0 for f, _ in parsed[:-1])
    text = block.decode()
    assert text.endswith("\r\n")
    lines = text[:-2].split("\r\n")
    assert "" not in lines, "no blank lines in the trailer block"
    trailers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(": ")
        assert name == name.lower(), f"trailer name not lower-case: {name}"
        assert name not in trailers or name.startswith("x-")
        trailers[name] = value
    return [data for _, data in parsed[:-1]], trailers


def call(client: httpx.Client, method: str, body: bytes, **headers: str) -> httpx.Response:
    return client.post(f"/web.v1.WebService/{method}", content=body, headers={**PROTO, **headers})


def _status_class() -> Any:
    """google.rpc.Status, defined here (independent of connectpy)."""
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(any_pb2.DESCRIPTOR.serialized_pb)
    proto = descriptor_pb2.FileDescriptorProto(
        name="test/web_status.proto", package="google.rpc", dependency=[any_pb2.DESCRIPTOR.name]
    )
    message = proto.message_type.add(name="Status")
    kinds = descriptor_pb2.FieldDescriptorProto
    message.field.add(name="code", number=1, type=kinds.TYPE_INT32)
    message.field.add(name="message", number=2, type=kinds.TYPE_STRING)
    message.field.add(
        name="details",
        number=3,
        type=kinds.TYPE_MESSAGE,
        label=kinds.LABEL_REPEATED,
        type_name=".google.protobuf.Any",
    )
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))


Status = _status_class()


def test_unary_over_http1(http1: httpx.Client) -> None:
    response = call(http1, "Say", frame(StringValue(value="hi").SerializeToString()))
    assert response.http_version == "HTTP/1.1"
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/grpc-web+proto"
    assert response.headers["x-header"] == "h"
    assert "trailer" not in response.headers  # no HTTP trailers announced, ever
    messages, trailers = split(response.content)
    assert [StringValue.FromString(m).value for m in messages] == ["grpc-web: hi"]
    assert trailers == {"x-trailer": "t", "x-data-bin": "AP8", "grpc-status": "0"}


def test_json_codec(http1: httpx.Client) -> None:
    response = call(http1, "Say", frame(b'"json"'), **{"content-type": "application/grpc-web+json"})
    assert response.headers["content-type"] == "application/grpc-web+json"
    messages, trailers = split(response.content)
    assert messages == [b'"grpc-web: json"']
    assert trailers["grpc-status"] == "0"


def test_error_in_the_trailer_frame(http1: httpx.Client) -> None:
    response = call(http1, "Say", frame(StringValue(value="fail").SerializeToString()))
    assert response.status_code == 200
    messages, trailers = split(response.content)
    assert messages == []
    assert trailers["grpc-status"] == "11"
    assert trailers["grpc-message"] == "50%25 %E2%98%BA%0D%0Adone"
    assert trailers["x-error"] == "e"
    details = trailers["grpc-status-details-bin"]
    assert not details.endswith("=")
    status = Status.FromString(base64.b64decode(details + "=" * (-len(details) % 4)))
    assert (status.code, status.message) == (11, "50% ☺\r\ndone")
    why = StringValue()
    assert status.details[0].Unpack(why)
    assert why.value == "why"


def test_server_stream(http1: httpx.Client) -> None:
    response = call(http1, "Count", frame(Int64Value(value=3).SerializeToString()))
    messages, trailers = split(response.content)
    assert [Int64Value.FromString(m).value for m in messages] == [0, 1, 2]
    assert trailers == {"grpc-status": "0"}


def test_server_stream_without_messages(http1: httpx.Client) -> None:
    response = call(http1, "Count", frame(Int64Value(value=0).SerializeToString()))
    assert split(response.content) == ([], {"grpc-status": "0"})


def test_server_stream_streams_over_http1(http1: httpx.Client) -> None:
    release_stream.clear()
    body = frame(Int64Value(value=0).SerializeToString())
    with http1.stream("POST", "/web.v1.WebService/Held", content=body, headers=PROTO) as response:
        chunks = response.iter_bytes()
        received = b""
        while len(received) < 7:  # the first message frame: 5-byte header + 2 bytes
            received += next(chunks)
        assert Int64Value.FromString(frames(received[:7])[0][1]).value == 1
        release_stream.set()
        received += b"".join(chunks)
    messages, trailers = split(received)
    assert [Int64Value.FromString(m).value for m in messages] == [1, 2]
    assert trailers["grpc-status"] == "0"


def test_client_stream(http1: httpx.Client) -> None:
    body = b"".join(frame(Int64Value(value=n).SerializeToString()) for n in range(10))
    messages, trailers = split(call(http1, "Sum", body).content)
    assert Int64Value.FromString(messages[0]).value == 45
    assert trailers["grpc-status"] == "0"


def test_half_duplex_bidi_over_http1(http1: httpx.Client) -> None:
    body = b"".join(frame(StringValue(value=v).SerializeToString()) for v in ["ab", "cd"])
    messages, trailers = split(call(http1, "Echo", body).content)
    assert [StringValue.FromString(m).value for m in messages] == ["ba", "dc"]
    assert trailers["grpc-status"] == "0"


def test_unknown_procedure_is_unimplemented(http1: httpx.Client) -> None:
    response = http1.post("/web.v1.WebService/Nope", content=frame(b""), headers=PROTO)
    assert response.status_code == 200
    assert response.headers["grpc-status"] == "12"  # trailers-only: the status in the headers


@pytest.mark.parametrize("count", [0, 2])
def test_unary_cardinality_violation(http1: httpx.Client, count: int) -> None:
    body = frame(StringValue(value="x").SerializeToString()) * count
    _, trailers = split(call(http1, "Say", body).content)
    assert trailers["grpc-status"] == "12"


def test_deadline(http1: httpx.Client) -> None:
    response = call(
        http1,
        "Slow",
        frame(Int64Value(value=10_000).SerializeToString()),
        **{"grpc-timeout": "200m"},
    )
    assert split(response.content)[1]["grpc-status"] == "4"


def test_message_over_the_limit(http1: httpx.Client) -> None:
    body = frame(StringValue(value="x" * 70_000).SerializeToString())
    assert split(call(http1, "Say", body).content)[1]["grpc-status"] == "8"
    # The connection (HTTP/1.1 keep-alive) still serves the next call.
    response = call(http1, "Say", frame(StringValue(value="ok").SerializeToString()))
    assert split(response.content)[1]["grpc-status"] == "0"


def test_gzip(http1: httpx.Client) -> None:
    message = StringValue(value="z" * 4000).SerializeToString()
    response = call(
        http1,
        "Say",
        frame(gzip.compress(message), flags=1),
        **{"grpc-encoding": "gzip", "grpc-accept-encoding": "gzip"},
    )
    assert response.headers["grpc-encoding"] == "gzip"
    (flags, data), (trailer_flags, _) = frames(response.content)
    assert flags == 1
    assert trailer_flags == TRAILERS_FLAG  # the trailer frame is never compressed
    assert StringValue.FromString(gzip.decompress(data)).value == "grpc-web: " + "z" * 4000


def test_compressed_flag_without_encoding_is_internal(http1: httpx.Client) -> None:
    response = call(http1, "Say", frame(StringValue(value="x").SerializeToString(), flags=1))
    assert split(response.content)[1]["grpc-status"] == "13"


def test_unsupported_encoding_is_unimplemented(http1: httpx.Client) -> None:
    response = call(http1, "Say", frame(b"", flags=1), **{"grpc-encoding": "snappy"})
    assert split(response.content)[1]["grpc-status"] == "12"


def test_grpc_web_text(http1: httpx.Client) -> None:
    body = base64.b64encode(frame(StringValue(value="text").SerializeToString()))
    response = call(http1, "Say", body, **{"content-type": "application/grpc-web-text"})
    assert response.headers["content-type"] == "application/grpc-web-text"
    # One padded base64 string per frame, so decode 4-character groups one by one.
    text = response.content
    assert len(text) % 4 == 0
    decoded = b"".join(base64.b64decode(text[i : i + 4]) for i in range(0, len(text), 4))
    messages, trailers = split(decoded)
    assert StringValue.FromString(messages[0]).value == "grpc-web: text"
    assert trailers["grpc-status"] == "0"


def test_over_http2(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, http1=False, http2=True, timeout=10) as client:
        response = call(client, "Count", frame(Int64Value(value=2).SerializeToString()))
    assert response.http_version == "HTTP/2"
    messages, trailers = split(response.content)
    assert [Int64Value.FromString(m).value for m in messages] == [0, 1]
    assert trailers == {"grpc-status": "0"}
