"""OpenTelemetry: a span and metrics for every call, the caller's trace continued.

Run: ``python -m examples.otel`` (needs ``pip install 'connectpy[otel]' opentelemetry-sdk``;
serves on 127.0.0.1:8003 and prints spans and metrics to the console), then::

    curl -X POST http://127.0.0.1:8003/weather.v1.WeatherService/Forecast \\
      -H "Content-Type: application/json" \\
      -H "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" \\
      -d '{"city": "Oslo"}'

The printed span has that trace id and the caller's span as its parent. docs/observability.md
explains the names.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import AsyncIterator

import anyio
from opentelemetry import metrics, propagate, trace

from connectpy import ASGIApp, AsyncIOServer, Message
from connectpy.otel import OpenTelemetryInterceptor


class ForecastRequest(Message):
    city: str
    hours: int = 3


class Forecast(Message):
    city: str
    celsius: float
    hour: int = 0
    outgoing_traceparent: str = ""


class WeatherService:
    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    async def forecast(self, request: ForecastRequest) -> Forecast:
        """Unary. The call's span is current here: a span started in the handler is its child,
        and the headers of an outgoing call carry the trace on (shown in the response)."""
        with self.tracer.start_as_current_span("look up the station"):
            headers: dict[str, str] = {}
            propagate.inject(headers)  # what an instrumented HTTP or RPC client does
        return Forecast(
            city=request.city, celsius=4.5, outgoing_traceparent=headers.get("traceparent", "")
        )

    async def hourly(self, request: ForecastRequest) -> AsyncIterator[Forecast]:
        """Server streaming: one span for the whole stream, an event per message."""
        for hour in range(request.hours):
            yield Forecast(city=request.city, celsius=4.5 + hour, hour=hour)


def make_app(
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
) -> ASGIApp:
    """The service with the interceptor; the global providers unless others are given."""
    interceptor = OpenTelemetryInterceptor(
        tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    app = ASGIApp(package="weather.v1", interceptors=[interceptor])
    app.mount(WeatherService(trace.get_tracer("examples.otel", tracer_provider=tracer_provider)))
    return app


def _console_providers() -> None:
    """Send spans and metrics to stdout (a real deployment configures an OTLP exporter)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=10000)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.otel")
    parser.add_argument("--port", type=int, default=8003, help="port to bind (default 8003)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("connectpy").setLevel(logging.INFO)
    _console_providers()
    server = AsyncIOServer("127.0.0.1", args.port, app=make_app())
    print(f"Serving weather.v1.WeatherService on http://127.0.0.1:{args.port}; Ctrl-C stops it.")
    anyio.run(server.run)


if __name__ == "__main__":
    main()
