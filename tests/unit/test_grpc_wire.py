"""The sans-IO parts of gRPC and gRPC-Web: status trailers, percent-encoding, details, timeouts."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest
from google.protobuf import any_pb2, wrappers_pb2

from connectpy import Code, ConnectError
from connectpy._wire.compression import COMPRESSIONS, IDENTITY
from connectpy._wire.deadline import format_grpc_timeout, parse_grpc_timeout
from connectpy._wire.grpc import (
    Base64Decoder,
    grpc_decode_binary,
    grpc_decode_status_details,
    grpc_encode_binary,
    grpc_encode_metadata,
    grpc_negotiate_response,
    grpc_percent_decode,
    grpc_percent_encode,
    grpc_status_details,
    grpc_status_trailers,
    grpc_web_trailer_block,
)

CONFORMANCE_MESSAGE = "\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\n"


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, offset


def parse_status(data: bytes) -> tuple[int, str, list[any_pb2.Any]]:
    """google.rpc.Status decoded by hand from the wire format, independently of connectpy:
    code (1, varint), message (2, string), details (3, repeated Any)."""
    code, message, details = 0, "", []
    offset = 0
    while offset < len(data):
        key, offset = _read_varint(data, offset)
        if key == (1 << 3 | 0):
            code, offset = _read_varint(data, offset)
            continue
        assert key & 7 == 2, f"unexpected wire type in key {key}"
        size, offset = _read_varint(data, offset)
        chunk, offset = data[offset : offset + size], offset + size
        if key >> 3 == 2:
            message = chunk.decode()
        elif key >> 3 == 3:
            details.append(any_pb2.Any.FromString(chunk))
    return code, message, details


# --- grpc-message --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "encoded"),
    [
        ("", ""),
        ("plain ascii: ok!", "plain ascii: ok!"),
        ("100%", "100%25"),
        ("a\nb\r\tc", "a%0Ab%0D%09c"),
        ("☺", "%E2%98%BA"),
        ("😈", "%F0%9F%98%88"),
        ("~\x7f", "~%7F"),
        (" padded ", "%20padded%20"),
    ],
)
def test_percent_encode(message: str, encoded: str) -> None:
    assert grpc_percent_encode(message) == encoded
    assert grpc_percent_decode(encoded) == message


def test_percent_encoding_round_trips_the_conformance_message() -> None:
    encoded = grpc_percent_encode(CONFORMANCE_MESSAGE)
    assert all(0x20 <= ord(c) <= 0x7E for c in encoded)
    assert "\n" not in encoded
    assert grpc_percent_decode(encoded) == CONFORMANCE_MESSAGE


@pytest.mark.parametrize("value", ["50%", "%zz", "%4", "%"])
def test_percent_decode_keeps_malformed_escapes(value: str) -> None:
    assert grpc_percent_decode(value) == value


def test_percent_decode_is_case_insensitive() -> None:
    assert grpc_percent_decode("%e2%98%ba") == "☺"


# --- grpc-status-details-bin ---------------------------------------------------------------


def test_status_details_encode_code_message_and_details_in_order() -> None:
    error = ConnectError(
        Code.FAILED_PRECONDITION,
        CONFORMANCE_MESSAGE,
        details=[wrappers_pb2.StringValue(value="first"), wrappers_pb2.Int32Value(value=2)],
    )
    code, message, details = parse_status(grpc_status_details(error))
    assert code == 9
    assert message == CONFORMANCE_MESSAGE
    assert [d.type_url for d in details] == [
        "type.googleapis.com/google.protobuf.StringValue",
        "type.googleapis.com/google.protobuf.Int32Value",
    ]
    first = wrappers_pb2.StringValue()
    assert details[0].Unpack(first)
    assert first.value == "first"


def test_status_details_round_trip() -> None:
    error = ConnectError(Code.NOT_FOUND, "gone", details=[wrappers_pb2.StringValue(value="x")])
    number, message, details = grpc_decode_status_details(grpc_status_details(error))
    assert (number, message) == (5, "gone")
    assert details == error.details


def test_status_class_stays_out_of_the_default_pool() -> None:
    # In a fresh interpreter: other test modules import googleapis-common-protos, which does
    # register google.rpc.Status there. connectpy must not, or it would clash with that package.
    check = (
        "from google.protobuf import descriptor_pool\n"
        "from connectpy import Code, ConnectError\n"
        "from connectpy._wire.grpc import grpc_status_details\n"
        "grpc_status_details(ConnectError(Code.INTERNAL, 'x'))\n"
        "try:\n"
        "    descriptor_pool.Default().FindMessageTypeByName('google.rpc.Status')\n"
        "except KeyError:\n"
        "    raise SystemExit(0)\n"
        "raise SystemExit('google.rpc.Status is in the default pool')\n"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()


# --- status trailers -----------------------------------------------------------------------


def test_ok_trailers_are_status_zero_without_message() -> None:
    trailers = grpc_status_trailers(None, [(b"x-custom", b"v")])
    assert trailers == [(b"x-custom", b"v"), (b"grpc-status", b"0")]


def test_error_trailers() -> None:
    error = ConnectError(
        Code.RESOURCE_EXHAUSTED,
        "too big: 100%",
        details=[wrappers_pb2.StringValue(value="d")],
        metadata={"x-error": "e", "x-trace-bin": base64.b64encode(b"\x00\x01").decode()},
    )
    trailers = dict(grpc_status_trailers(error, [(b"x-handler", b"h")]))
    assert trailers[b"grpc-status"] == b"8"
    assert trailers[b"grpc-message"] == b"too big: 100%25"
    assert trailers[b"x-handler"] == b"h"
    assert trailers[b"x-error"] == b"e"
    assert trailers[b"x-trace-bin"] == b"AAE"  # unpadded
    details_bin = trailers[b"grpc-status-details-bin"]
    assert not details_bin.endswith(b"=")
    code, message, details = parse_status(grpc_decode_binary(details_bin.decode()))
    assert (code, message, len(details)) == (8, "too big: 100%", 1)


def test_error_without_message_or_details_sends_only_the_status() -> None:
    trailers = grpc_status_trailers(ConnectError(Code.UNAVAILABLE))
    assert trailers == [(b"grpc-status", b"14")]


def test_every_code_has_its_grpc_number() -> None:
    numbers = [int(dict(grpc_status_trailers(ConnectError(code)))[b"grpc-status"]) for code in Code]
    assert numbers == list(range(1, 17))


# --- binary metadata -----------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"\x00", b"\x00\x01", b"\xff\xfe\xfd", b"hello world"])
def test_binary_metadata_round_trip(raw: bytes) -> None:
    encoded = grpc_encode_binary(raw)
    assert "=" not in encoded
    assert grpc_decode_binary(encoded) == raw
    assert grpc_decode_binary(base64.b64encode(raw).decode()) == raw  # padded too


def test_binary_metadata_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="base64"):
        grpc_decode_binary("not base64!")


def test_encode_metadata_strips_padding_only_from_bin_headers() -> None:
    pairs = [(b"a-bin", b"AA=="), (b"plain", b"x==")]
    assert grpc_encode_metadata(pairs) == [(b"a-bin", b"AA"), (b"plain", b"x==")]


# --- gRPC-Web ------------------------------------------------------------------------------


def test_web_trailer_block_is_lower_case_crlf_lines() -> None:
    block = grpc_web_trailer_block([(b"Grpc-Status", b"0"), (b"x-a", b"1"), (b"x-a", b"2")])
    assert block == b"grpc-status: 0\r\nx-a: 1\r\nx-a: 2\r\n"
    assert b"\r\n\r\n" not in block


def test_base64_decoder_handles_chunks_and_concatenated_padded_strings() -> None:
    body = base64.b64encode(b"first") + base64.b64encode(b"second!") + base64.b64encode(b"3")
    decoder = Base64Decoder()
    out = b"".join(decoder.feed(body[i : i + 3]) for i in range(0, len(body), 3))
    decoder.close()
    assert out == b"firstsecond!3"


def test_base64_decoder_rejects_truncation_and_garbage() -> None:
    decoder = Base64Decoder()
    decoder.feed(b"QUJD" + b"QQ")
    with pytest.raises(ConnectError) as truncated:
        decoder.close()
    assert truncated.value.code is Code.INVALID_ARGUMENT
    with pytest.raises(ConnectError) as garbage:
        Base64Decoder().feed(b"!!!!")
    assert garbage.value.code is Code.INVALID_ARGUMENT


# --- compression negotiation ---------------------------------------------------------------


def test_response_uses_the_request_compression() -> None:
    gzip = COMPRESSIONS["gzip"]
    assert grpc_negotiate_response("identity,deflate,gzip", gzip) is gzip
    assert grpc_negotiate_response(None, gzip) is gzip


def test_uncompressed_request_gets_the_first_supported_accepted_encoding() -> None:
    assert grpc_negotiate_response(None, IDENTITY) is IDENTITY
    assert grpc_negotiate_response("identity,gzip", IDENTITY) is IDENTITY
    assert grpc_negotiate_response("snappy, gzip", IDENTITY) is COMPRESSIONS["gzip"]
    assert grpc_negotiate_response("snappy", IDENTITY) is IDENTITY


# --- grpc-timeout --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "milliseconds"),
    [
        ("1H", 3_600_000),
        ("2M", 120_000),
        ("3S", 3000),
        ("250m", 250),
        ("1500u", 2),  # rounded up: never a shorter deadline than the client's
        ("1n", 1),
        ("0m", 0),
        ("99999999m", 99_999_999),
    ],
)
def test_parse_grpc_timeout(header: str, milliseconds: int) -> None:
    assert parse_grpc_timeout(header) == milliseconds


def test_absent_grpc_timeout_is_none() -> None:
    assert parse_grpc_timeout(None) is None


@pytest.mark.parametrize("header", ["", "S", "10", "10x", "123456789S", "-1S", "1.5S", "\uff11S"])
def test_invalid_grpc_timeout(header: str) -> None:
    with pytest.raises(ConnectError) as caught:
        parse_grpc_timeout(header)
    assert caught.value.code is Code.INVALID_ARGUMENT


@pytest.mark.parametrize("milliseconds", [0, 1, 999, 99_999_999, 100_000_000, 10**12])
def test_format_grpc_timeout_round_trips_within_limits(milliseconds: int) -> None:
    header = format_grpc_timeout(milliseconds)
    assert len(header) <= 9
    parsed = parse_grpc_timeout(header)
    assert parsed is not None
    assert parsed <= milliseconds
