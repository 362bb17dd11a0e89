"""Sans-IO pieces of gRPC and gRPC-Web: status trailers, ``grpc-message`` percent-encoding,
``grpc-status-details-bin``, binary metadata and the gRPC-Web trailer block.

Specs: https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md and ``PROTOCOL-WEB.md``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Any

from .._model.grpc_protos import RPC_STATUS
from ..code import Code
from ..errors import ConnectError, ErrorDetail
from .compression import IDENTITY, Compression, negotiate_response

__all__ = [
    "GRPC_WEB_TRAILERS_FLAG",
    "Base64Decoder",
    "grpc_decode_binary",
    "grpc_decode_status_details",
    "grpc_encode_binary",
    "grpc_encode_metadata",
    "grpc_negotiate_response",
    "grpc_percent_decode",
    "grpc_percent_encode",
    "grpc_status_details",
    "grpc_status_trailers",
    "grpc_web_parse_trailer_block",
    "grpc_web_trailer_block",
]

GRPC_WEB_TRAILERS_FLAG = 0x80
"""The envelope flag of gRPC-Web's final body frame, which carries the trailers."""

Headers = list[tuple[bytes, bytes]]


def grpc_percent_encode(message: str) -> str:
    """``grpc-message``: UTF-8, with bytes outside 0x20..0x7E and ``%`` written as ``%XX``.

    Leading and trailing spaces are encoded too: HTTP servers strip header values, which would
    silently change the message.
    """
    raw = message.encode()
    out = []
    last = len(raw) - 1
    for index, byte in enumerate(raw):
        edge_space = byte == 0x20 and index in (0, last)
        if byte < 0x20 or byte > 0x7E or byte == 0x25 or edge_space:
            out.append(f"%{byte:02X}")
        else:
            out.append(chr(byte))
    return "".join(out)


def grpc_percent_decode(value: str) -> str:
    """The message from a ``grpc-message`` value; a malformed ``%`` escape is kept as is."""
    raw = value.encode("utf-8", "surrogateescape")
    out = bytearray()
    index = 0
    while index < len(raw):
        byte = raw[index]
        if byte == 0x25 and index + 2 < len(raw) and _is_hex(raw[index + 1 : index + 3]):
            out.append(int(raw[index + 1 : index + 3], 16))
            index += 3
        else:
            out.append(byte)
            index += 1
    return out.decode("utf-8", "replace")


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair)


def grpc_encode_binary(value: bytes) -> str:
    """A ``-bin`` metadata value: standard base64 without padding (what gRPC sends)."""
    return base64.b64encode(value).decode().rstrip("=")


def grpc_decode_binary(value: str) -> bytes:
    """Bytes from a ``-bin`` metadata value, padded or not.

    Raises:
        ValueError: the value is not base64.
    """
    value = value.strip().rstrip("=")
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"invalid base64 in binary metadata: {exc}") from None


def grpc_encode_metadata(pairs: Iterable[tuple[bytes, bytes]]) -> Headers:
    """Header pairs as gRPC sends them: ``-bin`` values lose their base64 padding."""
    return [
        (name, value.rstrip(b"=") if name.endswith(b"-bin") else value) for name, value in pairs
    ]


# google.rpc.Status from connectpy's private pool: adding it to protobuf's default pool would
# clash with googleapis-common-protos if the app imports it.
_Status: Any = RPC_STATUS.messages["Status"]


def grpc_status_details(error: ConnectError) -> bytes:
    """The serialized ``google.rpc.Status`` for ``grpc-status-details-bin``."""
    status = _Status(code=error.code.number, message=error.message)
    for detail in error.details:
        status.details.add(type_url=f"type.googleapis.com/{detail.type_name}", value=detail.value)
    data: bytes = status.SerializeToString()
    return data


def grpc_decode_status_details(data: bytes) -> tuple[int, str, list[ErrorDetail]]:
    """Code number, message and details from a serialized ``google.rpc.Status``."""
    status = _Status.FromString(data)
    details = [ErrorDetail(d.type_url.rpartition("/")[2], d.value) for d in status.details]
    return status.code, status.message, details


_STATUS_OK = (b"grpc-status", b"0")


def grpc_status_trailers(
    error: ConnectError | None, metadata: Iterable[tuple[bytes, bytes]] = ()
) -> Headers:
    """The trailers that end a call: custom ``metadata`` and, with an error, its metadata,
    then ``grpc-status``, ``grpc-message`` and ``grpc-status-details-bin``."""
    if error is None and not metadata:
        return [_STATUS_OK]  # most calls
    trailers = grpc_encode_metadata(metadata)
    if error is None:
        trailers.append(_STATUS_OK)
        return trailers
    trailers += grpc_encode_metadata((k.encode(), v.encode()) for k, v in error.metadata)
    trailers.append((b"grpc-status", str(error.code.number).encode()))
    if error.message:
        trailers.append((b"grpc-message", grpc_percent_encode(error.message).encode()))
    if error.details:
        details = grpc_encode_binary(grpc_status_details(error)).encode()
        trailers.append((b"grpc-status-details-bin", details))
    return trailers


def grpc_web_trailer_block(trailers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The payload of gRPC-Web's trailers frame: ``name: value`` lines, lower-case names, CRLF
    after every line, no blank line."""
    return b"".join(name.lower() + b": " + value + b"\r\n" for name, value in trailers)


def grpc_web_parse_trailer_block(block: bytes) -> Headers:
    """The trailers in a gRPC-Web trailers frame (names lower-cased).

    Raises:
        ConnectError: ``internal`` on a line without a colon.
    """
    trailers: Headers = []
    for line in block.split(b"\r\n"):
        if not line.strip():
            continue
        name, colon, value = line.partition(b":")
        if not colon:
            raise ConnectError(
                Code.INTERNAL, f"protocol error: invalid gRPC-Web trailer line {line!r}"
            )
        trailers.append((name.strip().lower(), value.strip()))
    return trailers


def grpc_negotiate_response(accept: str | None, request: Compression) -> Compression:
    """The response compression: the request's own when it was compressed (a client that
    compresses can decompress the same), else the first supported name in
    ``grpc-accept-encoding`` (identity when the client names none we have)."""
    if request is not IDENTITY:
        return request
    return negotiate_response(accept, IDENTITY)


class Base64Decoder:
    """Decodes ``application/grpc-web-text`` bodies, which arrive in arbitrary chunks and may be
    several padded base64 strings one after another (one per message).

    Raises ``invalid_argument`` on bad input or a truncated end.
    """

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        """Decode every complete 4-character group seen so far."""
        data = self._pending + b"".join(data.split())
        usable = len(data) - len(data) % 4
        self._pending = data[usable:]
        chunk = data[:usable]
        try:
            if b"=" not in chunk[:-2]:  # the common case: padding only at the very end
                return base64.b64decode(chunk, validate=True)
            groups = (chunk[i : i + 4] for i in range(0, len(chunk), 4))
            return b"".join(base64.b64decode(group, validate=True) for group in groups)
        except binascii.Error as exc:
            raise ConnectError(
                Code.INVALID_ARGUMENT, f"invalid grpc-web-text body: {exc}"
            ) from None

    def close(self) -> None:
        """Check that the body ended on a group boundary."""
        if self._pending:
            raise ConnectError(Code.INVALID_ARGUMENT, "grpc-web-text body ended mid base64 group")
