"""The ASGI application: routes a request to a procedure and picks its wire protocol."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

import anyio

from ._model.service import ServiceInfo, inspect_service
from ._server.asgi import HttpRequest, Receive, Scope, Send, drain_body, open_body_grace, send_plain
from ._server.cors import CORS
from ._server.dispatch import Endpoint, run_call
from ._server.endpoints import build_endpoints
from ._server.health import Health, HealthService
from ._server.interceptors import chain_of
from ._server.lifespan import Lifespan, no_lifespan, serve_lifespan
from ._server.protocol.base import ServerProtocol
from ._server.protocol.connect import CONNECT_GET, CONNECT_STREAM, CONNECT_UNARY
from ._server.protocol.grpc import GRPC, GRPC_WEB, GRPC_WEB_TEXT
from ._server.protocol.rest import RestRouter
from ._server.reflection import ServerReflectionV1, ServerReflectionV1Alpha
from .code import Code
from .errors import ConnectError
from .interceptors import Interceptor

__all__ = ["DEFAULT_READ_MAX_BYTES", "ASGIApp"]

DEFAULT_READ_MAX_BYTES = 4 * 1024 * 1024

_CLIENTS_MAY_STREAM = (CONNECT_STREAM, GRPC, GRPC_WEB, GRPC_WEB_TEXT)
_PROTOCOLS: tuple[ServerProtocol, ...] = (
    CONNECT_UNARY,
    CONNECT_STREAM,
    CONNECT_GET,
    GRPC,
    GRPC_WEB,
    GRPC_WEB_TEXT,
)

# Content types of POSTs seen, to their protocol; bounded, as clients choose what they send.
_POST_PROTOCOLS_MAX = 64


class ASGIApp:
    """An ASGI app serving mounted services over Connect, gRPC and gRPC-Web on one port.

    Run it with Hypercorn directly, or mount it under Starlette or FastAPI
    (``app.mount("/rpc", rpc_app)``).

    Args:
        package: the protobuf package for services mounted without one (e.g. ``"book.v1"``);
            it prefixes their paths: ``/book.v1.BookService/GetBook``.
        read_max_bytes: the largest request message accepted, after decompression.
        cors: which web origins may call from a browser (:class:`CORS`); None, the default,
            answers no preflight and adds no CORS headers.
        interceptors: wrap every call of every service (see :mod:`connectpy.interceptors`),
            the first outermost; they run outside those given to :meth:`mount`.
        lifespan: called with the app, returns an async context manager entered before the
            server takes requests and exited once it stops (open a database pool, close it);
            under another framework, enter :meth:`lifespan_context` from its lifespan.
    """

    def __init__(
        self,
        *,
        package: str = "",
        read_max_bytes: int = DEFAULT_READ_MAX_BYTES,
        cors: CORS | None = None,
        interceptors: Sequence[Interceptor] = (),
        lifespan: Lifespan | None = None,
    ) -> None:
        self.package = package
        self.cors = cors
        self.read_max_bytes = read_max_bytes
        self.interceptors = tuple(interceptors)
        chain_of(self.interceptors)  # fail here, not at the first mount, on a bad one
        self._lifespan = lifespan or no_lifespan
        self.services: list[ServiceInfo] = []
        self._routes: dict[str, Endpoint] = {}
        self._protocols: Sequence[ServerProtocol] = _PROTOCOLS
        self._post_protocols: dict[str, ServerProtocol | None] = {}
        self._rest = RestRouter()
        self.health = Health(lambda: [service.full_name for service in self.services])
        """Serving statuses for ``grpc.health.v1.Health`` (see :meth:`enable_health`)."""

    def mount(
        self,
        service: object,
        *,
        package: str | None = None,
        name: str | None = None,
        interceptors: Sequence[Interceptor] = (),
    ) -> None:
        """Serve every public method of ``service`` as an RPC.

        ``interceptors`` wrap this service's calls only, inside the app's.

        Raises:
            TypeError: a method's annotations or message types cannot be served, or an
                interceptor is not a generator function.
            ValueError: a procedure path is mounted already, or an ``@http_option`` rule is
                malformed or conflicts with another.
        """
        info = inspect_service(service, name=name, package=package, default_package=self.package)
        endpoints = build_endpoints(info, chain_of(self.interceptors, interceptors))
        for endpoint in endpoints:
            if endpoint.method.procedure in self._routes:
                raise ValueError(f"{endpoint.method.procedure} is mounted already")
        self._rest.add(endpoints)
        for endpoint in endpoints:
            self._routes[endpoint.method.procedure] = endpoint
        self.services.append(info)

    def enable_reflection(self) -> None:
        """Serve gRPC server reflection (``grpc.reflection.v1`` and ``v1alpha``), describing
        every service mounted on this app, before or after this call. Calling it again, or
        with a reflection service mounted already, changes nothing."""
        # The live list, so services mounted later are described too.
        for reflection in (
            ServerReflectionV1(self.services),
            ServerReflectionV1Alpha(self.services),
        ):
            package = reflection.__connectpy_package__
            if not self._has_service(f"{package}.{reflection.__connectpy_name__}"):
                self.mount(reflection, package=package)

    def enable_health(self) -> Health:
        """Serve ``grpc.health.v1.Health``, reporting :attr:`health`; returns it. Calling it
        again, or with a ``grpc.health.v1.Health`` mounted already, changes nothing."""
        package = HealthService.__connectpy_package__
        if not self._has_service(f"{package}.{HealthService.__connectpy_name__}"):
            self.mount(HealthService(self.health), package=package)
        return self.health

    def lifespan_context(self) -> AbstractAsyncContextManager[object]:
        """The app's lifespan, to enter from the lifespan of a parent app it is mounted under
        (Starlette and FastAPI do not run a mounted app's lifespan themselves)."""
        return self._lifespan(self)

    def _has_service(self, full_name: str) -> bool:
        return any(service.full_name == full_name for service in self.services)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await serve_lifespan(self.lifespan_context(), receive, send)
            return
        if self.cors is not None:
            if self.cors.is_preflight(scope):
                await self.cors.answer_preflight(scope, send)
                return
            send = self.cors.wrap_send(scope, send)
        request = HttpRequest(scope, receive, send)
        protocol = self._protocol_for(request)
        endpoint = self._routes.get(_route_path(scope))
        if endpoint is None:
            await self._not_a_procedure(request, protocol)
            return
        status = _refusal(request, protocol, endpoint)
        if status is not None or protocol is None:
            await drain_body(receive)
            if status == 405:
                await send_plain(send, 405, [(b"allow", b"GET, POST")])
            else:
                await self._unsupported_media_type(request, endpoint)
            return
        call = protocol.open_call(request, endpoint.method, self.read_max_bytes)
        await run_call(endpoint, call, request)

    async def _unsupported_media_type(self, request: HttpRequest, endpoint: Endpoint) -> None:
        """A 415 that says what the procedure does take, for people and for tools.

        Plain text, not a Connect error: a Connect client maps a 415 to ``unknown`` and a
        JSON error body would claim more than that. ``Accept-Post`` is the header for it.
        """
        method = endpoint.method
        accepted = [
            content_type
            for protocol in self._protocols
            if protocol.refusal(request, method) is None
            for content_type in protocol.content_types
        ]
        if request.method == "GET":
            given = "a GET without ?encoding=json or ?encoding=proto"
        elif request.content_type:
            given = f"content type {request.content_type[:100]!r}"
        else:
            given = "a POST without a content type"
        body = f"{given} is not supported by {method.procedure}; send one of: "
        body += ", ".join(accepted) + "\n"
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"accept-post", ", ".join(accepted).encode()),
        ]
        await send_plain(request.send, 415, headers, body.encode())

    def _protocol_for(self, request: HttpRequest) -> ServerProtocol | None:
        """The protocol whose requests look like this one, or None.

        For a POST that depends on the content type alone (see ServerProtocol.matches), so
        the answer is kept per content type: gRPC, fourth in line, would otherwise ask
        four protocols on every call.
        """
        post = request.method == "POST"
        if post:
            known = self._post_protocols
            if request.content_type in known:
                return known[request.content_type]
        protocol: ServerProtocol | None = None
        for candidate in self._protocols:
            if candidate.matches(request):
                protocol = candidate
                break
        if post and len(self._post_protocols) < _POST_PROTOCOLS_MAX:
            self._post_protocols[request.content_type] = protocol
        return protocol

    async def _not_a_procedure(self, request: HttpRequest, protocol: ServerProtocol | None) -> None:
        """A REST route, or ``unimplemented`` in the request's protocol."""
        if await self._rest.serve(request, self.read_max_bytes):
            return
        error = ConnectError(Code.UNIMPLEMENTED, f"no procedure at {request.scope['path']}")
        # A streaming client (a gRPC one probing for reflection) may wait for an answer before
        # it ends its request: wait for the rest of the body only briefly, as calls do.
        bound = open_body_grace(request.scope) if protocol in _CLIENTS_MAY_STREAM else None
        with anyio.move_on_after(bound):
            await drain_body(request.receive)
        await (protocol or CONNECT_UNARY).reject(request, error)


def _refusal(
    request: HttpRequest, protocol: ServerProtocol | None, endpoint: Endpoint
) -> int | None:
    """The plain HTTP status for a request no protocol can serve (405, 415), or None."""
    if request.method not in ("POST", "GET"):
        return 405
    if protocol is None:
        return 415
    return protocol.refusal(request, endpoint.method)


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
