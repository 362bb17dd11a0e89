"""What a handler can ask about its call: headers in and out, trailers, the deadline."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from starlette.datastructures import Headers, MutableHeaders, QueryParams

if TYPE_CHECKING:
    from ._service import MethodInfo

__all__ = ["Context"]


class Context:
    """Per-call state handed to a handler that declares a second parameter.

    Attributes:
        method: the RPC being served.
        protocol: the wire protocol (``"connect"``, ``"grpc"``, ``"grpc-web"``, ``"rest"``).
        http_method: ``"POST"``, or ``"GET"`` for a Connect GET.
        request_headers: the request's HTTP headers (case-insensitive, multi-valued).
        query_params: the query string (only Connect GET requests carry one).
        response_headers: headers to send; append to them before the first response message.
        response_trailers: trailers to send after the last message, or with the error.
        timeout_ms: the timeout the client sent, or ``None`` when it set none.
    """

    __slots__ = (
        "_deadline",
        "http_method",
        "method",
        "protocol",
        "query_params",
        "request_headers",
        "response_headers",
        "response_trailers",
        "scope",
        "timeout_ms",
    )

    def __init__(
        self,
        *,
        method: MethodInfo,
        protocol: str,
        http_method: str,
        request_headers: Headers,
        query_params: QueryParams,
        timeout_ms: int | None = None,
        scope: object = None,
    ) -> None:
        self.method = method
        self.protocol = protocol
        self.http_method = http_method
        self.request_headers = request_headers
        self.query_params = query_params
        self.response_headers = MutableHeaders()
        self.response_trailers = MutableHeaders()
        self.timeout_ms = timeout_ms
        self.scope = scope
        self._deadline = None if timeout_ms is None else anyio.current_time() + timeout_ms / 1000

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
