"""One in-process call through ``ASGIApp.__call__`` with a fake receive and send: routing,
protocol detection, decode, the handler, encode and the response messages. The raw ASGI
floor app is the baseline: the difference is connectpy's own cost per call, no server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.apps import connectpy_app, raw_app
from benchmarks.common import (
    STREAM_COUNT,
    STREAM_PATH,
    UNARY_PATH,
    envelope,
    get_book_json,
    get_book_proto,
    list_books_proto,
)
from benchmarks.serve import StatusCounter
from connectpy import Context

from ._support import AsgiCall, Benchmark, in_running_loop

APP = connectpy_app()


def _pass_through(context: Context) -> Iterator[None]:
    """The cheapest interceptor: what one costs a call before it does anything."""
    yield


_CONNECT = [(b"connect-protocol-version", b"1")]

CALLS: dict[str, tuple[str, list[tuple[bytes, bytes]], bytes, bool]] = {
    "connect-json": (
        UNARY_PATH,
        [(b"content-type", b"application/json"), *_CONNECT],
        get_book_json(),
        False,
    ),
    "connect-proto": (
        UNARY_PATH,
        [(b"content-type", b"application/proto"), *_CONNECT],
        get_book_proto(),
        False,
    ),
    # Over HTTP/2, as gRPC is: the pair the gRPC target compares.
    "connect-proto-h2c": (
        UNARY_PATH,
        [(b"content-type", b"application/proto"), *_CONNECT],
        get_book_proto(),
        True,
    ),
    "grpc": (
        UNARY_PATH,
        [(b"content-type", b"application/grpc"), (b"te", b"trailers")],
        envelope(get_book_proto()),
        True,
    ),
    f"stream-{STREAM_COUNT}": (
        STREAM_PATH,
        [(b"content-type", b"application/connect+proto"), *_CONNECT],
        envelope(list_books_proto()),
        True,
    ),
}
APPS: dict[str, Any] = {
    "raw": raw_app,
    "raw+counter": StatusCounter(raw_app),
    "connectpy": APP,
    "connectpy+interceptor": connectpy_app(interceptors=[_pass_through]),
}


@pytest.mark.parametrize("app", list(APPS))
@pytest.mark.parametrize("call", list(CALLS))
def bench_call(benchmark: Benchmark, call: str, app: str) -> None:
    benchmark.group = f"routing: {call}"
    request = AsgiCall(*CALLS[call])
    if call.startswith("stream"):
        # Streaming calls start a body-pump task: they need a real loop, whose per-call cost
        # (run_until_complete) is in every row of this group, the floor's too.
        loop = asyncio.new_event_loop()
        try:
            benchmark(request.run_on, loop, APPS[app])
        finally:
            loop.close()
    else:
        in_running_loop(lambda: benchmark(request.run, APPS[app]))
    assert request.status == 200, request.body[:200]
    if call == "grpc":
        assert (b"grpc-status", b"0") in request.trailers, request.trailers
    assert b'"error"' not in request.body


def bench_unknown_procedure(benchmark: Benchmark) -> None:
    benchmark.group = "routing: not found"
    request = AsgiCall(
        "/bench.v1.BookService/Nope", [(b"content-type", b"application/json")], b"{}", False
    )
    in_running_loop(lambda: benchmark(request.run, APP))
    assert request.status == 404
