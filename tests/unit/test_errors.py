"""ConnectError, its details and metadata, and their Connect wire form."""

from __future__ import annotations

import base64
import json

import pytest
from google.protobuf import any_pb2, struct_pb2, wrappers_pb2

from connectpy import Code, ConnectError, ErrorDetail
from connectpy._server.protocol.connect import connect_error_json, connect_http_status

# The table the conformance suite enforces (conformance brief, section 8).
HTTP_STATUS = {
    "canceled": 499,
    "unknown": 500,
    "invalid_argument": 400,
    "deadline_exceeded": 504,
    "not_found": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "resource_exhausted": 429,
    "failed_precondition": 400,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "data_loss": 500,
    "unauthenticated": 401,
}


def test_code_values_and_numbers() -> None:
    assert [code.value for code in Code] == list(HTTP_STATUS)
    assert [code.number for code in Code] == list(range(1, 17))
    assert Code.from_number(5) is Code.NOT_FOUND
    assert Code.from_number(0) is Code.UNKNOWN
    assert Code.from_number(17) is Code.UNKNOWN


@pytest.mark.parametrize("code", list(Code), ids=lambda c: c.value)
def test_http_status(code: Code) -> None:
    assert connect_http_status(code) == HTTP_STATUS[code.value]


def test_message_and_str() -> None:
    error = ConnectError(Code.NOT_FOUND, "no such book")
    assert error.code is Code.NOT_FOUND
    assert error.message == "no such book"
    assert str(error) == "not_found: no such book"
    assert str(ConnectError(Code.INTERNAL)) == "internal"
    assert ConnectError(Code.INTERNAL).message == ""
    assert isinstance(error, Exception)


def test_detail_from_protobuf_message() -> None:
    value = wrappers_pb2.StringValue(value="detail")
    error = ConnectError(Code.INVALID_ARGUMENT, "bad", details=[value])
    assert error.details == [ErrorDetail("google.protobuf.StringValue", value.SerializeToString())]


def test_detail_from_any_is_unpacked() -> None:
    packed = any_pb2.Any()
    packed.Pack(wrappers_pb2.Int32Value(value=7))
    detail = ErrorDetail.from_message(packed)
    assert detail.type_name == "google.protobuf.Int32Value"
    assert detail.value == wrappers_pb2.Int32Value(value=7).SerializeToString()


def test_detail_passthrough_and_to_any() -> None:
    detail = ErrorDetail("acme.v1.Problem", b"\x08\x01")
    error = ConnectError(Code.ABORTED, details=[detail, struct_pb2.Value(bool_value=True)])
    assert error.details[0] is detail
    assert error.details[1].type_name == "google.protobuf.Value"
    as_any = detail.to_any()
    assert as_any.type_url == "type.googleapis.com/acme.v1.Problem"
    assert as_any.value == b"\x08\x01"
    unpacked = wrappers_pb2.StringValue()
    assert ErrorDetail.from_message(wrappers_pb2.StringValue(value="x")).to_any().Unpack(unpacked)
    assert unpacked.value == "x"


def test_metadata_is_lowercased_and_flattened() -> None:
    error = ConnectError(Code.UNAVAILABLE, metadata={"X-Retry": "1", "X-Multi": ["a", "b"]})
    assert error.metadata == [("x-retry", "1"), ("x-multi", "a"), ("x-multi", "b")]
    assert ConnectError(Code.UNAVAILABLE).metadata == []


def test_error_json_minimal() -> None:
    assert json.loads(connect_error_json(ConnectError(Code.INTERNAL))) == {"code": "internal"}


def test_error_json_with_message_and_details() -> None:
    value = wrappers_pb2.StringValue(value="detail")  # 8 bytes: padded base64 ends in "="
    padded = base64.b64encode(value.SerializeToString()).decode()
    assert padded.endswith("=")
    body = connect_error_json(ConnectError(Code.NOT_FOUND, "gone", details=[value]))
    assert json.loads(body) == {
        "code": "not_found",
        "message": "gone",
        "details": [{"type": "google.protobuf.StringValue", "value": padded.rstrip("=")}],
    }


def test_error_json_has_no_duplicate_or_extra_keys() -> None:
    body = connect_error_json(ConnectError(Code.ABORTED, "x", metadata={"k": "v"}))
    pairs = json.loads(body, object_pairs_hook=list)
    assert pairs == [("code", "aborted"), ("message", "x")]
