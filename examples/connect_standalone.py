"""Connect RPC standalone (the FastAPI integration guide's Option 3) on Hypercorn.

Run it with ``python -m examples.connect_standalone``, then::

    curl -X POST http://localhost:8000/BookService/GetBook \\
      -H "Content-Type: application/json" \\
      -d '{"id": "123"}'

``app`` is a plain ASGI app, so any ASGI server runs it too, e.g.
``uvicorn examples.connect_standalone:app`` or ``hypercorn -c hypercorn.toml
examples.connect_standalone:app`` (docs/getting-started.md has the Hypercorn settings).
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
from functools import partial

import anyio
from hypercorn.asyncio import serve
from hypercorn.config import Config

from connectpy import ASGIApp, Message


class BookRequest(Message):
    id: str


class BookResponse(Message):
    id: str
    title: str
    author: str
    price: float


class BookService:
    async def get_book(self, request: BookRequest) -> BookResponse:
        return BookResponse(
            id=request.id, title=f"Book {request.id}", author="Author Name", price=29.99
        )


app = ASGIApp()
app.mount(BookService())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.connect_standalone")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    args = parser.parse_args(argv)

    try:
        sock = socket.create_server(
            (args.host, args.port), family=socket.AF_INET6 if ":" in args.host else socket.AF_INET
        )
    except OSError as error:
        sys.exit(f"cannot listen: {error.strerror}")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    host, port = sock.getsockname()[:2]

    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # Hypercorn serves the socket, and closes it
    config.keep_alive_max_requests = 100_000  # Hypercorn's default 1000 drops HTTP/2 calls
    print(f"Serving BookService on {host} port {port} (HTTP/1.1 and h2c); Ctrl-C stops it.")
    with contextlib.suppress(KeyboardInterrupt):  # Hypercorn stops gracefully on SIGINT/SIGTERM
        anyio.run(partial(serve, app, config))  # type: ignore[arg-type]  # TypedDict vs mapping


if __name__ == "__main__":
    main()
