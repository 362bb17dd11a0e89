"""The Connect protocol: unary POST and GET, and enveloped streaming.

Spec: https://connectrpc.com/docs/protocol/
"""

from __future__ import annotations

import base64

from ..._model.service import IdempotencyLevel, MethodInfo, StreamType
from ..._wire import compression as _compression
from ..._wire.compression import IDENTITY
from ..._wire.connect import (
    CONNECT_GET_CODECS,
    CONNECT_STREAM_CODECS,
    CONNECT_UNARY_CODECS,
    connect_end_stream_json,
    connect_error_json,
    connect_http_status,
)
from ..._wire.deadline import parse_connect_timeout
from ..._wire.envelope import FLAG_COMPRESSED, FLAG_END_STREAM, encode_envelope
from ...code import Code
from ...context import Context
from ...errors import ConnectError
from ..asgi import HttpRequest, read_body, send_plain
from .base import ServerCall
from .enveloped import EnvelopedCall
from .single import SingleResponseCall

__all__ = [
    "CONNECT_GET",
    "CONNECT_STREAM",
    "CONNECT_UNARY",
    "connect_error_json",
    "connect_http_status",
]

_UNARY_CODECS = CONNECT_UNARY_CODECS
_STREAM_CODECS = CONNECT_STREAM_CODECS
_GET_CODECS = CONNECT_GET_CODECS
_UNARY_CONTENT_TYPES = {"proto": b"application/proto", "json": b"application/json"}

# Below this size compressing costs more than it saves; the spec lets servers send identity.
COMPRESS_MIN_BYTES = 1024

_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")
"""GET messages are URL-safe base64; the standard alphabet is accepted too."""


def _check_protocol_version(request: HttpRequest) -> None:
    # Absent is fine (curl users never send it); a wrong value is a client bug worth naming.
    version = request.header(b"connect-protocol-version")
    if version is not None and version != "1":
        raise ConnectError(
            Code.INVALID_ARGUMENT, f"connect-protocol-version must be 1, got {version!r}"
        )


def _response_headers(context: Context) -> list[tuple[bytes, bytes]]:
    """The handler's response headers, and its trailers as ``trailer-`` headers (unary)."""
    headers = list(context.response_header_pairs())
    trailers = context.response_trailer_pairs()
    if trailers:
        headers += [(b"trailer-" + name, value) for name, value in trailers]
    return headers


def _new_context(request: HttpRequest, method: MethodInfo) -> Context:
    return Context(
        method=method,
        protocol="connect",
        http_method=request.method,
        request=request,
        scope=request.scope,
    )


class _UnaryCall(SingleResponseCall):
    """A Connect unary call: one bare message each way, errors as JSON with an HTTP status."""

    def __init__(self, request: HttpRequest, method: MethodInfo, read_max_bytes: int) -> None:
        self.request = request
        self.read_max_bytes = read_max_bytes
        self.context = _new_context(request, method)
        self.codec = _UNARY_CODECS.get(request.content_type, "json")
        self._request_compression = IDENTITY
        self._response_compression = IDENTITY
        self._response: bytes | None = None
        self._body_read = False

    def start(self) -> None:
        request = self.request
        _check_protocol_version(request)
        self.context.set_timeout(parse_connect_timeout(request.header(b"connect-timeout-ms")))
        self._request_compression, self._response_compression = _compression.call_compressions(
            request.header(b"content-encoding"),
            request.header(b"accept-encoding"),
            _compression.negotiate_response,
        )

    async def read_single(self) -> bytes:
        self._body_read = True
        body = await read_body(self.request.receive, self.read_max_bytes)
        compression = self._request_compression
        if not body or compression is IDENTITY:  # the spec: never decompress an empty body
            return body
        return compression.decompress(body, self.read_max_bytes)

    async def finish(self, error: ConnectError | None) -> None:
        if not self._body_read:
            await self._drain_unread_body()
        headers = _response_headers(self.context)
        body = self._response
        if error is not None or body is None:
            error = error or ConnectError(Code.INTERNAL, "handler produced no response")
            headers += [(k.encode(), v.encode()) for k, v in error.metadata]
            headers.append((b"content-type", b"application/json"))
            await send_plain(
                self.request.send,
                connect_http_status(error.code),
                headers,
                connect_error_json(error),
            )
            return
        headers.append((b"content-type", _UNARY_CONTENT_TYPES[self.codec]))
        compression = self._response_compression
        if compression is not IDENTITY and len(body) >= COMPRESS_MIN_BYTES:
            body = compression.compress(body)
            headers.append((b"content-encoding", compression.name.encode()))
        await send_plain(self.request.send, 200, headers, body)


class _GetCall(_UnaryCall):
    """A Connect unary call made with GET: the message and its encoding are in the query."""

    def __init__(self, request: HttpRequest, method: MethodInfo, read_max_bytes: int) -> None:
        super().__init__(request, method, read_max_bytes)
        self.codec = _GET_CODECS.get(self.context.query_params.get("encoding", ""), "json")

    def start(self) -> None:
        request, query = self.request, self.context.query_params
        connect = query.get("connect")
        if connect is not None and connect != "v1":
            raise ConnectError(Code.INVALID_ARGUMENT, f"connect must be v1, got {connect!r}")
        self.context.set_timeout(parse_connect_timeout(request.header(b"connect-timeout-ms")))
        self._request_compression = _compression.require(query.get("compression"))
        self._response_compression = _compression.negotiate_response(
            request.header(b"accept-encoding"), IDENTITY
        )

    async def read_single(self) -> bytes:
        query = self.context.query_params
        raw = query.get("message", "")
        if query.get("base64") == "1":
            try:
                # Validating: the non-validating decoders drop stray characters, turning
                # garbage into some other (often empty, hence valid) message.
                text = raw.translate(_URLSAFE_TO_STANDARD) + "=" * (-len(raw) % 4)
                message = base64.b64decode(text, validate=True)
            except ValueError as exc:
                raise ConnectError(
                    Code.INVALID_ARGUMENT, f"invalid base64 message: {exc}"
                ) from None
        else:
            message = raw.encode()
        if len(message) > self.read_max_bytes:
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED,
                f"message is larger than the {self.read_max_bytes}-byte limit",
            )
        if not message:
            return message
        return self._request_compression.decompress(message, self.read_max_bytes)


class _StreamCall(EnvelopedCall):
    """A Connect streaming call: enveloped messages, status in an end-of-stream message."""

    def __init__(self, request: HttpRequest, method: MethodInfo, read_max_bytes: int) -> None:
        self.request = request
        self.read_max_bytes = read_max_bytes
        self.context = _new_context(request, method)
        self.codec = _STREAM_CODECS.get(request.content_type, "json")
        self._request_compression = IDENTITY
        self._response_compression = IDENTITY
        self._started = False
        self._body_done = False
        self._queue = []
        self._queued = 0

    def start(self) -> None:
        request = self.request
        _check_protocol_version(request)
        self.context.set_timeout(parse_connect_timeout(request.header(b"connect-timeout-ms")))
        self._request_compression, self._response_compression = _compression.call_compressions(
            request.header(b"connect-content-encoding"),
            request.header(b"connect-accept-encoding"),
            _compression.negotiate_response,
        )
        self._plain_frames = self._response_compression is IDENTITY

    def _unwrap(self, flags: int, data: bytes) -> bytes:
        if flags & FLAG_END_STREAM:
            raise ConnectError(Code.INVALID_ARGUMENT, "end-of-stream flag set on a request")
        if not flags & FLAG_COMPRESSED:
            return data
        if self._request_compression is IDENTITY:
            raise ConnectError(
                Code.INTERNAL, "protocol error: compressed message without a compression"
            )
        return self._request_compression.decompress(data, self.read_max_bytes)

    async def _start_response(self) -> None:
        self._started = True
        headers = list(self.context.response_header_pairs())
        headers.append((b"content-type", b"application/connect+" + self.codec.encode()))
        if self._response_compression is not IDENTITY:
            name = self._response_compression.name.encode()
            headers.append((b"connect-content-encoding", name))
        await self.request.send({"type": "http.response.start", "status": 200, "headers": headers})

    def _message_frame(self, data: bytes) -> bytes:
        compression = self._response_compression
        if compression is not IDENTITY and len(data) >= COMPRESS_MIN_BYTES:
            return encode_envelope(FLAG_COMPRESSED, compression.compress(data))
        return encode_envelope(0, data)

    async def finish(self, error: ConnectError | None) -> None:
        if not self.context.method.stream_type.client_streams:
            # Only after an error is the body unread; for a client that streams, dispatch
            # already waited (briefly) for the rest of its body.
            await self._drain_before_status()
        if not self._started:
            await self._start_response()
        metadata: dict[str, list[str]] = {}
        for name, value in self.context.response_trailer_pairs():
            metadata.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
        if error is not None:
            for key, text in error.metadata:
                metadata.setdefault(key, []).append(text)
        if error is not None or metadata:
            frame = encode_envelope(FLAG_END_STREAM, connect_end_stream_json(error, metadata))
        else:
            frame = _END_OK
        # The messages still queued and the end of the stream, in one ASGI message.
        body = self._take_for_status(error) + frame
        await self.request.send({"type": "http.response.body", "body": body})


_END_OK = encode_envelope(FLAG_END_STREAM, b"{}")
"""The end of a stream that succeeded without trailers: most streams."""


class _ConnectUnary:
    name = "connect"
    content_types = tuple(_UNARY_CODECS)

    def matches(self, request: HttpRequest) -> bool:
        return request.method == "POST" and request.content_type in _UNARY_CODECS

    def refusal(self, request: HttpRequest, method: MethodInfo) -> int | None:
        return None if method.stream_type is StreamType.UNARY else 415

    def open_call(
        self, request: HttpRequest, method: MethodInfo, read_max_bytes: int
    ) -> ServerCall:
        return _UnaryCall(request, method, read_max_bytes)

    async def reject(self, request: HttpRequest, error: ConnectError) -> None:
        # An unknown procedure is a 404 in Connect (clients map 404 back to unimplemented).
        headers = [(b"content-type", b"application/json")]
        await send_plain(request.send, 404, headers, connect_error_json(error))


class _ConnectGet(_ConnectUnary):
    content_types: tuple[str, ...] = ()  # the codec is in the query: ``?encoding=json``

    def matches(self, request: HttpRequest) -> bool:
        if request.method != "GET":
            return False
        return request.query_params.get("encoding") in _GET_CODECS

    def refusal(self, request: HttpRequest, method: MethodInfo) -> int | None:
        if method.stream_type is not StreamType.UNARY:
            return 415
        if method.idempotency is not IdempotencyLevel.NO_SIDE_EFFECTS:
            return 405
        return None

    def open_call(
        self, request: HttpRequest, method: MethodInfo, read_max_bytes: int
    ) -> ServerCall:
        return _GetCall(request, method, read_max_bytes)


class _ConnectStream(_ConnectUnary):
    content_types = tuple(_STREAM_CODECS)

    def matches(self, request: HttpRequest) -> bool:
        return request.method == "POST" and request.content_type in _STREAM_CODECS

    def refusal(self, request: HttpRequest, method: MethodInfo) -> int | None:
        return 415 if method.stream_type is StreamType.UNARY else None

    def open_call(
        self, request: HttpRequest, method: MethodInfo, read_max_bytes: int
    ) -> ServerCall:
        return _StreamCall(request, method, read_max_bytes)


CONNECT_UNARY = _ConnectUnary()
CONNECT_GET = _ConnectGet()
CONNECT_STREAM = _ConnectStream()
