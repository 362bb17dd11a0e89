"""A service that web pages on another origin call from the browser (docs/browsers.md).

Run it with ``python -m examples.browser_cors --origin http://localhost:3000``, then call it
from a page served at that origin with ``@connectrpc/connect-web`` (Connect or gRPC-Web), or
ask it what a browser would (a preflight)::

    curl -i -X OPTIONS http://localhost:8000/greet.v1.GreetService/Greet \\
      -H "Origin: http://localhost:3000" \\
      -H "Access-Control-Request-Method: POST" \\
      -H "Access-Control-Request-Headers: content-type,connect-protocol-version"

``make_app`` builds the same app for other origins; ``--mount /rpc`` serves it under FastAPI
at that path, next to the rest of a web app. tests/browser calls it from headless Chromium.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from functools import partial

import anyio
from fastapi import FastAPI
from google.protobuf import duration_pb2, wrappers_pb2
from hypercorn.asyncio import serve
from hypercorn.config import Config

from connectpy import (
    CORS,
    ASGIApp,
    Code,
    ConnectError,
    Context,
    IdempotencyLevel,
    Message,
    rpc,
)

PACKAGE = "greet.v1"
EXPOSED = ["X-Greeter", "X-Greeted", "X-Reason"]
"""Response headers (and trailers) pages read: metadata beyond what the protocols need."""


class GreetRequest(Message):
    name: str


class GreetReply(Message):
    greeting: str


class CountdownRequest(Message):
    start: int


class Tick(Message):
    remaining: int


class GreetService:
    async def greet(self, request: GreetRequest, ctx: Context) -> GreetReply:
        """Unary, over POST: the page reads the reply, the ``x-greeter`` header and the
        ``x-greeted`` trailer."""
        ctx.response_headers["x-greeter"] = "connectpy"
        ctx.response_trailers["x-greeted"] = request.name
        return GreetReply(greeting=f"Hello, {request.name}!")

    @rpc(idempotency=IdempotencyLevel.NO_SIDE_EFFECTS)
    async def lookup(self, request: GreetRequest) -> GreetReply:
        """Side-effect free, so Connect clients may call it with GET (``useHttpGet``)."""
        return GreetReply(greeting=f"Found {request.name}")

    async def countdown(self, request: CountdownRequest) -> AsyncIterator[Tick]:
        """Server streaming: ``start``, ``start - 1``, ... ``1``."""
        if not 0 <= request.start <= 100:
            raise ConnectError(Code.INVALID_ARGUMENT, "start must be between 0 and 100")
        for remaining in range(request.start, 0, -1):
            yield Tick(remaining=remaining)

    async def refuse(self, request: GreetRequest) -> GreetReply:
        """Always fails, with details and metadata the page decodes."""
        raise ConnectError(
            Code.PERMISSION_DENIED,
            f"{request.name} may not be greeted",
            details=[
                wrappers_pb2.StringValue(value=request.name),
                duration_pb2.Duration(seconds=30),
            ],
            metadata={"x-reason": "on-purpose"},
        )


def make_app(origins: Sequence[str], *, credentials: bool = False) -> ASGIApp:
    """The greet service, callable from pages served at ``origins``."""
    cors = CORS(allow_origins=origins, expose_headers=EXPOSED, allow_credentials=credentials)
    app = ASGIApp(package=PACKAGE, cors=cors)
    app.mount(GreetService())
    return app


def make_fastapi(rpc_app: ASGIApp, path: str) -> FastAPI:
    """A FastAPI app with ``rpc_app`` mounted at ``path``: its CORS covers the RPCs only."""
    outer = FastAPI()

    @outer.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    outer.mount(path, rpc_app)
    return outer


app = make_app(["http://localhost:3000"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.browser_cors")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    parser.add_argument(
        "--origin",
        action="append",
        help="an origin pages call from (repeat it; default http://localhost:3000)",
    )
    parser.add_argument("--mount", default="", help="serve under FastAPI at this path (/rpc)")
    args = parser.parse_args(argv)
    origins = args.origin or ["http://localhost:3000"]
    rpc_app = make_app(origins)
    served = make_fastapi(rpc_app, args.mount) if args.mount else rpc_app

    try:
        sock = socket.create_server(
            (args.host, args.port), family=socket.AF_INET6 if ":" in args.host else socket.AF_INET
        )
    except OSError as error:
        sys.exit(f"cannot listen: {error.strerror}")
    host, port = sock.getsockname()[:2]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # Hypercorn serves the socket, and closes it
    config.keep_alive_max_requests = 100_000  # Hypercorn's default 1000 drops HTTP/2 calls
    where = f"{host} port {port}, path {args.mount or '/'}"
    print(f"Serving {PACKAGE}.GreetService on {where}, for pages at {', '.join(origins)}")
    with contextlib.suppress(KeyboardInterrupt):  # Hypercorn stops gracefully on SIGINT/SIGTERM
        anyio.run(partial(serve, served, config))  # type: ignore[arg-type]  # TypedDict vs mapping


if __name__ == "__main__":
    main()
