"""examples/otel.py on a real Hypercorn, exporting to the SDK's in-memory exporters: a gRPC
unary call that continues the caller's trace and a Connect server stream."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from connectpy.testing import RunningServer, serve_in_thread
from examples import otel

pytestmark = pytest.mark.timeout(60)

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
OSLO = b"\n\x04Oslo"  # ForecastRequest(city="Oslo") in proto binary


@pytest.fixture
def exported() -> Iterator[tuple[RunningServer, InMemorySpanExporter, InMemoryMetricReader]]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    with serve_in_thread(otel.make_app(tracer_provider, meter_provider)) as server:
        yield server, spans, reader
    meter_provider.shutdown()
    tracer_provider.shutdown()


def by_name(spans: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans.get_finished_spans()}


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def metric_names(reader: InMemoryMetricReader) -> set[str]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


def test_a_grpc_unary_call_continues_the_callers_trace(
    exported: tuple[RunningServer, InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    server, spans, reader = exported
    with grpc.insecure_channel(server.target) as channel:
        forecast = channel.unary_unary("/weather.v1.WeatherService/Forecast")
        reply = forecast(OSLO, metadata=[("traceparent", TRACEPARENT)], timeout=10)
    found = by_name(spans)
    call, child = found["weather.v1.WeatherService/Forecast"], found["look up the station"]
    assert f"{call.context.trace_id:032x}" == TRACE_ID
    assert child.parent is not None
    assert child.parent.span_id == call.context.span_id
    # The handler's outgoing headers name its own span: the trace goes on past this server.
    assert f"-{child.context.span_id:016x}-".encode() in reply
    assert attributes(call) | {"network.peer.port": 0} == {
        "rpc.system": "grpc",
        "rpc.service": "weather.v1.WeatherService",
        "rpc.method": "Forecast",
        "rpc.grpc.status_code": 0,
        "network.peer.address": "127.0.0.1",
        "network.peer.port": 0,
    }
    assert metric_names(reader) == {
        "rpc.server.duration",
        "rpc.server.request.size",
        "rpc.server.response.size",
        "rpc.server.requests_per_rpc",
        "rpc.server.responses_per_rpc",
    }


def test_a_connect_server_stream_is_one_span_with_an_event_per_message(
    exported: tuple[RunningServer, InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    server, spans, _ = exported
    body = b'{"city": "Oslo", "hours": 3}'
    with httpx.Client(http2=True, http1=False, timeout=10) as client:
        response = client.post(
            server.url + "/weather.v1.WeatherService/Hourly",
            content=struct.pack(">BI", 0, len(body)) + body,
            headers={"content-type": "application/connect+json"},
        )
    assert response.status_code == 200
    call = by_name(spans)["weather.v1.WeatherService/Hourly"]
    assert attributes(call)["rpc.system"] == "connect_rpc"
    assert "rpc.connect_rpc.error_code" not in attributes(call)
    kinds = [(event.attributes or {}).get("message.type") for event in call.events]
    assert kinds == ["RECEIVED", "SENT", "SENT", "SENT"]
