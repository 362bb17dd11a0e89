"""Sans-IO wire pieces the client added, checked against what the server writes: Connect
error JSON and end-of-stream, the GET query, timeouts, the gRPC-Web trailer block, HTTP
status mapping, and the client's response readers byte by byte."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Protocol
from urllib.parse import parse_qs

import pytest
from google.protobuf import wrappers_pb2

from connectpy import Code, ConnectError, IdempotencyLevel, Message, rpc
from connectpy._model.service import describe_service
from connectpy._wire.connect import (
    connect_end_stream_json,
    connect_error_json,
    connect_get_query,
    connect_parse_end_stream,
    connect_parse_error,
)
from connectpy._wire.deadline import format_connect_timeout, parse_connect_timeout
from connectpy._wire.envelope import FLAG_END_STREAM, encode_envelope
from connectpy._wire.grpc import (
    grpc_status_trailers,
    grpc_web_parse_trailer_block,
    grpc_web_trailer_block,
)
from connectpy.client._connect import CONNECT
from connectpy.client._grpc import GRPC, GRPC_WEB, grpc_status_error
from connectpy.client._spec import CallSpec


class Item(Message):
    value: int = 0


class Service(Protocol):
    @rpc(idempotency=IdempotencyLevel.NO_SIDE_EFFECTS)
    async def unary(self, request: Item) -> Item: ...

    def stream(self, request: Item) -> AsyncIterator[Item]: ...


UNARY = describe_service(Service).methods[0]


def spec(**options: object) -> CallSpec:
    return CallSpec(method=UNARY, codec="proto", path="", **options)  # type: ignore[arg-type]


def test_error_json_round_trip() -> None:
    error = ConnectError(
        Code.NOT_FOUND, "gone", details=[wrappers_pb2.StringValue(value="x")], metadata={"a": "b"}
    )
    parsed = connect_parse_error(404, connect_error_json(error), [("a", "b")])
    assert parsed.code is Code.NOT_FOUND
    assert parsed.message == "gone"
    assert parsed.details == error.details
    assert parsed.metadata == [("a", "b")]


@pytest.mark.parametrize(
    ("status", "body", "code", "message"),
    [
        (401, b'{"message": "oops"}', Code.UNAUTHENTICATED, "oops"),  # no code: the status's
        (503, b"<html>busy</html>", Code.UNAVAILABLE, "HTTP status 503"),
        (418, b"[]", Code.UNKNOWN, "HTTP status 418"),
        (400, b'{"code": "no_such_code"}', Code.INTERNAL, ""),
    ],
)
def test_error_without_a_valid_body_falls_back_to_the_status(
    status: int, body: bytes, code: Code, message: str
) -> None:
    error = connect_parse_error(status, body)
    assert (error.code, error.message) == (code, message)


def test_error_details_accept_padded_and_url_safe_base64() -> None:
    body = {"code": "aborted", "details": [{"type": "t", "value": "-_8="}, {"type": "u"}]}
    error = connect_parse_error(409, json.dumps(body).encode())
    assert [(d.type_name, d.value) for d in error.details] == [("t", b"\xfb\xff"), ("u", b"")]


def test_end_stream_round_trip() -> None:
    error = ConnectError(Code.ABORTED, "stop")
    data = connect_end_stream_json(error, {"x-t": ["1", "2"]})
    parsed, trailers = connect_parse_end_stream(data)
    assert parsed is not None
    assert (parsed.code, parsed.message) == (Code.ABORTED, "stop")
    assert trailers == [("x-t", "1"), ("x-t", "2")]
    assert connect_parse_end_stream(b"{}") == (None, [])


@pytest.mark.parametrize("data", [b"not json", b"[1]", b'{"metadata": 3}'])
def test_malformed_end_stream_is_internal(data: bytes) -> None:
    with pytest.raises(ConnectError) as caught:
        connect_parse_end_stream(data)
    assert caught.value.code is Code.INTERNAL


def test_get_query() -> None:
    query = parse_qs(connect_get_query("proto", b"\xfb\xff", "gzip"))
    assert query == {
        "connect": ["v1"],
        "encoding": ["proto"],
        "base64": ["1"],
        "message": ["-_8"],
        "compression": ["gzip"],
    }
    assert parse_qs(connect_get_query("json", b'{"a":1}', None))["message"] == ['{"a":1}']


@pytest.mark.parametrize("ms", [0, 1, 1500, 9_999_999_999])
def test_connect_timeout_round_trip(ms: int) -> None:
    if ms == 0:
        assert format_connect_timeout(ms) == "0"
    else:
        assert parse_connect_timeout(format_connect_timeout(ms)) == ms
    assert format_connect_timeout(10**12) == "9999999999"


def test_grpc_web_trailer_block_round_trip() -> None:
    trailers = grpc_status_trailers(ConnectError(Code.INTERNAL, "a b"), [(b"x-y", b"z")])
    assert grpc_web_parse_trailer_block(grpc_web_trailer_block(trailers)) == trailers
    with pytest.raises(ConnectError):
        grpc_web_parse_trailer_block(b"no colon\r\n")


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, Code.INTERNAL), (404, Code.UNIMPLEMENTED), (429, Code.UNAVAILABLE), (500, Code.UNKNOWN)],
)
def test_code_from_http_status(status: int, code: Code) -> None:
    assert Code.from_http_status(status) is code


def test_grpc_status_error_reads_what_the_server_writes() -> None:
    error = ConnectError(
        Code.PERMISSION_DENIED, "nope ☺", details=[wrappers_pb2.Int32Value(value=3)]
    )
    parsed = grpc_status_error(grpc_status_trailers(error, [(b"x-m", b"v")]))
    assert parsed is not None
    assert (parsed.code, parsed.message) == (Code.PERMISSION_DENIED, "nope ☺")
    assert parsed.details == error.details
    assert parsed.metadata == [("x-m", "v")]
    assert grpc_status_error([(b"grpc-status", b"0")]) is None
    with pytest.raises(ConnectError):
        grpc_status_error([])


def test_grpc_trailers_only_response() -> None:
    headers = [
        (b"content-type", b"application/grpc"),
        *grpc_status_trailers(ConnectError(Code.NOT_FOUND, "none")),
    ]
    reader = GRPC.reader(spec(), 200, headers)
    with pytest.raises(ConnectError) as caught:
        reader.finish([])
    assert caught.value.code is Code.NOT_FOUND
    assert reader.headers == []


def test_grpc_web_messages_then_status_frame() -> None:
    headers = [(b"content-type", b"application/grpc-web+proto")]
    reader = GRPC_WEB.reader(spec(), 200, headers)
    body = encode_envelope(0, b"m1") + encode_envelope(
        0x80, grpc_web_trailer_block(grpc_status_trailers(None, [(b"x-t", b"1")]))
    )
    assert reader.feed(body[:3]) == []
    assert reader.feed(body[3:]) == [b"m1"]
    assert reader.finish([]) == ([], [(b"x-t", b"1")])


def test_connect_stream_gives_messages_before_the_error() -> None:
    stream_method = describe_service(Service).methods[1]
    stream_spec = CallSpec(method=stream_method, codec="proto", path="")
    reader = CONNECT.reader(stream_spec, 200, [(b"content-type", b"application/connect+proto")])
    end = connect_end_stream_json(ConnectError(Code.DATA_LOSS, "lost"), {})
    body = encode_envelope(0, b"a") + encode_envelope(FLAG_END_STREAM, end)
    assert reader.feed(body) == [b"a"]
    with pytest.raises(ConnectError) as caught:
        reader.finish([])
    assert caught.value.code is Code.DATA_LOSS


def test_connect_unary_error_status() -> None:
    body = connect_error_json(ConnectError(Code.ALREADY_EXISTS, "dup"))
    reader = CONNECT.reader(spec(), 409, [(b"content-type", b"application/json")])
    reader.feed(body)
    with pytest.raises(ConnectError) as caught:
        reader.finish([])
    assert (caught.value.code, caught.value.message) == (Code.ALREADY_EXISTS, "dup")
