"""The OpenTelemetry interceptor, in process, against the SDK's in-memory span and metric
exporters: a unary and a server-streaming call, the caller's trace context, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from opentelemetry import propagate
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from connectpy import ASGIApp, Code, ConnectError, Message
from connectpy.otel import OpenTelemetryInterceptor

pytestmark = pytest.mark.anyio

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"


class Echo(Message):
    text: str
    traceparent: str = ""


class TraceService:
    async def echo(self, request: Echo) -> Echo:
        """Propagates the current trace as an outgoing call would."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return Echo(text=request.text, traceparent=carrier.get("traceparent", ""))

    def echo_sync(self, request: Echo) -> Echo:
        """The same from a worker thread."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return Echo(text=request.text, traceparent=carrier.get("traceparent", ""))

    async def repeat(self, request: Echo) -> AsyncIterator[Echo]:
        for _ in range(3):
            yield Echo(text=request.text)

    async def missing(self, request: Echo) -> Echo:
        raise ConnectError(Code.NOT_FOUND, "no such thing")

    async def crash(self, request: Echo) -> Echo:
        raise RuntimeError("a bug")


@dataclass
class Telemetry:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    app: ASGIApp

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def histograms(self) -> dict[str, list[HistogramDataPoint]]:
        data = self.metrics.get_metrics_data()
        assert data is not None
        found: dict[str, list[HistogramDataPoint]] = {}
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                assert scope.scope.name == "connectpy"
                for metric in scope.metrics:
                    points = found.setdefault(metric.name, [])
                    points.extend(p for p in metric.data.data_points)  # type: ignore[misc]
        return found


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    interceptor = OpenTelemetryInterceptor(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        propagator=TraceContextTextMapPropagator(),
    )
    app = ASGIApp(package="trace.v1", interceptors=[interceptor])
    app.mount(TraceService())
    yield Telemetry(spans, reader, app)
    meter_provider.shutdown()
    tracer_provider.shutdown()


async def post(app: ASGIApp, method: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post(f"/trace.v1.TraceService/{method}", **kwargs)


@pytest.mark.parametrize("method", ["Echo", "EchoSync"])
async def test_a_unary_call_continues_the_callers_trace(telemetry: Telemetry, method: str) -> None:
    response = await post(
        telemetry.app, method, json={"text": "hi"}, headers={"traceparent": TRACEPARENT}
    )
    assert response.status_code == 200
    (span,) = telemetry.finished()
    assert span.name == "trace.v1.TraceService/" + method
    assert span.kind is SpanKind.SERVER
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == CALLER_SPAN_ID
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    # The handler's outgoing traceparent names the server span as the parent.
    assert response.json()["traceparent"] == f"00-{TRACE_ID}-{span.context.span_id:016x}-01"
    assert dict(span.attributes or {}) == {
        "rpc.system": "connect_rpc",
        "rpc.service": "trace.v1.TraceService",
        "rpc.method": method,
        "network.peer.address": "127.0.0.1",
        "network.peer.port": 123,
    }
    assert span.status.status_code is StatusCode.UNSET
    sizes = {"RECEIVED": len(response.request.content), "SENT": len(response.content)}
    events = [(e.name, dict(e.attributes or {})) for e in span.events]
    assert events == [
        ("message", {"message.type": kind, "message.id": 1, "message.uncompressed_size": size})
        for kind, size in sizes.items()
    ]
    histograms = telemetry.histograms()
    assert sorted(histograms) == [
        "rpc.server.duration",
        "rpc.server.request.size",
        "rpc.server.requests_per_rpc",
        "rpc.server.response.size",
        "rpc.server.responses_per_rpc",
    ]
    (duration,) = histograms["rpc.server.duration"]
    assert duration.count == 1
    assert 0 < duration.sum < 2000  # milliseconds
    assert dict(duration.attributes or {}) == {
        "rpc.system": "connect_rpc",
        "rpc.service": "trace.v1.TraceService",
        "rpc.method": method,
    }
    assert histograms["rpc.server.request.size"][0].sum == sizes["RECEIVED"]
    assert histograms["rpc.server.response.size"][0].sum == sizes["SENT"]


async def test_a_server_stream_counts_its_messages(telemetry: Telemetry) -> None:
    body = b"\x00\x00\x00\x00\x0d" + b'{"text":"ab"}'
    headers = {"content-type": "application/connect+json"}
    response = await post(telemetry.app, "Repeat", content=body, headers=headers)
    assert response.status_code == 200
    (span,) = telemetry.finished()
    assert span.name == "trace.v1.TraceService/Repeat"
    assert span.parent is None  # no traceparent: a new trace
    kinds = [(e.attributes or {}).get("message.type") for e in span.events]
    assert kinds == ["RECEIVED", "SENT", "SENT", "SENT"]
    histograms = telemetry.histograms()
    assert histograms["rpc.server.requests_per_rpc"][0].sum == 1
    assert histograms["rpc.server.responses_per_rpc"][0].sum == 3
    assert histograms["rpc.server.response.size"][0].count == 3


async def test_errors_set_the_status_attribute_and_server_faults_the_span_status(
    telemetry: Telemetry,
) -> None:
    await post(telemetry.app, "Missing", json={"text": ""})
    await post(telemetry.app, "Crash", json={"text": ""})
    missing, crash = telemetry.finished()
    assert (missing.attributes or {})["rpc.connect_rpc.error_code"] == "not_found"
    assert missing.status.status_code is StatusCode.UNSET  # the caller's problem
    assert (crash.attributes or {})["rpc.connect_rpc.error_code"] == "internal"
    assert crash.status.status_code is StatusCode.ERROR
    codes = {
        (p.attributes or {})["rpc.method"]: (p.attributes or {})["rpc.connect_rpc.error_code"]
        for p in telemetry.histograms()["rpc.server.duration"]
    }
    assert codes == {"Missing": "not_found", "Crash": "internal"}
