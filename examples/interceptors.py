"""Interceptors: a bearer-token check, a log line per call and a timing trailer.

Run: ``python -m examples.interceptors`` (serves on 127.0.0.1:8002, HTTP/1.1 and h2c), then::

    curl -X POST http://127.0.0.1:8002/greet.v1.GreetService/Greet \\
      -H "Content-Type: application/json" -H "Authorization: Bearer alice-token" \\
      -d '{"name": "Bob"}'

Without the header the answer is ``401`` with ``{"code": "unauthenticated", ...}``, and the
body is never read or decoded. docs/interceptors.md explains each part.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import AsyncIterator, Iterator

import anyio

from connectpy import AsyncIOServer, Code, ConnectError, Context, Message
from connectpy.interceptors import Observer

logger = logging.getLogger("examples.interceptors")

# Stands in for a real token store (a database, an identity provider's introspection call).
TOKENS = {"alice-token": "alice", "bob-token": "bob"}


async def require_token(context: Context) -> AsyncIterator[None]:
    """Refuses a call without a known bearer token, before its request is read; tells the
    handler who calls through ``context.state``."""
    scheme, _, token = context.request_headers.get("authorization", "").partition(" ")
    user = TOKENS.get(token) if scheme.lower() == "bearer" else None
    if user is None:
        raise ConnectError(Code.UNAUTHENTICATED, "a valid bearer token is required")
    context.state["user"] = user
    yield


def log_calls(context: Context) -> Iterator[Observer]:
    """One log line per call: the procedure, its outcome and how many messages it moved."""
    counts = {"received": 0, "sent": 0}

    def received(message: object, size: int) -> None:
        counts["received"] += 1

    def sent(message: object, size: int) -> None:
        counts["sent"] += 1

    procedure = context.method.procedure
    try:
        yield Observer(received=received, sent=sent)
    except ConnectError as error:
        logger.warning("%s failed: %s (%s)", procedure, error.code.value, error.message)
        raise
    logger.info("%s ok: %d in, %d out", procedure, counts["received"], counts["sent"])


def time_calls(context: Context) -> Iterator[None]:
    """Sends how long the call took as the ``x-elapsed-ms`` trailer, even when it fails."""
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed_ms = (time.perf_counter() - started) * 1000
        context.response_trailers["x-elapsed-ms"] = f"{elapsed_ms:.3f}"


class GreetRequest(Message):
    name: str


class Greeting(Message):
    text: str
    greeted_by: str


class GreetService:
    async def greet(self, request: GreetRequest, context: Context) -> Greeting:
        """Unary: the caller the interceptor authenticated is in ``context.state``."""
        return Greeting(text=f"Hello, {request.name}!", greeted_by=context.state["user"])

    async def greet_many(self, request: GreetRequest, context: Context) -> AsyncIterator[Greeting]:
        """Server streaming: interceptors wrap it whole, and see each message it sends."""
        for n in range(1, 4):
            yield Greeting(text=f"Hello #{n}, {request.name}!", greeted_by=context.state["user"])


def make_server(port: int = 8002) -> AsyncIOServer:
    """Every call goes through the three interceptors, the outermost first: the timing wraps
    the log line and the token check, so a refused call is timed and logged too."""
    server = AsyncIOServer(
        "127.0.0.1", port, package="greet.v1", interceptors=[time_calls, log_calls]
    )
    server.app.mount(GreetService(), interceptors=[require_token])
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.interceptors")
    parser.add_argument("--port", type=int, default=8002, help="port to bind (default 8002)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    server = make_server(args.port)
    print(f"Serving greet.v1.GreetService on http://127.0.0.1:{args.port}; Ctrl-C stops it.")
    anyio.run(server.run)


if __name__ == "__main__":
    main()
