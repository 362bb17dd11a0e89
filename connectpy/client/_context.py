"""What a client interceptor sees of its call: the client side's counterpart of
:class:`~connectpy.Context`, with the same names where the two sides mean the same thing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio
from starlette.datastructures import Headers, MutableHeaders

from .._model.service import StreamType

if TYPE_CHECKING:
    from .._model.service import MethodInfo

__all__ = ["ClientContext"]


class ClientContext:
    """One outgoing call, as its interceptors see it.

    Attributes:
        method: the RPC being called (``method.procedure``, ``method.service``,
            ``method.name``, ``method.stream_type``).
        protocol: ``"connect"``, ``"grpc"`` or ``"grpc-web"``.
        url: the URL the request goes to (without a Connect GET's query).
        peer: the server's ``(host, port)``, from the URL.
        timeout_ms: the timeout sent to the server, or ``None``.
        request_headers: the headers the request will carry, the protocol's own included;
            an interceptor adds to them (an ``authorization`` header, a ``traceparent``)
            before its ``yield``.
    """

    __slots__ = (
        "_deadline",
        "_response_headers",
        "_response_trailers",
        "_state",
        "method",
        "peer",
        "protocol",
        "request_headers",
        "timeout_ms",
        "url",
    )

    def __init__(
        self,
        *,
        method: MethodInfo,
        protocol: str,
        url: str,
        peer: tuple[str, int],
        request_headers: MutableHeaders,
        timeout_ms: int | None,
    ) -> None:
        self.method = method
        self.protocol = protocol
        self.url = url
        self.peer = peer
        self.request_headers = request_headers
        self.timeout_ms = timeout_ms
        self._deadline = None if timeout_ms is None else anyio.current_time() + timeout_ms / 1000
        self._response_headers: Headers | None = None
        self._response_trailers: Headers | None = None
        self._state: dict[str, Any] | None = None

    @property
    def stream_type(self) -> StreamType:
        """The call's stream type (the same as ``method.stream_type``)."""
        return self.method.stream_type

    @property
    def state(self) -> dict[str, Any]:
        """Values one interceptor leaves for another; empty at the start of every call."""
        if self._state is None:
            self._state = {}
        return self._state

    @property
    def deadline(self) -> float | None:
        """The deadline on anyio's clock (:func:`anyio.current_time`), or ``None``."""
        return self._deadline

    def time_remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), or ``None`` with no deadline."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - anyio.current_time())

    @property
    def response_headers(self) -> Headers:
        """The response headers, once they came (empty before, and for a call that failed
        without a response)."""
        return Headers() if self._response_headers is None else self._response_headers

    @property
    def response_trailers(self) -> Headers:
        """The response trailers, once the call ended (for a failed call, its metadata)."""
        return Headers() if self._response_trailers is None else self._response_trailers

    def record_response(
        self, headers: Sequence[tuple[bytes, bytes]], trailers: Sequence[tuple[bytes, bytes]]
    ) -> None:
        """Keep what the server sent (the call does this, not interceptors)."""
        self._response_headers = Headers(raw=list(headers))
        self._response_trailers = Headers(raw=list(trailers))
