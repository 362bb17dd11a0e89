"""What a handler can ask about its call: headers in and out, trailers, the deadline."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from starlette.datastructures import Headers, MutableHeaders, QueryParams

if TYPE_CHECKING:
    from ._model.service import MethodInfo

__all__ = ["Context", "RequestView"]

_NO_HEADERS: tuple[tuple[bytes, bytes], ...] = ()


class RequestView(Protocol):
    """Where a context gets its request headers and query when a handler first asks."""

    @property
    def headers(self) -> Headers: ...

    @property
    def query_params(self) -> QueryParams: ...


class Context:
    """Per-call state handed to a handler that declares a second parameter.

    Attributes:
        method: the RPC being served.
        protocol: the wire protocol (``"connect"``, ``"grpc"``, ``"grpc-web"``, ``"rest"``).
        http_method: ``"POST"``, or ``"GET"`` for a Connect GET.
        timeout_ms: the timeout the client sent, or ``None`` when it set none.
        scope: the ASGI scope of the request.
    """

    # The headers and the query are built on first use: most handlers never look at them,
    # and building them costs a few microseconds a call.
    __slots__ = (
        "_deadline",
        "_header_sender",
        "_query_params",
        "_request_headers",
        "_response_headers",
        "_response_trailers",
        "_source",
        "_state",
        "http_method",
        "method",
        "protocol",
        "scope",
        "started_at",
        "timeout_ms",
    )

    def __init__(
        self,
        *,
        method: MethodInfo,
        protocol: str,
        http_method: str,
        request: RequestView | None = None,
        request_headers: Headers | None = None,
        query_params: QueryParams | None = None,
        timeout_ms: int | None = None,
        scope: object = None,
    ) -> None:
        """``request`` supplies the headers and query on first use, unless they are given."""
        self.method = method
        self.protocol = protocol
        self.http_method = http_method
        self._source = request
        self._request_headers = request_headers
        self._query_params = query_params
        self._response_headers: MutableHeaders | None = None
        self._response_trailers: MutableHeaders | None = None
        self.timeout_ms = timeout_ms
        self.scope = scope
        self.started_at = time.monotonic()
        """When the call began (:func:`time.monotonic`), for its duration in logs and metrics."""
        self._deadline = None if timeout_ms is None else anyio.current_time() + timeout_ms / 1000
        self._header_sender: Callable[[], Awaitable[None]] | None = None
        self._state: dict[str, Any] | None = None

    @property
    def peer(self) -> tuple[str, int] | None:
        """The client's address as ``(host, port)``, or ``None`` when the server gave none
        (a Unix socket, some test clients)."""
        scope = self.scope
        client = scope.get("client") if isinstance(scope, Mapping) else None
        return None if client is None else (str(client[0]), int(client[1]))

    @property
    def state(self) -> dict[str, Any]:
        """Values an interceptor leaves for the handler (e.g. the authenticated caller);
        empty at the start of every call."""
        if self._state is None:
            self._state = {}
        return self._state

    @property
    def request_headers(self) -> Headers:
        """The request's HTTP headers (case-insensitive, multi-valued)."""
        if self._request_headers is None:
            source = self._source
            self._request_headers = Headers() if source is None else source.headers
        return self._request_headers

    @property
    def query_params(self) -> QueryParams:
        """The query string (only Connect GET and REST requests carry one)."""
        if self._query_params is None:
            source = self._source
            self._query_params = QueryParams() if source is None else source.query_params
        return self._query_params

    @property
    def response_headers(self) -> MutableHeaders:
        """Headers to send; add to them before the first response message."""
        if self._response_headers is None:
            self._response_headers = MutableHeaders()
        return self._response_headers

    @property
    def response_trailers(self) -> MutableHeaders:
        """Trailers to send after the last message, or with the error."""
        if self._response_trailers is None:
            self._response_trailers = MutableHeaders()
        return self._response_trailers

    def response_header_pairs(self) -> Sequence[tuple[bytes, bytes]]:
        """The response headers set so far as raw pairs (for the protocols that send them)."""
        headers = self._response_headers
        return _NO_HEADERS if headers is None else headers.raw

    def response_trailer_pairs(self) -> Sequence[tuple[bytes, bytes]]:
        """The response trailers set so far as raw pairs (for the protocols that send them)."""
        trailers = self._response_trailers
        return _NO_HEADERS if trailers is None else trailers.raw

    async def send_headers(self) -> None:
        """Send the response headers now, before the first response message.

        For a streaming response that may wait before its first message, so that the client
        sees the headers (and gRPC's initial metadata) at once. Headers set afterwards are
        not sent. A unary response always carries its headers with its message: this does
        nothing there, nor once headers are out.
        """
        if self._header_sender is not None:
            await self._header_sender()

    def set_header_sender(self, sender: Callable[[], Awaitable[None]]) -> None:
        """What :meth:`send_headers` calls (set by the streaming dispatch, not by handlers)."""
        self._header_sender = sender

    @property
    def deadline(self) -> float | None:
        """The deadline on anyio's clock (:func:`anyio.current_time`), or ``None``."""
        return self._deadline

    def set_timeout(self, timeout_ms: int | None) -> None:
        """Start the call's deadline (protocols call this once they parsed the header)."""
        self.timeout_ms = timeout_ms
        self._deadline = None if timeout_ms is None else anyio.current_time() + timeout_ms / 1000

    def time_remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), or ``None`` with no deadline."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - anyio.current_time())
