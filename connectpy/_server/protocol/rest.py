"""REST transcoding: a method with ``@http_option`` also answers its HTTP rule, JSON in and out.

This is what grpc-gateway or Envoy's transcoder do in front of a gRPC server, served by the
app itself: ``GET /v1/books/123`` reaches ``GetBook`` with ``id="123"``. Rules follow
``google.api.http``: path variables (``{id}``, ``{book.id}``, ``{name=shelves/*}``), query
parameters for the remaining fields, and a body that is the whole message (``body: "*"``) or
one field of it. The response body is the response message's JSON; an error is the Connect
error JSON with the HTTP status Connect gives its code.

Spec: https://github.com/googleapis/googleapis/blob/master/google/api/http.proto
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

from ..._model.service import StreamType
from ..._wire import compression as _compression
from ..._wire.compression import IDENTITY
from ..._wire.deadline import parse_connect_timeout
from ...code import Code
from ...context import Context
from ...errors import ConnectError
from ..asgi import HttpRequest, Scope, drain_body, read_body, send_plain
from ..dispatch import Endpoint, run_call
from ..http_rules import HttpRoute, NotAllowed, RouteTable, parse_template, split_path
from ..rest_fields import Transcoder
from .connect import COMPRESS_MIN_BYTES, connect_error_json, connect_http_status
from .single import SingleResponseCall

__all__ = ["RestRouter"]

_TOKEN = re.compile(r"^[A-Z]+$")
_JSON = {"", "application/json"}


@dataclass(frozen=True, slots=True)
class _Target:
    endpoint: Endpoint
    transcoder: Transcoder


class RestRouter:
    """The HTTP rules of every mounted method; asked by the app for paths that are not
    procedures."""

    def __init__(self) -> None:
        self._table: RouteTable[_Target] = RouteTable()

    def add(self, endpoints: Sequence[Endpoint]) -> None:
        """Compile the HTTP rules of ``endpoints``, all or none.

        Raises:
            TypeError: a rule is on a streaming method.
            ValueError: a rule is malformed, names fields the request lacks, or matches the
                same requests as another rule.
        """
        self._table.add([_route(e) for e in endpoints if e.method.http is not None])

    async def serve(self, request: HttpRequest, read_max_bytes: int) -> bool:
        """Serve ``request`` if its path matches an HTTP rule; ``False`` if none does."""
        if not self._table:
            return False
        found = self._table.match(request.method, _raw_segments(request.scope))
        if found is None:
            return False
        if isinstance(found, NotAllowed):
            await drain_body(request.receive)  # see _RestCall.finish
            allowed = ", ".join(found.allowed)
            error = ConnectError(Code.UNIMPLEMENTED, f"{request.method} is not allowed here")
            await _send_error(request, 405, error, [(b"allow", allowed.encode())])
            return True
        target = found.route.target
        call = _RestCall(request, target, found.values, read_max_bytes)
        await run_call(target.endpoint, call, request)
        return True


def _route(endpoint: Endpoint) -> HttpRoute[_Target]:
    method = endpoint.method
    rule = method.http
    assert rule is not None
    owner = f"{method.service}.{method.name}"
    where = f"{owner}: HTTP rule {rule.method} {rule.path!r}"
    if method.stream_type is not StreamType.UNARY:
        raise TypeError(f"{where}: REST transcoding serves unary methods only")
    if not _TOKEN.match(rule.method):
        raise ValueError(f"{where}: {rule.method!r} is not an HTTP method")
    if rule.method == "GET" and rule.body:
        raise ValueError(f"{where}: a GET rule cannot take a body")
    try:
        template = parse_template(rule.path)
        names = [variable.name for variable in template.variables]
        transcoder = Transcoder.build(method.request_type, names, rule.body)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return HttpRoute(rule.method, template, _Target(endpoint, transcoder), owner)


def _raw_segments(scope: Scope) -> list[str]:
    """The path's segments below the app's mount point, still percent-encoded.

    ``raw_path`` keeps ``%2F`` apart from ``/``; without it (some servers) the decoded path
    is re-encoded, which cannot tell the two apart.
    """
    path: str = scope["path"]
    raw = scope.get("raw_path")
    text = raw.decode("utf-8", "replace").partition("?")[0] if raw else quote(path)
    segments = split_path(text)
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        segments = segments[root.rstrip("/").count("/") :]
    return segments


async def _send_error(
    request: HttpRequest,
    status: int,
    error: ConnectError,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [*(headers or []), (b"content-type", b"application/json")]
    headers += [(k.encode(), v.encode()) for k, v in error.metadata]
    await send_plain(request.send, status, headers, connect_error_json(error))


class _RestCall(SingleResponseCall):
    """One transcoded unary call: the request built from URL and body, JSON both ways."""

    codec = "json"

    def __init__(
        self, request: HttpRequest, target: _Target, values: dict[str, str], read_max_bytes: int
    ) -> None:
        self.request = request
        self.read_max_bytes = read_max_bytes
        self.context = Context(
            method=target.endpoint.method,
            protocol="rest",
            http_method=request.method,
            request=request,
            scope=request.scope,
        )
        self._transcoder = target.transcoder
        self._values = values
        self._request_compression = IDENTITY
        self._response_compression = IDENTITY
        self._response: bytes | None = None
        self._body_read = False

    def start(self) -> None:
        request = self.request
        if self._transcoder.body and self.request.content_type not in _JSON:
            raise ConnectError(
                Code.INVALID_ARGUMENT,
                f"the request body must be application/json, not {self.request.content_type}",
            )
        self.context.set_timeout(parse_connect_timeout(request.header(b"connect-timeout-ms")))
        self._request_compression = _compression.require(request.header(b"content-encoding"))
        self._response_compression = _compression.negotiate_response(
            request.header(b"accept-encoding"), IDENTITY
        )

    async def read_single(self) -> bytes:
        self._body_read = True
        body = await read_body(self.request.receive, self.read_max_bytes)
        if body:
            body = self._request_compression.decompress(body, self.read_max_bytes)
        # latin-1 as Starlette does: the query is ASCII on the wire, parse_qsl decodes %XX.
        query = parse_qsl(
            self.request.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True
        )
        return self._transcoder.request(self._values, query, body)

    async def finish(self, error: ConnectError | None) -> None:
        if not self._body_read:
            await self._drain_unread_body()
        headers = list(self.context.response_header_pairs())
        headers += [(b"trailer-" + k, v) for k, v in self.context.response_trailer_pairs()]
        if error is not None or self._response is None:
            error = error or ConnectError(Code.INTERNAL, "handler produced no response")
            await _send_error(self.request, connect_http_status(error.code), error, headers)
            return
        body = self._response
        headers.append((b"content-type", b"application/json"))
        compression = self._response_compression
        if compression is not IDENTITY and len(body) >= COMPRESS_MIN_BYTES:
            body = compression.compress(body)
            headers.append((b"content-encoding", compression.name.encode()))
        await send_plain(self.request.send, 200, headers, body)
