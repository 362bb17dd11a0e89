"""gRPC and gRPC-Web, client side. Every call is enveloped; the status comes in HTTP trailers
(gRPC), in the headers of a trailers-only response, or in gRPC-Web's final 0x80 body frame.

The wire pieces (status trailers, percent-encoding, status details, the trailer block) are
shared with the server in :mod:`connectpy._wire.grpc`.
"""

from __future__ import annotations

from .._wire.compression import IDENTITY
from .._wire.deadline import format_grpc_timeout
from .._wire.envelope import FLAG_COMPRESSED, EnvelopeReader
from .._wire.grpc import (
    GRPC_WEB_TRAILERS_FLAG,
    grpc_decode_binary,
    grpc_decode_status_details,
    grpc_percent_decode,
    grpc_web_parse_trailer_block,
)
from ..code import Code
from ..errors import ConnectError, ErrorDetail
from ._connect import _response_compression, header, metadata_pairs
from ._http import Headers
from ._spec import USER_AGENT, CallSpec, ResponseReader, envelope_message

__all__ = ["GRPC", "GRPC_WEB", "grpc_status_error"]

_STATUS_HEADERS = (b"grpc-status", b"grpc-message", b"grpc-status-details-bin")


def grpc_status_error(trailers: Headers) -> ConnectError | None:
    """The call's outcome from its status trailers: ``None`` for OK, else the error, with the
    other trailers as its metadata.

    Raises:
        ConnectError: ``internal`` when there is no valid ``grpc-status``.
    """
    status = header(trailers, b"grpc-status")
    if status is None:
        raise ConnectError(Code.INTERNAL, "protocol error: no grpc-status in the trailers")
    if not status.strip().isdigit():
        raise ConnectError(Code.INTERNAL, f"protocol error: invalid grpc-status {status!r}")
    number = int(status)
    if number == 0:
        return None
    message = grpc_percent_decode(header(trailers, b"grpc-message") or "")
    code = Code.from_number(number)
    details: list[ErrorDetail] = []
    raw_details = header(trailers, b"grpc-status-details-bin")
    if raw_details:
        try:
            _, _, details = grpc_decode_status_details(grpc_decode_binary(raw_details))
        except Exception:  # malformed details: the code and message still stand
            details = []
    error = ConnectError(code, message, details=details)
    error.metadata = metadata_pairs([(k, v) for k, v in trailers if k not in _STATUS_HEADERS])
    return error


def _trailer_metadata(trailers: Headers) -> Headers:
    return [(k, v) for k, v in trailers if k not in _STATUS_HEADERS]


class _Reader:
    def __init__(self, spec: CallSpec, status: int, headers: Headers, web: bool) -> None:
        self._spec = spec
        self._web = web
        self._envelopes = EnvelopeReader(spec.read_max_bytes)
        self._trailers: Headers | None = None
        if status != 200:
            raise ConnectError(Code.from_http_status(status), f"HTTP status {status}")
        self.headers = headers
        self.trailers: Headers = []
        self._body_seen = False
        # A status in the headers is a trailers-only response, unless a body or trailers
        # follow (then the headers' status is ignored, as gRPC clients do).
        self._status_in_headers = header(headers, b"grpc-status") is not None
        self._compression = _response_compression(header(headers, b"grpc-encoding"))
        if self._status_in_headers:
            return
        content_type = (header(headers, b"content-type") or "").split(";")[0].strip().lower()
        prefix = "application/grpc-web" if web else "application/grpc"
        codec_ok = content_type == f"{prefix}+{spec.codec}" or (
            spec.codec == "proto" and content_type == prefix
        )
        if not codec_ok:
            raise ConnectError(
                Code.UNKNOWN if not content_type.startswith(prefix) else Code.INTERNAL,
                f"invalid content-type {content_type!r} for a {spec.codec} response",
            )

    def feed(self, chunk: bytes) -> list[bytes]:
        messages: list[bytes] = []
        self._body_seen = True
        for flags, data in self._envelopes.feed(chunk):
            if self._trailers is not None:
                raise ConnectError(Code.INTERNAL, "protocol error: data after the trailers")
            if flags & FLAG_COMPRESSED:
                if self._compression is IDENTITY:
                    raise ConnectError(
                        Code.INTERNAL, "protocol error: compressed message without grpc-encoding"
                    )
                data = self._compression.decompress(data, self._spec.read_max_bytes)
            if self._web and flags & GRPC_WEB_TRAILERS_FLAG:
                self._trailers = grpc_web_parse_trailer_block(data)
                continue
            messages.append(data)
        return messages

    def finish(self, trailers: Headers) -> tuple[list[bytes], Headers]:
        if self._envelopes.pending:
            raise ConnectError(Code.INTERNAL, "protocol error: the response ended inside a message")
        status_trailers = self._trailers if self._trailers is not None else trailers
        if self._status_in_headers and not self._body_seen and not status_trailers:
            status_trailers, self.headers = self.headers, []  # trailers-only
        self.trailers = _trailer_metadata(status_trailers)
        error = grpc_status_error(status_trailers)
        if error is not None:
            raise error
        return [], self.trailers


class _Grpc:
    name = "grpc"
    web = False

    def request(
        self, spec: CallSpec, single: bytes | None
    ) -> tuple[str, str, Headers, bytes | None]:
        kind = "grpc-web" if self.web else "grpc"
        headers: Headers = [
            (b"content-type", f"application/{kind}+{spec.codec}".encode()),
            (b"user-agent", USER_AGENT),
        ]
        if not self.web:
            headers.append((b"te", b"trailers"))
        else:
            headers.append((b"x-grpc-web", b"1"))
        if spec.timeout_ms is not None:
            headers.append((b"grpc-timeout", format_grpc_timeout(spec.timeout_ms).encode()))
        if spec.send_compression is not IDENTITY:
            headers.append((b"grpc-encoding", spec.send_compression.name.encode()))
        if spec.accept_compression:
            headers.append((b"grpc-accept-encoding", ",".join(spec.accept_compression).encode()))
        headers += spec.headers
        body = None if single is None else self.frame(spec, single)
        return "POST", spec.target, headers, body

    def frame(self, spec: CallSpec, message: bytes) -> bytes:
        return envelope_message(spec, message)

    def reader(self, spec: CallSpec, status: int, headers: Headers) -> ResponseReader:
        return _Reader(spec, status, headers, self.web)


class _GrpcWeb(_Grpc):
    name = "grpc-web"
    web = True


GRPC = _Grpc()
GRPC_WEB = _GrpcWeb()
