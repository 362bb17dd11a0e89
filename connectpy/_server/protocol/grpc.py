"""gRPC over HTTP/2, and gRPC-Web (and gRPC-Web-text) as its variant.

Every call is enveloped, whatever its stream type: response headers first, then messages, then
the status. gRPC sends the status as HTTP trailers; gRPC-Web, which browsers and HTTP/1.1 can
carry, sends it in a final body frame flagged 0x80.

Specs: https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md and ``PROTOCOL-WEB.md``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from ..._model.service import MethodInfo
from ..._wire import compression as _compression
from ..._wire.compression import IDENTITY, SUPPORTED, Compression
from ..._wire.deadline import parse_grpc_timeout
from ..._wire.envelope import FLAG_COMPRESSED, encode_envelope
from ..._wire.grpc import (
    GRPC_WEB_TRAILERS_FLAG,
    Base64Decoder,
    grpc_encode_metadata,
    grpc_negotiate_response,
    grpc_status_trailers,
    grpc_web_trailer_block,
)
from ...code import Code
from ...context import Context
from ...errors import ConnectError
from ..asgi import HttpRequest, send_plain
from .base import ServerCall
from .connect import COMPRESS_MIN_BYTES
from .enveloped import EnvelopedCall

__all__ = ["GRPC", "GRPC_WEB", "GRPC_WEB_TEXT"]

_GRPC_CODECS = {
    "application/grpc": "proto",
    "application/grpc+proto": "proto",
    "application/grpc+json": "json",
}
_WEB_CODECS = {
    "application/grpc-web": "proto",
    "application/grpc-web+proto": "proto",
    "application/grpc-web+json": "json",
}
_WEB_TEXT_CODECS = {
    "application/grpc-web-text": "proto",
    "application/grpc-web-text+proto": "proto",
}

_ACCEPT_ENCODING = SUPPORTED.replace(" ", "").encode()


def _response_headers(
    pairs: Iterable[tuple[bytes, bytes]], content_type: str, compression: Compression
) -> list[tuple[bytes, bytes]]:
    """A call's response headers: the handler's, then gRPC's own."""
    headers = grpc_encode_metadata(pairs)
    headers.append((b"content-type", content_type.encode()))
    if compression is not IDENTITY:
        headers.append((b"grpc-encoding", compression.name.encode()))
    headers.append((b"grpc-accept-encoding", _ACCEPT_ENCODING))
    return headers


# Those of a call that adds none and compresses nothing (most calls), by content type: built
# once instead of per call.
_PLAIN_HEADERS = {
    content_type: tuple(_response_headers((), content_type, IDENTITY))
    for content_type in (*_GRPC_CODECS, *_WEB_CODECS, *_WEB_TEXT_CODECS)
}

_NO_TRAILERS_MESSAGE = (
    "gRPC needs HTTP/2 response trailers, which this server or connection cannot send "
    "(HTTP/1.1, or an ASGI server without the http.response.trailers extension such as "
    "uvicorn): call over HTTP/2 (e.g. Hypercorn with h2c or TLS), or use gRPC-Web or Connect"
)


def _te_trailers(request: HttpRequest) -> bool:
    # Hypercorn drops trailers unless the request said `te: trailers`; gRPC clients always do.
    if request.header(b"te") == "trailers":  # what they send: no need to split anything
        return True
    return any(
        token.strip().lower() == "trailers"
        for value in request.header_values(b"te")
        for token in value.split(",")
    )


class _GrpcCall(EnvelopedCall):
    """A gRPC call: enveloped messages both ways, the status in HTTP trailers.

    ``finish`` sends whatever is still queued as the last body message, then the trailers: a
    unary call's response travels that way, one ASGI message less than a message followed by
    an empty last body message (gRPC-Web: one body message with the message and the status).
    """

    protocol = "grpc"

    def __init__(
        self, request: HttpRequest, method: MethodInfo, read_max_bytes: int, codec: str
    ) -> None:
        self.request = request
        self.read_max_bytes = read_max_bytes
        self.codec = codec
        self.context = Context(
            method=method,
            protocol=self.protocol,
            http_method=request.method,
            request=request,
            scope=request.scope,
        )
        self._request_compression = IDENTITY
        self._response_compression = IDENTITY
        self._started = False
        self._body_done = False
        self._server_trailers = request.has_trailers
        self._trailers = self._server_trailers and _te_trailers(request)
        self._queue = []
        self._queued = 0

    def start(self) -> None:
        request = self.request
        self._check_transport()
        self.context.set_timeout(parse_grpc_timeout(request.header(b"grpc-timeout")))
        self._request_compression, self._response_compression = _compression.call_compressions(
            request.header(b"grpc-encoding"),
            request.header(b"grpc-accept-encoding"),
            grpc_negotiate_response,
        )
        self._plain_frames = self._binary and self._response_compression is IDENTITY

    def _check_transport(self) -> None:
        # Without trailers the status could never follow a message: fail before the handler
        # runs, with a trailers-only response (status in the headers) that any client reads.
        if not self._server_trailers:
            raise ConnectError(Code.UNIMPLEMENTED, _NO_TRAILERS_MESSAGE)
        if not self._trailers:
            raise ConnectError(Code.INTERNAL, "gRPC requests must carry the header te: trailers")

    def _unwrap(self, flags: int, data: bytes) -> bytes:
        if flags & ~FLAG_COMPRESSED:
            raise ConnectError(Code.INTERNAL, f"protocol error: invalid message flags {flags:#x}")
        if not flags:
            return data
        if self._request_compression is IDENTITY:
            raise ConnectError(
                Code.INTERNAL, "protocol error: compressed message without a grpc-encoding"
            )
        return self._request_compression.decompress(data, self.read_max_bytes)

    def _response_headers(self) -> list[tuple[bytes, bytes]]:
        pairs = self.context.response_header_pairs()
        content_type, compression = self.request.content_type, self._response_compression
        if not pairs and compression is IDENTITY:
            # A new list each time: servers and middleware may change what they are given.
            return list(_PLAIN_HEADERS[content_type])
        return _response_headers(pairs, content_type, compression)

    async def _start_response(self) -> None:
        self._started = True
        await self.request.send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": self._response_headers(),
                "trailers": self._trailers,
            }
        )

    def _frame(self, flags: int, data: bytes) -> bytes:
        return encode_envelope(flags, data)

    def _message_frame(self, data: bytes) -> bytes:
        compression = self._response_compression
        if compression is not IDENTITY and len(data) >= COMPRESS_MIN_BYTES:
            return self._frame(FLAG_COMPRESSED, compression.compress(data))
        return self._frame(0, data)

    async def finish(self, error: ConnectError | None) -> None:
        # The body is unread only after an error. Read the rest before the status ends the
        # stream: see _drain_before_status.
        if not self._body_done:
            await self._drain_before_status()
        trailers = grpc_status_trailers(error, self.context.response_trailer_pairs())
        body = self._take_for_status(error)
        if not self._started and not body and not self._can_send_trailers():
            # Trailers-only: the status travels in the headers of an empty response.
            await send_plain(self.request.send, 200, self._response_headers() + trailers)
            return
        await self._send_rest(body, trailers)

    def _can_send_trailers(self) -> bool:
        return self._trailers

    async def _send_rest(self, body: bytes, trailers: list[tuple[bytes, bytes]]) -> None:
        """The response headers if not sent yet, the last body message, then the trailers."""
        if not self._started:
            await self._start_response()
        send = self.request.send
        await send({"type": "http.response.body", "body": body, "more_body": False})
        await send({"type": "http.response.trailers", "headers": trailers, "more_trailers": False})


class _GrpcWebCall(_GrpcCall):
    """A gRPC-Web call: as gRPC, but the status goes in a final body frame (flag 0x80), so it
    works over HTTP/1.1 and on any ASGI server."""

    protocol = "grpc-web"

    def __init__(
        self, request: HttpRequest, method: MethodInfo, read_max_bytes: int, codec: str
    ) -> None:
        super().__init__(request, method, read_max_bytes, codec)
        self._trailers = False  # never HTTP trailers: gRPC-Web responses must carry none

    def _check_transport(self) -> None:
        return None

    def _can_send_trailers(self) -> bool:
        return True

    async def _send_rest(self, body: bytes, trailers: list[tuple[bytes, bytes]]) -> None:
        body += self._frame(GRPC_WEB_TRAILERS_FLAG, grpc_web_trailer_block(trailers))
        if self._started:
            await self.request.send({"type": "http.response.body", "body": body})
            return
        # The whole response is known: send it with content-length (not chunked on HTTP/1.1).
        self._started = True
        await send_plain(self.request.send, 200, self._response_headers(), body)


class _GrpcWebTextCall(_GrpcWebCall):
    """gRPC-Web-text: the gRPC-Web body in base64 both ways, for clients that cannot send or
    read binary bodies. Each response frame is encoded on its own (padded), as the spec allows."""

    _binary = False

    def __init__(
        self, request: HttpRequest, method: MethodInfo, read_max_bytes: int, codec: str
    ) -> None:
        super().__init__(request, method, read_max_bytes, codec)
        self._decoder = Base64Decoder()

    def _body_bytes(self, chunk: bytes) -> bytes:
        return self._decoder.feed(chunk)

    def _body_end(self) -> None:
        self._decoder.close()

    def _frame(self, flags: int, data: bytes) -> bytes:
        return base64.b64encode(encode_envelope(flags, data))


class _Grpc:
    """The gRPC protocol: recognises ``application/grpc[+proto|+json]`` POSTs."""

    name = "grpc"
    codecs = _GRPC_CODECS
    content_types = tuple(_GRPC_CODECS)
    call_type: type[_GrpcCall] = _GrpcCall

    def matches(self, request: HttpRequest) -> bool:
        return request.method == "POST" and request.content_type in self.codecs

    def refusal(self, request: HttpRequest, method: MethodInfo) -> int | None:
        return None  # every stream type travels the same way

    def open_call(
        self, request: HttpRequest, method: MethodInfo, read_max_bytes: int
    ) -> ServerCall:
        codec = self.codecs[request.content_type]
        return self.call_type(request, method, read_max_bytes, codec)

    async def reject(self, request: HttpRequest, error: ConnectError) -> None:
        headers = [(b"content-type", request.content_type.encode())]
        trailers = grpc_status_trailers(error)
        if not self.status_in_trailers(request):
            # Trailers-only (HTTP 200, status in the headers): the exact code, no trailers.
            await send_plain(request.send, 200, headers + trailers)
            return
        # gRPC clients (grpcio) want a trailers-only response as one HEADERS frame with
        # END_STREAM, which Hypercorn cannot send: it follows headers with an empty DATA frame.
        # So send headers, then the status as real trailers.
        send = request.send
        start = {"type": "http.response.start", "status": 200, "headers": headers, "trailers": True}
        await send(start)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        await send({"type": "http.response.trailers", "headers": trailers})

    def status_in_trailers(self, request: HttpRequest) -> bool:
        """Whether the status can go in HTTP trailers (only gRPC, only where they work)."""
        return request.has_trailers and _te_trailers(request)


class _GrpcWeb(_Grpc):
    name = "grpc-web"
    codecs = _WEB_CODECS
    content_types = tuple(_WEB_CODECS)
    call_type = _GrpcWebCall

    def status_in_trailers(self, request: HttpRequest) -> bool:
        return False


class _GrpcWebText(_GrpcWeb):
    name = "grpc-web-text"
    codecs = _WEB_TEXT_CODECS
    content_types = tuple(_WEB_TEXT_CODECS)
    call_type = _GrpcWebTextCall


GRPC = _Grpc()
GRPC_WEB = _GrpcWeb()
GRPC_WEB_TEXT = _GrpcWebText()
