"""Start one benchmark server: ``python -m benchmarks.serve APP SERVER PORT``.

APP is ``raw``, ``connectpy``, ``connectrpc`` (connect-python 0.9), ``connectrpc-0.13`` and
``connectrpc-0.13-google`` (from their own venv, see ``OWN_VENV``), ``pydantic-rpc`` (ASGI
apps), ``connectpy-opt`` (connectpy with the patches of ``benchmarks.experiments``),
``connectpy-base`` (connectpy as
committed at the ref ``benchmarks.run --baseline`` exported, see ``benchmarks.baseline``) or
``grpcio`` (its own server), or ``connect-go`` (SERVER ``go``: the Go binary
``benchmarks.codegen`` builds, run in this process's place).
SERVER is ``hypercorn``, ``uvicorn``, ``granian`` or ``pyvoy``, each with one worker on uvloop
and its access log off. SIGTERM or SIGINT stops it. The harness pins the process (and so every
thread and child it starts) to one core with ``taskset``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = [
    "APPS",
    "COUNTS_PATH",
    "EXPERIMENTAL",
    "OWN_VENV",
    "SERVERS",
    "StatusCounter",
    "load_app",
    "main",
]

HOST = "127.0.0.1"
COUNTS_PATH = "/__bench__/counts"

APPS: dict[str, str] = {
    "raw": "benchmarks.apps:raw_app",
    "connectpy": "benchmarks.apps:connectpy_app()",
    "connectrpc": "benchmarks.peers.connectrpc_app:app()",
    "connectrpc-0.13": "benchmarks.peers.connectrpc13_app:app()",
    "connectrpc-0.13-google": "benchmarks.peers.connectrpc13_app:google_app()",
    "pydantic-rpc": "benchmarks.peers.pydantic_rpc_app:app()",
    "connectpy-opt": "benchmarks.experiments:optimised_app()",
    "raw-chunked": "benchmarks.experiments:raw_chunked_app",
    "raw-grpc-accept": "benchmarks.experiments:raw_grpc_accept_app",
    "connectpy-base": "benchmarks.baseline:connectpy_app()",
}
"""Where each ASGI app lives: ``module:attribute``, called when it ends in ``()``."""
EXPERIMENTAL = frozenset({"connectpy-opt", "raw-chunked", "raw-grpc-accept", "connectpy-base"})
"""Apps measured only when asked for (``--app``): candidate optimisations, not rows."""

SERVERS = ("hypercorn", "uvicorn", "granian", "pyvoy")

OWN_VENV = {"connectrpc-0.13": ".venv-connectrpc", "connectrpc-0.13-google": ".venv-connectrpc"}
"""Apps whose peer cannot share the bench venv: their servers run with this venv (under
``benchmarks/``) instead."""

_APP_ENV = "CONNECTPY_BENCH_APP"
_BARE_ENV = "CONNECTPY_BENCH_BARE"


def load_app(name: str) -> Any:
    """The ASGI app called ``name`` in :data:`APPS`."""
    module_name, _, attribute = APPS[name].partition(":")
    call = attribute.endswith("()")
    value = getattr(importlib.import_module(module_name), attribute.removesuffix("()"))
    return value() if call else value


Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class StatusCounter:
    """Counts the responses an app sends and those that failed, for the harness to read at
    ``GET /__bench__/counts``: h2load cannot read Hypercorn's HTTP/1.1 status lines (their
    reason phrase is empty) and never sees a gRPC status or a Connect end-of-stream error.

    Failed: an HTTP status outside 2xx, a ``grpc-status`` other than 0 (in trailers or a
    trailers-only response), or a final body message carrying a Connect stream ``"error"``;
    not once the app has read ``http.disconnect`` (h2load hangs up on the calls in flight
    when its time is up, and some frameworks then still write a ``canceled`` status).
    Every ASGI row (the floor too) runs under it, so its small cost cancels out above the floor.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.responses = 0
        self.failed = 0

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == COUNTS_PATH:
            body = json.dumps({"responses": self.responses, "failed": self.failed}).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return

        gone = False  # after the client hung up, an error status is the framework's own

        async def watching_receive() -> Message:
            nonlocal gone
            message = await receive()
            if message["type"] == "http.disconnect":
                gone = True
            return message

        async def counting_send(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.body":
                if (
                    not message.get("more_body", False)
                    and b'"error"' in message.get("body", b"")
                    and not gone
                ):
                    self.failed += 1
            elif kind == "http.response.start":
                self.responses += 1
                status = message["status"]
                if (not 200 <= status < 300 or _grpc_failed(message.get("headers", ()))) and (
                    not gone
                ):
                    self.failed += 1
            elif (
                kind == "http.response.trailers"
                and _grpc_failed(message.get("headers", ()))
                and not gone
            ):
                self.failed += 1
            await send(message)

        await self.app(scope, watching_receive, counting_send)


def _grpc_failed(headers: Any) -> bool:
    for name, value in headers:
        if name == b"grpc-status":
            return bool(value != b"0")
    return False


def counted_app(name: str) -> StatusCounter:
    return StatusCounter(load_app(name))


def granian_target() -> Any:
    """Granian's worker process (and pyvoy's Envoy) imports its app by name: this factory
    reads which one."""
    name = os.environ[_APP_ENV]
    return load_app(name) if os.environ.get(_BARE_ENV) else counted_app(name)


def _hypercorn(app: Any, port: int) -> None:
    import uvloop
    from hypercorn.asyncio import serve

    from connectpy._server.hypercorn import hypercorn_config

    # connectpy's server config for every row: HTTP/1.1 and h2c, no per-connection request cap.
    config = hypercorn_config(bind=[f"{HOST}:{port}"])
    uvloop.run(serve(app, config))


def _uvicorn(app: Any, port: int) -> None:
    import uvicorn

    uvicorn.run(
        app,
        host=HOST,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


def _granian(app_name: str, port: int) -> None:
    from granian import Granian

    os.environ[_APP_ENV] = app_name
    Granian(
        "benchmarks.serve:granian_target",
        address=HOST,
        port=port,
        interface="asgi",
        workers=1,
        runtime_threads=1,
        http="auto",
        loop="uvloop",
        websockets=False,
        log_level="warning",
        log_access=False,
        factory=True,
    ).serve()


def _pyvoy(app_name: str, port: int) -> None:
    """pyvoy: Envoy (a child process) with the app in an embedded Python, one worker thread."""
    import asyncio

    from pyvoy import PyvoyServer

    os.environ[_APP_ENV] = app_name
    server = PyvoyServer(
        "benchmarks.pyvoy_app:app",
        address=HOST,
        port=port,
        worker_threads=1,
        log_level="error",
        stdout=None,
        stderr=None,
    )

    async def serve() -> None:
        async with server:
            await asyncio.Event().wait()  # until SIGTERM ends the process (and Envoy with it)

    asyncio.run(serve())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve", description=__doc__)
    parser.add_argument("app", choices=[*APPS, "grpcio", "connect-go"])
    parser.add_argument("server", choices=[*SERVERS, "grpcio", "go"])
    parser.add_argument("port", type=int)
    parser.add_argument(
        "--bare", action="store_true", help="without the status counter (for profiling)"
    )
    args = parser.parse_args(argv)
    if args.app == "connect-go":
        from .codegen import CONNECT_GO_BINARY

        os.execv(CONNECT_GO_BINARY, [str(CONNECT_GO_BINARY), str(args.port)])
    if args.app == "grpcio":
        from .peers import grpcio_server

        grpcio_server.run(HOST, args.port)
        return
    if args.server in ("granian", "pyvoy"):
        if args.bare:
            os.environ[_BARE_ENV] = "1"
        (_granian if args.server == "granian" else _pyvoy)(args.app, args.port)
        return
    runners: dict[str, Callable[[Any, int], None]] = {
        "hypercorn": _hypercorn,
        "uvicorn": _uvicorn,
    }
    app = load_app(args.app) if args.bare else counted_app(args.app)
    runners[args.server](app, args.port)


if __name__ == "__main__":
    main()
