"""Test helpers: serve an ASGI app on a real Hypercorn in a background thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import anyio
import anyio.from_thread
from hypercorn.asyncio import serve

from ._server.asgi import ASGIApp
from ._server.hypercorn import TLSFiles, absorb_shutdown_noise, bind_socket, hypercorn_config

__all__ = ["RunningServer", "serve_in_thread"]


@dataclass(frozen=True, slots=True)
class RunningServer:
    """A server started by :func:`serve_in_thread`."""

    host: str
    port: int
    tls: bool

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def target(self) -> str:
        """``host:port``, as gRPC channels want it."""
        return f"{self.host}:{self.port}"


@contextmanager
def serve_in_thread(
    app: ASGIApp, *, tls: TLSFiles | None = None, host: str = "127.0.0.1"
) -> Iterator[RunningServer]:
    """Serve ``app`` with Hypercorn on ``host`` and a free port until the block exits.

    The server speaks HTTP/1.1 and HTTP/2 (h2c with prior knowledge, or ALPN with ``tls``).
    """
    sock = bind_socket(host, 0)
    port = sock.getsockname()[1]
    config = hypercorn_config(sock=sock, tls=tls)
    sock.detach()  # Hypercorn owns the descriptor now and closes it on shutdown
    stopped = threading.Event()
    with anyio.from_thread.start_blocking_portal() as portal:
        stop = portal.call(anyio.Event)
        future = portal.start_task_soon(_serve_until, app, config, stop, stopped)
        try:
            yield RunningServer(host, port, tls is not None)
        finally:
            portal.call(stop.set)
            future.result(timeout=10)


async def _serve_until(
    app: ASGIApp, config: object, stop: anyio.Event, done: threading.Event
) -> None:
    try:
        with absorb_shutdown_noise():
            await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    finally:
        done.set()
