"""Candidate optimisations and before/after comparisons, measured without a server.

A *patch* changes one connectpy internal in the current process only (``python -m
benchmarks.serve connectpy-opt`` or the in-process comparison ``python -m
benchmarks.experiments``): a proposal for the library, not part of it; a patch whose target
moved raises instead of measuring nothing. The proposals of the 2026-11-28 profile
(``content-length``, no ``QueryParams`` for an empty query, indexed header lookups) are in the
library now, so the registry is empty until the next profile suggests more.

``--baseline REF`` adds connectpy as committed at ``REF`` (see :mod:`benchmarks.baseline`):
``python -m benchmarks.experiments --baseline HEAD`` measures uncommitted changes against the
last commit, each configuration in its own process, interleaved.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from .common import BOOK, book_proto

__all__ = ["PATCHES", "apply", "optimised_app", "raw_chunked_app", "raw_grpc_accept_app"]

PATCHES: dict[str, Callable[[], None]] = {}
"""Candidate changes by name, each applied to the running process by calling it."""

_CHUNKED = {
    b"application/json": json.dumps(BOOK, separators=(",", ":")).encode(),
    b"application/proto": book_proto(),
}


async def raw_chunked_app(scope: Any, receive: Any, send: Any) -> None:
    """The unary floor without ``content-length``: what chunked HTTP/1.1 costs a server."""
    from .apps import read_request  # not at import: ``--baseline`` needs connectpy unimported

    if scope["type"] != "http":
        return
    content_type = await read_request(scope, receive)
    if content_type is None:
        return
    body = _CHUNKED.get(content_type)
    headers = [(b"content-type", content_type)]
    await send({"type": "http.response.start", "status": 200 if body else 415, "headers": headers})
    await send({"type": "http.response.body", "body": body or b""})


_GRPC_ACCEPT = (b"grpc-accept-encoding", b"identity,gzip")


async def raw_grpc_accept_app(scope: Any, receive: Any, send: Any) -> None:
    """The floor, with one more gRPC response header (``grpc-accept-encoding``, which
    connectpy sends and the floor does not): what a header costs the server."""
    from .apps import raw_app  # not at import, as above

    if scope["type"] != "http" or not scope["path"].endswith("GetBook"):
        await raw_app(scope, receive, send)
        return

    async def send_more(message: Any) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message["headers"], _GRPC_ACCEPT]
        await send(message)

    await raw_app(scope, receive, send_more)


def apply(names: Sequence[str] | None = None) -> None:
    for name in PATCHES if names is None else names:
        PATCHES[name]()


def optimised_app() -> Any:
    """connectpy with every patch in :data:`PATCHES`."""
    from .apps import connectpy_app

    apply()
    return connectpy_app()


CALL_NAMES = ("connect-json", "connect-proto", "connect-proto-h2c", "grpc", "stream")
"""The in-process calls: Connect unary (JSON, proto; proto again with an HTTP/2 scope), gRPC
unary, a server stream of 100."""


def _measure(patches: Sequence[str], calls: int, rounds: int) -> dict[str, float]:
    """µs of this thread's CPU per in-process call (so time the machine gives to other
    processes does not count), best of ``rounds``, with ``patches`` applied."""
    import asyncio

    from .apps import connectpy_app, raw_app
    from .micro._support import AsgiCall, in_running_loop
    from .micro.bench_routing import CALLS

    apply(patches)
    app = connectpy_app()
    requests = {
        "connect-json": CALLS["connect-json"],
        "connect-proto": CALLS["connect-proto"],
        "connect-proto-h2c": CALLS["connect-proto-h2c"],
        "grpc": CALLS["grpc"],
        "stream": next(call for name, call in CALLS.items() if name.startswith("stream")),
    }
    results: dict[str, float] = {}

    def best_of(run: Callable[[], None], count: int) -> float:
        for _ in range(count // 2):
            run()
        best = float("inf")
        for _ in range(rounds):
            start = time.thread_time()
            for _ in range(count):
                run()
            best = min(best, (time.thread_time() - start) / count)
        return best * 1e6

    def unary() -> None:
        for name in CALL_NAMES[:-1]:
            for label, target in (("floor", raw_app), ("connectpy", app)):
                request = AsgiCall(*requests[name])
                results[f"{label} {name}"] = best_of(partial(request.run, target), calls)

    in_running_loop(unary)
    # Streaming calls start tasks: each runs on a real loop (whose cost the floor pays too).
    loop = asyncio.new_event_loop()
    try:
        for label, target in (("floor", raw_app), ("connectpy", app)):
            request = AsgiCall(*requests["stream"])
            results[f"{label} stream"] = best_of(
                partial(request.run_on, loop, target), max(1, calls // 20)
            )
    finally:
        loop.close()
    return results


def _child(args: argparse.Namespace) -> None:
    if args.baseline_dir:
        from .baseline import activate

        activate(args.baseline_dir)  # before anything imports connectpy
    print(json.dumps(_measure(args.patch or [], args.calls, args.rounds)))


def main(argv: Sequence[str] | None = None) -> None:
    """Each configuration in its own process, interleaved, best of all repetitions."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.experiments")
    parser.add_argument("--calls", type=int, default=2000, help="calls per round (unary)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--patch", action="append", choices=list(PATCHES))
    parser.add_argument("--baseline", metavar="REF", help="also measure connectpy at this commit")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--baseline-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return
    configs: list[tuple[str, list[str]]] = []
    if args.baseline:
        from .baseline import export

        configs.append(
            (f"connectpy at {args.baseline}", ["--baseline-dir", str(export(args.baseline))])
        )
    configs.append(("connectpy (work tree)", []))
    for patch in args.patch or PATCHES:
        configs.append((f"work tree + {patch}", ["--patch", patch]))
    best: dict[str, dict[str, float]] = {}
    for _ in range(max(1, min(args.reps, 10))):
        for name, extra in configs:
            command = [sys.executable, "-m", "benchmarks.experiments", "--child", *extra]
            command += [f"--calls={args.calls}", f"--rounds={args.rounds}"]
            output = subprocess.run(
                command, capture_output=True, text=True, check=True, timeout=600
            )
            seen = best.setdefault(name, {})
            for key, value in json.loads(output.stdout).items():
                seen[key] = min(value, seen.get(key, float("inf")))
    _report(best)


def _report(best: dict[str, dict[str, float]]) -> None:
    print("In-process CPU µs per call (thread time, best of all rounds), no server;")
    print("the stream is one call of 100 messages. Above floor in brackets.")
    print(f"{'configuration':32}" + "".join(f"{name:>22}" for name in CALL_NAMES))
    for config, values in best.items():
        cells = []
        for name in CALL_NAMES:
            ours, floor = values[f"connectpy {name}"], values[f"floor {name}"]
            cells.append(f"{ours:>12.1f} ({ours - floor:>6.1f})")
        print(f"{config:32}" + "".join(f"{cell:>22}" for cell in cells))


if __name__ == "__main__":
    main()
