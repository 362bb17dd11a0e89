"""The typed async client: ``async with Client(BookService, url) as books``.

The object the ``async with`` gives is typed as the service class itself, so mypy checks method
names, request types and results against the class the server mounts (or a protocol-only copy
of it) with no generated stubs. At run time each method is replaced by one that calls over the
wire; per-call options come from :func:`~connectpy.client.call_options`.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit

import anyio
import anyio.abc

from .._intercept import check_interceptor
from .._model.message import InvalidResponse, MessageCodec, message_codecs
from .._model.service import IdempotencyLevel, MethodInfo, ServiceInfo, StreamType, describe_service
from .._wire import compression as _compression
from .._wire.compression import COMPRESSIONS
from ..code import Code
from ..errors import ConnectError
from ..interceptors import ClientInterceptor
from ._call import Origin, ResponseStream
from ._connect import CONNECT
from ._grpc import GRPC, GRPC_WEB
from ._hooks import CallHooks
from ._http import Spawn, Transport
from ._options import CallInfo, CallOptions, HeaderValues, current_options, header_pairs
from ._pool import HttpTransport, HttpVersion
from ._spec import CallSpec, ClientProtocol

__all__ = ["Client", "ProtocolName"]

S = TypeVar("S")

ProtocolName = Literal["connect", "grpc", "grpc-web"]
_PROTOCOLS: dict[str, ClientProtocol] = {"connect": CONNECT, "grpc": GRPC, "grpc-web": GRPC_WEB}

DEFAULT_READ_MAX_BYTES = 4 * 1024 * 1024

TransportFactory = Callable[[Spawn], Transport]
"""Builds a transport, given a function that starts background tasks in the client's group."""


class Client(Generic[S]):
    """An async client for one service, over Connect, gRPC or gRPC-Web.

    Args:
        service: the service class: the one the server mounts, or a ``typing.Protocol`` with
            the same method signatures and no bodies. (Typed ``Callable[..., S]`` rather than
            ``type[S]``: mypy refuses a protocol class where ``type[S]`` is expected.)
        url: the base URL the server's app is mounted at, e.g. ``"http://localhost:8000/rpc"``.
        protocol: ``"connect"`` (default), ``"grpc"`` or ``"grpc-web"``.
        codec: ``"proto"`` (default) or ``"json"``.
        package: the service's protobuf package when the class does not say
            (``__connectpy_package__``); the server's ``ASGIApp(package=...)``.
        name: the service name, when not the class name.
        http_version: ``"1.1"`` or ``"2"``; by default gRPC uses HTTP/2 (h2c in cleartext),
            the others HTTP/1.1 in cleartext and whatever ALPN picks over TLS.
        ssl_context: trust roots and client certificates for ``https`` URLs.
        timeout: default seconds per call; a handler's remaining deadline applies too
            (``propagate_deadline``).
        headers: request headers sent with every call.
        send_compression: compress requests with ``"gzip"``, ``"br"`` or ``"zstd"``.
        accept_compression: response compressions offered (default: all installed).
        read_max_bytes: the largest response message accepted.
        send_max_bytes: the largest request message sent.
        use_get: call side-effect-free methods with Connect GET.
        propagate_deadline: bound each call by the calling task's anyio deadline, such as the
            deadline of the handler making the call (default ``True``).
        transport: an alternative transport, e.g. :func:`~connectpy.client.asgi_transport`.
        interceptors: generator functions that wrap every call (see
            :class:`~connectpy.interceptors.ClientInterceptor`), the first outermost.
    """

    def __init__(
        self,
        service: Callable[..., S],
        url: str,
        *,
        protocol: ProtocolName = "connect",
        codec: Literal["proto", "json"] = "proto",
        package: str | None = None,
        name: str | None = None,
        http_version: HttpVersion | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float | None = None,
        headers: HeaderValues | None = None,
        send_compression: str | None = None,
        accept_compression: Iterable[str] | None = None,
        read_max_bytes: int = DEFAULT_READ_MAX_BYTES,
        send_max_bytes: int | None = None,
        use_get: bool = False,
        propagate_deadline: bool = True,
        transport: TransportFactory | None = None,
        interceptors: Iterable[ClientInterceptor] = (),
    ) -> None:
        if protocol not in _PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}: use connect, grpc or grpc-web")
        if codec not in ("proto", "json"):
            raise ValueError(f"unknown codec {codec!r}: use proto or json")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the URL must be http:// or https://host[:port][/path], not {url!r}")
        self._origin: Origin = (
            parts.scheme,
            parts.hostname,
            parts.port or (443 if parts.scheme == "https" else 80),
        )
        self._path = parts.path.rstrip("/")
        self._protocol = _PROTOCOLS[protocol]
        self._codec = codec
        if not isinstance(service, type):
            raise TypeError(f"Client needs a service class, got {service!r}")
        self._info: ServiceInfo = describe_service(service, name=name, package=package)
        self._codecs = message_codecs(self._info)
        if http_version is None and protocol == "grpc" and parts.scheme == "http":
            http_version = "2"
        self._http_version = http_version
        self._ssl_context = ssl_context
        self._timeout = timeout
        self._headers = header_pairs(headers)
        self._send_compression = _compression.require(send_compression)
        self._accept = tuple(
            name for name in (accept_compression or COMPRESSIONS) if name != "identity"
        )
        self._read_max_bytes = read_max_bytes
        self._send_max_bytes = send_max_bytes
        self._use_get = use_get
        self._propagate_deadline = propagate_deadline
        self._transport_factory = transport
        self._interceptors = tuple(interceptors)
        for interceptor in self._interceptors:
            check_interceptor(interceptor)
        self._transport: Transport | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._closed = False
        self._stub = _build_stub(self)

    @property
    def service(self) -> S:
        """The calls, typed as the service class (what ``async with`` gives)."""
        return self._stub  # type: ignore[return-value]

    async def __aenter__(self) -> S:
        group = anyio.create_task_group()
        await group.__aenter__()
        self._task_group = group
        spawn = group.start_soon
        if self._transport_factory is not None:
            self._transport = self._transport_factory(spawn)
        else:
            self._transport = HttpTransport(
                spawn, http_version=self._http_version, ssl_context=self._ssl_context
            )
        return self.service

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
        group, self._task_group = self._task_group, None
        if group is not None:
            group.cancel_scope.cancel()
            await group.__aexit__(None, None, None)

    async def aclose(self) -> None:
        """Close the connections; calls still running fail with ``canceled``, later ones too.
        (Leaving the ``async with`` block does this.)"""
        if self._closed:
            return
        self._closed = True
        if self._transport is not None:
            with anyio.CancelScope(shield=True):
                await self._transport.aclose()

    # Calls.
    def _spec(self, method: MethodInfo, options: CallOptions | None) -> CallSpec:
        timeout = self._timeout
        headers = list(self._headers)
        compression = self._send_compression
        accept = self._accept
        read_max = self._read_max_bytes
        if options is not None:
            if options.timeout is not None:
                timeout = options.timeout
            headers += options.headers
            if options.send_compression is not None:
                compression = _compression.require(options.send_compression)
            if options.accept_compression is not None:
                accept = options.accept_compression
            if options.read_max_bytes is not None:
                read_max = options.read_max_bytes
        local = timeout
        if self._propagate_deadline:
            left = anyio.current_effective_deadline() - anyio.current_time()
            if left != math.inf and (timeout is None or left < timeout):
                timeout = max(left, 0.0)
        return CallSpec(
            method=method,
            codec=self._codec,
            path=self._path,
            send_compression=compression,
            accept_compression=accept,
            timeout_ms=_milliseconds(timeout),
            local_timeout_ms=_milliseconds(local),
            headers=[(k.encode(), v.encode()) for k, v in headers],
            read_max_bytes=read_max,
            use_get=self._use_get
            and method.idempotency is IdempotencyLevel.NO_SIDE_EFFECTS
            and self._protocol is CONNECT,
        )

    def _encoder(self, method: MethodInfo, options: CallOptions | None) -> Callable[[Any], bytes]:
        encode = self._codecs(method.request_type).encoder(self._codec)
        limit = self._send_max_bytes
        if options is not None and options.send_max_bytes is not None:
            limit = options.send_max_bytes

        def encode_request(message: Any) -> bytes:
            try:
                data = encode(message)
            except InvalidResponse as exc:  # the codec's words are the server's ("handler ...")
                raise ConnectError(
                    Code.INTERNAL,
                    f"{method.procedure}: cannot send {type(message).__name__} as "
                    f"{method.request_type.__name__}",
                ) from exc
            if limit is not None and len(data) > limit:
                raise ConnectError(
                    Code.RESOURCE_EXHAUSTED,
                    f"request message size {len(data)} is larger than the {limit}-byte limit",
                )
            return data

        return encode_request

    def _messages(
        self, method: MethodInfo, requests: AsyncIterable[Any] | Iterable[Any] | _One
    ) -> ResponseStream:
        """The decoded responses of a call of any stream type (the call starts when they are
        first asked for)."""
        transport, group = self._transport, self._task_group
        if self._closed or transport is None or group is None:
            raise ConnectError(Code.CANCELED, "the client is not open (use async with)")
        options = current_options()
        info = options.info if options is not None else CallInfo()
        info.response_headers, info.response_trailers = [], []
        encode = self._encoder(method, options)
        hooks = CallHooks(self._interceptors, group.start_soon) if self._interceptors else None
        body: bytes | AsyncIterable[bytes]
        if isinstance(requests, _One):
            body = encode(requests.message)
            if hooks is not None:
                hooks.encoded_early(requests.message, len(body))
        else:
            body = _encoded(requests, encode if hooks is None else hooks.encoding(encode))
        decoder: MessageCodec[Any] = self._codecs(method.response_type)
        codec = self._codec
        return ResponseStream(
            transport=transport,
            protocol=self._protocol,
            spec=self._spec(method, options),
            origin=self._origin,
            requests=body,
            info=info,
            spawn=group.start_soon,
            closed=lambda: self._closed,
            decode=lambda data: _decode(decoder, codec, data),
            hooks=hooks,
        )

    async def _unary(self, method: MethodInfo, requests: Any) -> Any:
        found: list[Any] = []
        responses = self._messages(method, requests)
        try:
            async for message in responses:
                found.append(message)
        finally:
            responses.abandon()
        if len(found) != 1:
            raise ConnectError(
                Code.UNIMPLEMENTED,
                f"protocol error: {method.procedure} answered {len(found)} messages, not one",
            )
        return found[0]


def _milliseconds(seconds: float | None) -> int | None:
    return None if seconds is None else max(0, math.ceil(seconds * 1000))


class _One:
    """The one request message of a call whose client does not stream."""

    __slots__ = ("message",)

    def __init__(self, message: object) -> None:
        self.message = message


def _decode(decoder: MessageCodec[Any], codec: str, data: bytes) -> Any:
    try:
        return decoder.decode(codec, data)
    except ConnectError as exc:
        raise ConnectError(Code.INTERNAL, f"invalid response: {exc.message}") from None


async def _encoded(
    requests: AsyncIterable[Any] | Iterable[Any], encode: Callable[[Any], bytes]
) -> AsyncIterator[bytes]:
    try:
        if isinstance(requests, AsyncIterable):
            async for message in requests:
                yield encode(message)
        else:
            for message in requests:
                yield encode(message)
    finally:
        # The call owns the caller's iterator now: close it, so that a generator left
        # unfinished (the server answered early) is not collected unfinished.
        close = getattr(requests, "aclose", None)
        if close is not None:
            await close()


class _Stub:
    """Runtime stand-in for the service class: one calling function per RPC."""

    def __init__(self, client: Client[Any]) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"<connectpy client for {self._client._info.full_name}>"


def _build_stub(client: Client[Any]) -> _Stub:
    stub = _Stub(client)
    for method in client._info.methods:
        setattr(stub, method.attribute, _caller(client, method))
    return stub


def _caller(client: Client[Any], method: MethodInfo) -> Callable[[Any], Any]:
    stream_type = method.stream_type
    if stream_type is StreamType.UNARY:

        async def unary(request: Any) -> Any:
            return await client._unary(method, _One(request))

        return unary
    if stream_type is StreamType.CLIENT_STREAM:

        async def client_stream(requests: Any) -> Any:
            return await client._unary(method, requests)

        return client_stream
    if stream_type is StreamType.SERVER_STREAM:

        def server_stream(request: Any) -> AsyncIterator[Any]:
            return client._messages(method, _One(request))

        return server_stream

    def bidi_stream(requests: Any) -> AsyncIterator[Any]:
        return client._messages(method, requests)

    return bidi_stream
