"""Candidate optimisations, measured without editing ``connectpy/``: each patches one
connectpy internal in the current process only (``python -m benchmarks.serve connectpy-opt``
or the in-process comparison ``python -m benchmarks.experiments``). They are proposals for
the library, not part of it; a patch whose target moved raises instead of measuring nothing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from starlette.datastructures import Headers, QueryParams

from .common import BOOK, book_proto

__all__ = ["PATCHES", "apply", "optimised_app", "raw_chunked_app"]


def _content_length() -> None:
    """Unary responses carry ``content-length``: Hypercorn's HTTP/1.1 (h11) then sends the
    body as is instead of chunked (one frame less to build and write, fewer bytes)."""
    connect: Any = importlib.import_module("connectpy._protocol.connect")
    original = connect.send_plain

    async def send_plain(
        send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b""
    ) -> None:
        headers.append((b"content-length", str(len(body)).encode()))
        await original(send, status, headers, body)

    connect.send_plain = send_plain


_NO_QUERY = QueryParams()


def _lazy_query() -> None:
    """Skip parsing an empty query string (every POST) into a new QueryParams."""
    connect: Any = importlib.import_module("connectpy._protocol.connect")

    def query_params(query: Any = b"") -> QueryParams:
        return QueryParams(query) if query else _NO_QUERY

    assert connect.QueryParams is QueryParams, "connect no longer uses QueryParams"
    connect.QueryParams = query_params


class _IndexedHeaders(Headers):
    """Starlette's Headers with ``get`` answered from a dict built on first use (first value
    wins, as ``Headers.__getitem__`` does) instead of a scan that decodes every name."""

    _index: dict[str, str] | None = None

    def get(self, key: str, default: Any = None) -> Any:
        index = self._index
        if index is None:
            index = self._index = {
                name.decode("latin-1"): value.decode("latin-1")
                for name, value in reversed(self.raw)
            }
        return index.get(key.lower(), default)


def _indexed_headers() -> None:
    """Protocol header lookups (content-type, connect-protocol-version, timeouts, encodings:
    five to seven a call) go through a dict."""
    asgi: Any = importlib.import_module("connectpy._asgi")
    assert asgi.Headers is Headers, "_asgi no longer uses starlette's Headers"
    asgi.Headers = _IndexedHeaders


_CHUNKED = {
    b"application/json": json.dumps(BOOK, separators=(",", ":")).encode(),
    b"application/proto": book_proto(),
}


async def raw_chunked_app(scope: Any, receive: Any, send: Any) -> None:
    """The unary floor without ``content-length``: what chunked HTTP/1.1 costs a server."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return
        more = message.get("more_body", False)
    content_type = b""
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value
            break
    body = _CHUNKED.get(content_type)
    headers = [(b"content-type", content_type)]
    await send({"type": "http.response.start", "status": 200 if body else 415, "headers": headers})
    await send({"type": "http.response.body", "body": body or b""})


PATCHES: dict[str, Callable[[], None]] = {
    "content-length": _content_length,
    "lazy-query": _lazy_query,
    "indexed-headers": _indexed_headers,
}


def apply(names: Sequence[str] | None = None) -> None:
    for name in PATCHES if names is None else names:
        PATCHES[name]()


def optimised_app() -> Any:
    """connectpy with every patch above."""
    from .apps import connectpy_app

    apply()
    return connectpy_app()


def _measure(patches: Sequence[str], calls: int, rounds: int) -> dict[str, float]:
    """µs of this thread's CPU per in-process call (so time the machine gives to other
    processes does not count), best of ``rounds``, with ``patches`` applied."""
    from .apps import connectpy_app, raw_app
    from .micro._support import AsgiCall, in_running_loop
    from .micro.bench_routing import CALLS

    apply(patches)
    app = connectpy_app()
    results: dict[str, float] = {}

    def run() -> None:
        for name in ("connect-json", "connect-proto"):
            for label, target in (("floor", raw_app), ("connectpy", app)):
                request = AsgiCall(*CALLS[name])
                for _ in range(calls // 2):
                    request.run(target)
                best = float("inf")
                for _ in range(rounds):
                    start = time.thread_time()
                    for _ in range(calls):
                        request.run(target)
                    best = min(best, (time.thread_time() - start) / calls)
                results[f"{label} {name}"] = best * 1e6

    in_running_loop(run)
    return results


CONFIGS: tuple[tuple[str, ...], ...] = (
    (),
    ("content-length",),
    ("lazy-query",),
    ("indexed-headers",),
    ("content-length", "lazy-query", "indexed-headers"),
)


def main(argv: Sequence[str] | None = None) -> None:
    """Each configuration in its own process, interleaved, best of repetitions."""
    import subprocess
    import sys

    parser = argparse.ArgumentParser(prog="python -m benchmarks.experiments")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--patch", action="append", choices=list(PATCHES))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_measure(args.patch or [], args.calls, args.rounds)))
        return
    best: dict[tuple[str, ...], dict[str, float]] = {}
    for _ in range(max(1, min(args.reps, 10))):
        for config in CONFIGS:
            command = [sys.executable, "-m", "benchmarks.experiments", "--child"]
            command += [f"--calls={args.calls}", f"--rounds={args.rounds}"]
            for patch in config:
                command += ["--patch", patch]
            output = subprocess.run(
                command, capture_output=True, text=True, check=True, timeout=300
            )
            for key, value in json.loads(output.stdout).items():
                seen = best.setdefault(config, {})
                seen[key] = min(value, seen.get(key, float("inf")))
    print("In-process CPU µs per call (thread time, best of all rounds), no server:")
    print(f"{'configuration':55} {'json':>7} {'proto':>7} {'json-floor':>11} {'proto-floor':>11}")
    for config, values in best.items():
        name = " + ".join(config) or "connectpy as is"
        json_ = values["connectpy connect-json"]
        proto = values["connectpy connect-proto"]
        print(
            f"{name:55} {json_:7.1f} {proto:7.1f} "
            f"{json_ - values['floor connect-json']:11.1f} "
            f"{proto - values['floor connect-proto']:11.1f}"
        )


if __name__ == "__main__":
    main()
