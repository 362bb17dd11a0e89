"""Connect unary with ``application/proto``, in process: protobuf well-known types (the proto
codec on its own) and Pydantic models (through the runtime-built schema)."""

from __future__ import annotations

import gzip
import struct

import httpx
import pytest
from google.protobuf import struct_pb2, wrappers_pb2

from connectpy import ASGIApp, Code, ConnectError, IdempotencyLevel, Message, rpc

pytestmark = pytest.mark.anyio

PROTO = {"content-type": "application/proto"}
JSON = {"content-type": "application/json"}


def client_for(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")  # type: ignore[arg-type]


# --- a minimal protobuf wire reader, so expectations don't depend on the code under test -------


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[offset]
        offset += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, offset


def wire_fields(data: bytes) -> dict[int, int | bytes]:
    """Field number to raw value: varints as int, fixed64/32 and length-delimited as bytes."""
    fields: dict[int, int | bytes] = {}
    offset = 0
    while offset < len(data):
        key, offset = _varint(data, offset)
        number, wire_type = key >> 3, key & 7
        value: int | bytes
        if wire_type == 0:
            value, offset = _varint(data, offset)
        elif wire_type == 1:
            value, offset = data[offset : offset + 8], offset + 8
        elif wire_type == 2:
            length, offset = _varint(data, offset)
            value, offset = data[offset : offset + length], offset + length
        elif wire_type == 5:
            value, offset = data[offset : offset + 4], offset + 4
        else:  # pragma: no cover - groups never appear here
            raise AssertionError(f"unexpected wire type {wire_type}")
        fields[number] = value
    return fields


def test_wire_reader_self_check() -> None:
    data = wrappers_pb2.StringValue(value="abc").SerializeToString()
    assert wire_fields(data) == {1: b"abc"}
    assert wire_fields(wrappers_pb2.Int64Value(value=300).SerializeToString()) == {1: 300}


# --- protobuf well-known types --------------------------------------------------------------


class WellKnown:
    async def upper(self, request: wrappers_pb2.StringValue) -> wrappers_pb2.StringValue:
        if not request.value:
            raise ConnectError(
                Code.INVALID_ARGUMENT, "empty", details=[wrappers_pb2.StringValue(value="why")]
            )
        return wrappers_pb2.StringValue(value=request.value.upper())

    @rpc(idempotency=IdempotencyLevel.NO_SIDE_EFFECTS)
    async def keys(self, request: struct_pb2.Struct) -> struct_pb2.ListValue:
        result = struct_pb2.ListValue()
        result.extend(sorted(request.fields))
        return result

    async def add_one(self, request: wrappers_pb2.Int64Value) -> wrappers_pb2.Int64Value:
        return wrappers_pb2.Int64Value(value=request.value + 1)


@pytest.fixture(scope="module")
def wkt_app() -> ASGIApp:
    app = ASGIApp(package="wkt.v1")
    app.mount(WellKnown())
    return app


async def test_protobuf_binary(wkt_app: ASGIApp) -> None:
    body = wrappers_pb2.StringValue(value="shout").SerializeToString()
    async with client_for(wkt_app) as client:
        response = await client.post("/wkt.v1.WellKnown/Upper", headers=PROTO, content=body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/proto"
    assert wrappers_pb2.StringValue.FromString(response.content).value == "SHOUT"


async def test_protobuf_json_mapping(wkt_app: ASGIApp) -> None:
    # A wrapper's proto3 JSON form is the bare value.
    async with client_for(wkt_app) as client:
        response = await client.post("/wkt.v1.WellKnown/Upper", headers=JSON, content=b'"shout"')
    assert response.status_code == 200
    assert response.json() == "SHOUT"


async def test_protobuf_int64_json_is_a_string(wkt_app: ASGIApp) -> None:
    async with client_for(wkt_app) as client:
        response = await client.post(
            "/wkt.v1.WellKnown/AddOne", headers=JSON, content=b'"9223372036854775806"'
        )
    assert response.status_code == 200
    assert response.json() == "9223372036854775807"


async def test_protobuf_struct_binary(wkt_app: ASGIApp) -> None:
    request = struct_pb2.Struct()
    request.update({"b": 1, "a": "x", "c": [True]})
    async with client_for(wkt_app) as client:
        response = await client.post(
            "/wkt.v1.WellKnown/Keys", headers=PROTO, content=request.SerializeToString()
        )
    assert response.status_code == 200
    result = struct_pb2.ListValue.FromString(response.content)
    assert [v.string_value for v in result.values] == ["a", "b", "c"]


async def test_protobuf_get_with_base64_proto(wkt_app: ASGIApp) -> None:
    import base64

    request = struct_pb2.Struct()
    request.update({"z": 1, "y": 2})
    message = base64.urlsafe_b64encode(request.SerializeToString()).decode().rstrip("=")
    async with client_for(wkt_app) as client:
        response = await client.get(
            f"/wkt.v1.WellKnown/Keys?encoding=proto&base64=1&message={message}"
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/proto"
    result = struct_pb2.ListValue.FromString(response.content)
    assert [v.string_value for v in result.values] == ["y", "z"]


async def test_protobuf_error_is_json_even_for_proto_requests(wkt_app: ASGIApp) -> None:
    async with client_for(wkt_app) as client:
        response = await client.post("/wkt.v1.WellKnown/Upper", headers=PROTO, content=b"")
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "code": "invalid_argument",
        "message": "empty",
        "details": [{"type": "google.protobuf.StringValue", "value": "CgN3aHk"}],
    }


@pytest.mark.parametrize(
    "body", [b"\xff\xff\xff", b"\x0a\x10short", b"\x0b"], ids=["bad-tag", "truncated", "group"]
)
async def test_malformed_protobuf_is_invalid_argument(wkt_app: ASGIApp, body: bytes) -> None:
    async with client_for(wkt_app) as client:
        response = await client.post("/wkt.v1.WellKnown/Upper", headers=PROTO, content=body)
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_argument"
        ok = await client.post(
            "/wkt.v1.WellKnown/Upper",
            headers=PROTO,
            content=wrappers_pb2.StringValue(value="a").SerializeToString(),
        )
        assert ok.status_code == 200


async def test_protobuf_gzip_both_ways(wkt_app: ASGIApp) -> None:
    text = "abc " * 500
    body = gzip.compress(wrappers_pb2.StringValue(value=text).SerializeToString())
    async with client_for(wkt_app) as client:
        response = await client.post(
            "/wkt.v1.WellKnown/Upper",
            headers={**PROTO, "content-encoding": "gzip", "accept-encoding": "gzip"},
            content=body,
        )
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    # httpx has already inflated the body.
    assert wrappers_pb2.StringValue.FromString(response.content).value == text.upper()


# --- Pydantic models over application/proto -------------------------------------------------


async def test_option3_over_proto(option3_app: ASGIApp) -> None:
    body = b"\x0a\x03123"  # BookRequest{id: "123"}: field 1, length-delimited
    async with client_for(option3_app) as client:
        response = await client.post("/BookService/GetBook", headers=PROTO, content=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/proto"
    fields = wire_fields(response.content)
    assert fields == {
        1: b"123",
        2: b"Book 123",
        3: b"Author Name",
        4: struct.pack("<d", 29.99),
    }


class Counts(Message):
    name: str
    count: int = 0
    flag: bool = False
    tags: list[str] = []


class CountService:
    async def bump(self, request: Counts) -> Counts:
        return Counts(
            name=request.name, count=request.count + 1, flag=not request.flag, tags=request.tags
        )


@pytest.fixture(scope="module")
def counts_app() -> ASGIApp:
    app = ASGIApp()
    app.mount(CountService())
    return app


async def test_pydantic_proto_scalars_and_repeated(counts_app: ASGIApp) -> None:
    # name=1 "n", count=2 41, flag=3 false (omitted), tags=4 ["x", "y"]
    body = b"\x0a\x01n" + b"\x10\x29" + b"\x22\x01x" + b"\x22\x01y"
    async with client_for(counts_app) as client:
        response = await client.post("/CountService/Bump", headers=PROTO, content=body)
    assert response.status_code == 200, response.text
    assert response.content.startswith(b"\x0a\x01n")
    assert wire_fields(response.content)[2] == 42
    assert wire_fields(response.content)[3] == 1
    assert response.content.count(b"\x22\x01") == 2


async def test_pydantic_proto_empty_body_is_defaults(counts_app: ASGIApp) -> None:
    # Proto3 binary has no presence for scalars: an empty body is every field at its zero
    # value, so even `name` (required in Python) arrives as "".
    async with client_for(counts_app) as client:
        response = await client.post("/CountService/Bump", headers=PROTO, content=b"")
    assert response.status_code == 200, response.text
    assert wire_fields(response.content) == {2: 1, 3: 1}


async def test_pydantic_proto_malformed_is_invalid_argument(counts_app: ASGIApp) -> None:
    async with client_for(counts_app) as client:
        response = await client.post("/CountService/Bump", headers=PROTO, content=b"\x0a\x40short")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_argument"


async def test_pydantic_proto_and_json_agree(counts_app: ASGIApp) -> None:
    async with client_for(counts_app) as client:
        as_json = await client.post(
            "/CountService/Bump", json={"name": "n", "count": "41", "tags": ["x"]}
        )
        as_proto = await client.post(
            "/CountService/Bump", headers=PROTO, content=b"\x0a\x01n\x10\x29\x22\x01x"
        )
    assert as_json.status_code == as_proto.status_code == 200
    assert as_json.json() == {"name": "n", "count": "42", "flag": True, "tags": ["x"]}
    assert wire_fields(as_proto.content) == {1: b"n", 2: 42, 3: 1, 4: b"x"}
