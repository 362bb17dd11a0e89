"""Sans-IO pieces of the Connect protocol that servers and clients share: content types, the
error JSON and its HTTP statuses, the end-of-stream message and the GET query.

Spec: https://connectrpc.com/docs/protocol/
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from ..code import Code
from ..errors import ConnectError, ErrorDetail

__all__ = [
    "CONNECT_GET_CODECS",
    "CONNECT_STREAM_CODECS",
    "CONNECT_UNARY_CODECS",
    "connect_end_stream_json",
    "connect_error_json",
    "connect_error_object",
    "connect_get_query",
    "connect_http_status",
    "connect_parse_end_stream",
    "connect_parse_error",
    "connect_stream_content_type",
    "connect_unary_content_type",
]

CONNECT_UNARY_CODECS = {"application/proto": "proto", "application/json": "json"}
CONNECT_STREAM_CODECS = {"application/connect+proto": "proto", "application/connect+json": "json"}
CONNECT_GET_CODECS = {"proto": "proto", "json": "json"}
"""Content type (or GET ``encoding``) to codec name."""


def connect_unary_content_type(codec: str) -> str:
    return f"application/{codec}"


def connect_stream_content_type(codec: str) -> str:
    return f"application/connect+{codec}"


_HTTP_STATUS = {
    Code.CANCELED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}


def connect_http_status(code: Code) -> int:
    """The HTTP status a Connect unary error is sent with."""
    return _HTTP_STATUS[code]


def _unpadded_b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _b64_any(text: str) -> bytes:
    """Standard or URL-safe base64, padded or not (peers send all four)."""
    text = text.strip().rstrip("=").translate(_URLSAFE_TO_STANDARD)
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")


def connect_error_object(error: ConnectError) -> dict[str, Any]:
    """The Connect error as a JSON object: ``{"code", "message"?, "details"?}``."""
    body: dict[str, Any] = {"code": error.code.value}
    if error.message:
        body["message"] = error.message
    if error.details:
        body["details"] = [
            {"type": d.type_name, "value": _unpadded_b64(d.value)} for d in error.details
        ]
    return body


def connect_error_json(error: ConnectError) -> bytes:
    """The Connect error JSON body: ``{"code", "message"?, "details"?}``."""
    return json.dumps(connect_error_object(error), separators=(",", ":")).encode()


def connect_end_stream_json(error: ConnectError | None, metadata: Mapping[str, list[str]]) -> bytes:
    """The payload of a stream's end-of-stream message."""
    end: dict[str, Any] = {}
    if error is not None:
        end["error"] = connect_error_object(error)
    if metadata:
        end["metadata"] = metadata
    return json.dumps(end, separators=(",", ":")).encode()


_CODES = {code.value: code for code in Code}


def _error_from_object(
    value: object, fallback: Code, metadata: Iterable[tuple[str, str]] = ()
) -> ConnectError:
    """A ``ConnectError`` from a parsed error object; what is malformed falls back."""
    if not isinstance(value, dict):
        return ConnectError(fallback, "malformed error: not a JSON object")
    code = (
        _CODES.get(value.get("code", ""), fallback)
        if isinstance(value.get("code"), str)
        else fallback
    )
    message = value.get("message")
    details: list[ErrorDetail] = []
    for item in value.get("details") or []:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            continue
        try:
            details.append(ErrorDetail(item["type"], _b64_any(str(item.get("value", "")))))
        except (binascii.Error, ValueError):
            continue
    error = ConnectError(code, message if isinstance(message, str) else "", details=details)
    error.metadata = list(metadata)
    return error


def connect_parse_error(
    status: int, body: bytes, metadata: Iterable[tuple[str, str]] = ()
) -> ConnectError:
    """The error a unary response with a non-200 status carries.

    The code comes from the JSON body, or else from the HTTP status (a proxy's error page).
    """
    fallback = Code.from_http_status(status)
    try:
        value = json.loads(body)
    except ValueError:
        error = ConnectError(fallback, f"HTTP status {status}")
        error.metadata = list(metadata)
        return error
    if not isinstance(value, dict):
        error = ConnectError(fallback, f"HTTP status {status}")
        error.metadata = list(metadata)
        return error
    return _error_from_object(value, fallback, metadata)


def connect_parse_end_stream(data: bytes) -> tuple[ConnectError | None, list[tuple[str, str]]]:
    """The error (if any) and trailers of an end-of-stream message.

    Raises:
        ConnectError: ``internal`` when the message is not the JSON the spec describes.
    """
    try:
        value = json.loads(data or b"{}")
    except ValueError as exc:
        raise ConnectError(Code.INTERNAL, f"protocol error: invalid end-of-stream: {exc}") from None
    if not isinstance(value, dict):
        raise ConnectError(Code.INTERNAL, "protocol error: end-of-stream is not a JSON object")
    trailers: list[tuple[str, str]] = []
    metadata = value.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ConnectError(Code.INTERNAL, "protocol error: end-of-stream metadata is not an object")
    for name, values in metadata.items():
        for item in values if isinstance(values, list) else [values]:
            trailers.append((str(name).lower(), str(item)))
    if "error" not in value or value["error"] is None:
        return None, trailers
    return _error_from_object(value["error"], Code.UNKNOWN, trailers), trailers


def connect_get_query(codec: str, message: bytes, compression: str | None) -> str:
    """The query string of a Connect GET: the message in URL-safe base64 when binary."""
    params = [("connect", "v1"), ("encoding", codec)]
    if codec == "json" and compression is None:
        params.append(("message", message.decode()))
    else:
        params.append(("base64", "1"))
        text = base64.urlsafe_b64encode(message).decode().rstrip("=")
        params.append(("message", text))
    if compression is not None:
        params.append(("compression", compression))
    return urlencode(params)
