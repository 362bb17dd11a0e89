"""OpenTelemetry tracing and metrics for every call, as an interceptor (``connectpy[otel]``).

It follows OpenTelemetry's semantic conventions for RPC servers in the form connect-go's
``otelconnect`` and the gRPC instrumentations emit: a ``SERVER`` span named
``<service>/<method>`` and the ``rpc.server.*`` histograms. See docs/observability.md.
"""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import Iterator
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, propagate, trace
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # the otel extra is not installed
    raise ImportError(
        "connectpy.otel needs opentelemetry-api: pip install 'connectpy[otel]'"
    ) from exc

from .code import Code
from .context import Context
from .errors import ConnectError
from .interceptors import Observer

__all__ = ["OpenTelemetryInterceptor"]

_SCOPE = "connectpy"
_VERSION = importlib.metadata.version("connectpy")

# rpc.system by protocol: gRPC-Web is gRPC's wire format, and REST routes answer with
# Connect's error JSON.
_SYSTEMS = {"connect": "connect_rpc", "grpc": "grpc", "grpc-web": "grpc", "rest": "connect_rpc"}

# The codes a server's span is an error for: the server's fault, or one it cannot tell apart
# from its own (as the gRPC conventions list them). A client's bad request leaves it unset.
_SERVER_FAULTS = frozenset(
    {
        Code.UNKNOWN,
        Code.DEADLINE_EXCEEDED,
        Code.UNIMPLEMENTED,
        Code.INTERNAL,
        Code.UNAVAILABLE,
        Code.DATA_LOSS,
    }
)


class OpenTelemetryInterceptor:
    """Traces and measures every call it wraps, with OpenTelemetry's RPC conventions.

    Each call gets a ``SERVER`` span, the child of the caller's when the request carries a
    W3C ``traceparent`` (or whatever the propagator reads). The span is current while the
    handler runs, so the handler's own spans and outgoing calls join the trace. The span has
    ``rpc.system`` (``connect_rpc`` or ``grpc``), ``rpc.service``, ``rpc.method``, the peer's
    ``network.peer.address`` and ``network.peer.port``, the status
    (``rpc.grpc.status_code``, or ``rpc.connect_rpc.error_code`` on an error) and a
    ``message`` event per message. The metrics are the histograms ``rpc.server.duration``
    (ms), ``rpc.server.request.size`` and ``rpc.server.response.size`` (bytes, a record per
    message) and ``rpc.server.requests_per_rpc`` and ``rpc.server.responses_per_rpc``.

    Args:
        tracer_provider: where spans go; the global one by default.
        meter_provider: where metrics go; the global one by default.
        propagator: reads the caller's trace context from the request headers; the global
            one (W3C trace context and baggage unless configured otherwise) by default.
        message_events: add a span event per message (a long stream makes many).
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        propagator: TextMapPropagator | None = None,
        message_events: bool = True,
    ) -> None:
        self._tracer = trace.get_tracer(_SCOPE, _VERSION, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE, _VERSION, meter_provider=meter_provider)
        self._propagator = propagator
        self._message_events = message_events
        self._duration = meter.create_histogram(
            "rpc.server.duration", unit="ms", description="Duration of inbound RPCs."
        )
        self._request_size = meter.create_histogram(
            "rpc.server.request.size", unit="By", description="Size of RPC request messages."
        )
        self._response_size = meter.create_histogram(
            "rpc.server.response.size", unit="By", description="Size of RPC response messages."
        )
        self._requests_per_rpc = meter.create_histogram(
            "rpc.server.requests_per_rpc",
            unit="{count}",
            description="Messages received per RPC.",
        )
        self._responses_per_rpc = meter.create_histogram(
            "rpc.server.responses_per_rpc", unit="{count}", description="Messages sent per RPC."
        )

    def __call__(self, context: Context) -> Iterator[Observer]:
        started = time.perf_counter()
        method = context.method
        system = _SYSTEMS.get(context.protocol, "connect_rpc")
        labels: dict[str, Any] = {
            "rpc.system": system,
            "rpc.service": method.service,
            "rpc.method": method.name,
        }
        carrier = context.request_headers
        propagator = self._propagator
        parent = propagate.extract(carrier) if propagator is None else propagator.extract(carrier)
        span = self._tracer.start_span(
            f"{method.service}/{method.name}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={**labels, **_peer(context)},
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        messages = _Messages(
            span, labels, self._request_size, self._response_size, self._message_events
        )
        error: ConnectError | None = None
        try:
            yield Observer(received=messages.received, sent=messages.sent)
        except ConnectError as exc:
            error = exc
            raise
        finally:
            status = _status(system, error)
            span.set_attributes(status)
            if error is not None and error.code in _SERVER_FAULTS:
                span.set_status(Status(StatusCode.ERROR, error.message or error.code.value))
            span.end()
            otel_context.detach(token)
            labels.update(status)
            self._duration.record((time.perf_counter() - started) * 1000, labels)
            self._requests_per_rpc.record(messages.received_count, labels)
            self._responses_per_rpc.record(messages.sent_count, labels)


class _Messages:
    """One call's message counts, sizes and span events."""

    __slots__ = (
        "_events",
        "_labels",
        "_request_size",
        "_response_size",
        "_span",
        "received_count",
        "sent_count",
    )

    def __init__(
        self,
        span: trace.Span,
        labels: dict[str, Any],
        request_size: metrics.Histogram,
        response_size: metrics.Histogram,
        events: bool,
    ) -> None:
        self._span = span
        self._labels = dict(labels)  # the call's labels get its status later; sizes do not
        self._request_size = request_size
        self._response_size = response_size
        self._events = events
        self.received_count = 0
        self.sent_count = 0

    def received(self, message: object, size: int) -> None:
        self.received_count += 1
        self._request_size.record(size, self._labels)
        if self._events:
            self._event("RECEIVED", self.received_count, size)

    def sent(self, message: object, size: int) -> None:
        self.sent_count += 1
        self._response_size.record(size, self._labels)
        if self._events:
            self._event("SENT", self.sent_count, size)

    def _event(self, kind: str, number: int, size: int) -> None:
        attributes: dict[str, Any] = {
            "message.type": kind,
            "message.id": number,
            "message.uncompressed_size": size,
        }
        self._span.add_event("message", attributes)


def _peer(context: Context) -> dict[str, Any]:
    peer = context.peer
    if peer is None:
        return {}
    return {"network.peer.address": peer[0], "network.peer.port": peer[1]}


def _status(system: str, error: ConnectError | None) -> dict[str, Any]:
    if system == "grpc":
        return {"rpc.grpc.status_code": 0 if error is None else error.code.number}
    return {} if error is None else {"rpc.connect_rpc.error_code": error.code.value}
