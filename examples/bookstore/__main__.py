"""``python -m examples.bookstore``: serve the bookstore on Hypercorn, HTTP/1.1 and h2c.

Ctrl-C (or SIGTERM) shuts the server down gracefully.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
from functools import partial

import anyio
from hypercorn.asyncio import serve
from hypercorn.config import Config

from .app import app


def base_url(host: str, port: int) -> str:
    """The URL to print: ``localhost`` for loopback and wildcard binds, as in the guide."""
    if host in ("127.0.0.1", "0.0.0.0", "::", "::1", "localhost"):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def banner(url: str) -> str:
    """The curl lines to try against a running bookstore."""
    return f"""\
Bookstore: FastAPI REST at {url}/api, Connect RPC at {url}/rpc (HTTP/1.1 and h2c). Ctrl-C stops it.

# REST
curl {url}/api/books/1

# RPC
curl -X POST {url}/rpc/BookRPCService/GetBook \\
  -H "Content-Type: application/json" \\
  -d '{{"id": "1"}}'

# RPC over HTTP/2 without TLS (h2c)
curl --http2-prior-knowledge -X POST {url}/rpc/BookRPCService/GetBook \\
  -H "Content-Type: application/json" \\
  -d '{{"id": "1"}}'

# RPC as a Connect GET (GetBook has no side effects, so it is cacheable)
curl -G {url}/rpc/BookRPCService/GetBook \\
  --data-urlencode encoding=json --data-urlencode 'message={{"id": "1"}}'

# An unknown book: HTTP 404 with {{"code":"not_found","message":"Book 42 not found"}}
curl -i -X POST {url}/rpc/BookRPCService/GetBook \\
  -H "Content-Type: application/json" \\
  -d '{{"id": "42"}}'
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.bookstore", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    args = parser.parse_args(argv)

    # Listen first, so a busy port is a one-line error and --port 0 prints the port it got.
    try:
        sock = socket.create_server(
            (args.host, args.port), family=socket.AF_INET6 if ":" in args.host else socket.AF_INET
        )
    except OSError as error:
        sys.exit(
            f"cannot listen on {args.host} port {args.port}: {os.strerror(error.errno or 0)}; "
            "pick another port with --port (make demo PORT=8001)"
        )
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    port = sock.getsockname()[1]

    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # Hypercorn serves the socket, and closes it
    # Hypercorn closes a connection after 1000 requests, dropping HTTP/2 calls in flight.
    config.keep_alive_max_requests = 100_000

    print(banner(base_url(args.host, port)), flush=True)
    # Without a shutdown trigger, Hypercorn stops gracefully on SIGINT and SIGTERM; the
    # suppress covers a Ctrl-C that comes before it installed its signal handlers.
    with contextlib.suppress(KeyboardInterrupt):
        # Hypercorn types ASGI messages as TypedDicts, Starlette as mappings: same protocol.
        anyio.run(partial(serve, app, config))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
