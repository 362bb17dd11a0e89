"""The Connect protocol, client side: unary POST and GET, and enveloped streams.

The wire format itself (content types, error JSON, end-of-stream, GET query) is shared with
the server in :mod:`connectpy._wire.connect`.
"""

from __future__ import annotations

from .._wire import compression as _compression
from .._wire.compression import IDENTITY, Compression
from .._wire.connect import (
    CONNECT_STREAM_CODECS,
    CONNECT_UNARY_CODECS,
    connect_get_query,
    connect_parse_end_stream,
    connect_parse_error,
    connect_stream_content_type,
    connect_unary_content_type,
)
from .._wire.deadline import format_connect_timeout
from .._wire.envelope import FLAG_COMPRESSED, FLAG_END_STREAM, EnvelopeReader
from ..code import Code
from ..errors import ConnectError
from ._http import Headers
from ._spec import USER_AGENT, CallSpec, ResponseReader, envelope_message

__all__ = ["CONNECT", "header", "metadata_pairs"]

_TRAILER_PREFIX = b"trailer-"
_PROTOCOL_HEADERS = frozenset(
    (b"content-type", b"content-length", b"content-encoding", b"date", b"server")
)


def header(headers: Headers, name: bytes) -> str | None:
    """The first value of a header (names are lower-case on the wire we read)."""
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def metadata_pairs(headers: Headers) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]


def _content_type_code(content_type: str, family: dict[str, str]) -> Code:
    """A response of the protocol in the wrong codec is the server's bug (``internal``);
    anything else (a proxy's page) is ``unknown``."""
    return Code.INTERNAL if content_type in family else Code.UNKNOWN


def _response_compression(name: str | None) -> Compression:
    try:
        return _compression.require(name)
    except ConnectError as exc:
        raise ConnectError(Code.INTERNAL, f"protocol error: {exc.message}") from None


def _common_headers(spec: CallSpec) -> Headers:
    headers: Headers = [(b"user-agent", USER_AGENT)]
    if spec.timeout_ms is not None:
        headers.append((b"connect-timeout-ms", format_connect_timeout(spec.timeout_ms).encode()))
    return headers + spec.headers


class _UnaryReader:
    """A unary response: the whole body is the message (or, with an error status, the error)."""

    def __init__(self, spec: CallSpec, status: int, headers: Headers) -> None:
        self.status = status
        self.headers = [(k, v) for k, v in headers if not k.startswith(_TRAILER_PREFIX)]
        self.trailers = [
            (k[len(_TRAILER_PREFIX) :], v) for k, v in headers if k.startswith(_TRAILER_PREFIX)
        ]
        self._spec = spec
        self._body = bytearray()
        self._compression = _response_compression(header(headers, b"content-encoding"))
        if status == 200:
            content_type = (header(headers, b"content-type") or "").split(";")[0].strip().lower()
            if content_type != connect_unary_content_type(spec.codec):
                raise ConnectError(
                    _content_type_code(content_type, CONNECT_UNARY_CODECS),
                    f"invalid content-type {content_type!r} for a {spec.codec} response",
                    metadata=_as_mapping(self.trailers),
                )

    def feed(self, chunk: bytes) -> list[bytes]:
        self._body += chunk
        # The limit applies to the body on the wire as well, so a huge response stops early.
        if len(self._body) > self._spec.read_max_bytes and self._compression is IDENTITY:
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED,
                f"response is larger than the {self._spec.read_max_bytes}-byte limit",
            )
        return []

    def finish(self, trailers: Headers) -> tuple[list[bytes], Headers]:
        body = bytes(self._body)
        if body and self._compression is not IDENTITY:
            try:
                body = self._compression.decompress(body, self._spec.read_max_bytes)
            except ConnectError as exc:
                if exc.code is Code.RESOURCE_EXHAUSTED or self.status == 200:
                    raise
        if self.status != 200:
            # The error's metadata is every header and trailer (minus the protocol's own),
            # as the server sent them with it.
            metadata = [(k, v) for k, v in self.headers if k not in _PROTOCOL_HEADERS]
            raise connect_parse_error(self.status, body, metadata_pairs(metadata + self.trailers))
        return [body], self.trailers


def _as_mapping(pairs: Headers) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in metadata_pairs(pairs):
        out.setdefault(name, []).append(value)
    return out


class _StreamReader:
    """A streaming response: enveloped messages, then the end-of-stream message."""

    def __init__(self, spec: CallSpec, status: int, headers: Headers) -> None:
        self.headers = headers
        self._spec = spec
        self._envelopes = EnvelopeReader(spec.read_max_bytes)
        self.trailers: Headers = []
        self._error: ConnectError | None = None
        self._ended = False
        if status != 200:
            raise ConnectError(Code.from_http_status(status), f"HTTP status {status}")
        content_type = (header(headers, b"content-type") or "").split(";")[0].strip().lower()
        if content_type != connect_stream_content_type(spec.codec):
            raise ConnectError(
                _content_type_code(content_type, CONNECT_STREAM_CODECS),
                f"invalid content-type {content_type!r} for a {spec.codec} stream",
            )
        self._compression = _response_compression(header(headers, b"connect-content-encoding"))

    def feed(self, chunk: bytes) -> list[bytes]:
        messages: list[bytes] = []
        for flags, data in self._envelopes.feed(chunk):
            if self._ended:
                raise ConnectError(Code.INTERNAL, "protocol error: data after end-of-stream")
            if flags & FLAG_COMPRESSED:
                if self._compression is IDENTITY:
                    raise ConnectError(
                        Code.INTERNAL, "protocol error: compressed message without an encoding"
                    )
                data = self._compression.decompress(data, self._spec.read_max_bytes)
            if flags & FLAG_END_STREAM:
                self._ended = True
                # Raised by finish: the messages ahead of it in this chunk come first.
                self._error, trailers = connect_parse_end_stream(data)
                self.trailers = [(k.encode(), v.encode()) for k, v in trailers]
                continue
            messages.append(data)
        return messages

    def finish(self, trailers: Headers) -> tuple[list[bytes], Headers]:
        if not self._ended:
            raise ConnectError(
                Code.INTERNAL, "protocol error: the stream ended without end-of-stream"
            )
        if self._error is not None:
            raise self._error
        return [], self.trailers


class _Connect:
    """Connect: unary calls as plain POST (or GET), streams enveloped."""

    name = "connect"

    def request(
        self, spec: CallSpec, single: bytes | None
    ) -> tuple[str, str, Headers, bytes | None]:
        headers = _common_headers(spec)
        compression = spec.send_compression
        if spec.method.stream_type.client_streams or spec.method.stream_type.server_streams:
            headers += [
                (b"content-type", connect_stream_content_type(spec.codec).encode()),
                (b"connect-protocol-version", b"1"),
            ]
            if compression is not IDENTITY:
                headers.append((b"connect-content-encoding", compression.name.encode()))
            if spec.accept_compression:
                accept = ",".join(spec.accept_compression).encode()
                headers.append((b"connect-accept-encoding", accept))
            body = None if single is None else self.frame(spec, single)
            return "POST", spec.target, headers, body
        assert single is not None
        if spec.accept_compression:
            headers.append((b"accept-encoding", ",".join(spec.accept_compression).encode()))
        message = compression.compress(single) if compression is not IDENTITY else single
        if spec.use_get:
            name = None if compression is IDENTITY else compression.name
            query = connect_get_query(spec.codec, message, name)
            return "GET", f"{spec.target}?{query}", headers, b""
        headers += [
            (b"content-type", connect_unary_content_type(spec.codec).encode()),
            (b"connect-protocol-version", b"1"),
        ]
        if compression is not IDENTITY:
            headers.append((b"content-encoding", compression.name.encode()))
        return "POST", spec.target, headers, message

    def frame(self, spec: CallSpec, message: bytes) -> bytes:
        return envelope_message(spec, message)

    def reader(self, spec: CallSpec, status: int, headers: Headers) -> ResponseReader:
        stream_type = spec.method.stream_type
        if stream_type.client_streams or stream_type.server_streams:
            return _StreamReader(spec, status, headers)
        return _UnaryReader(spec, status, headers)


CONNECT = _Connect()
