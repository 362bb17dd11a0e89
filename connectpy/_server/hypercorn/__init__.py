"""Hypercorn configuration that every server connectpy starts shares, and the version-checked
patches of Hypercorn's HTTP/2 handling that connectpy applies on import (one module each)."""

from __future__ import annotations

import logging
import socket
import ssl
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from hypercorn.config import Config

from . import backpressure, client_gone, graceful, late_data, memory

__all__ = [
    "ShutdownOutcome",
    "TLSFiles",
    "absorb_shutdown_noise",
    "bind_socket",
    "hypercorn_config",
    "is_shutdown_noise",
    "quiet_shutdown_noise",
]

backpressure.apply()
late_data.apply()
memory.apply()
graceful.apply()
# Last: it wraps H2Protocol._handle_events and must see each read's events together (to
# count the streams a read opens, and to drop those it also resets).
client_gone.apply()

# Hypercorn closes a connection after 1000 requests (its HTTP/2 Rapid Reset mitigation) and,
# on HTTP/2, silently drops every call still in flight when it does: a gRPC channel that
# multiplexes many calls over one connection loses some. We lift the limit; internet-facing
# deployments put a proxy with its own mitigation in front.
KEEP_ALIVE_MAX_REQUESTS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """Paths to PEM files: the server's certificate and key, and optionally a CA bundle that
    client certificates must chain to (mutual TLS)."""

    certfile: str
    keyfile: str
    client_ca: str | None = None


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket (port 0 picks a free port), so the port is known before serving."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def hypercorn_config(
    *,
    bind: list[str] | None = None,
    sock: socket.socket | None = None,
    tls: TLSFiles | None = None,
    access_log: bool = False,
) -> Config:
    """A Hypercorn config serving HTTP/1.1 and HTTP/2 (h2c, or ALPN over TLS) for RPC."""
    config = Config()
    if sock is not None:
        config.bind = [f"fd://{sock.fileno()}"]
    elif bind:
        config.bind = bind
    config.keep_alive_max_requests = KEEP_ALIVE_MAX_REQUESTS
    config.keep_alive_timeout = 120
    if access_log:
        config.accesslog = "-"
    if tls is not None:
        config.certfile = tls.certfile
        config.keyfile = tls.keyfile
        if tls.client_ca:
            config.ca_certs = tls.client_ca
            config.verify_mode = ssl.CERT_REQUIRED
    return config


class _ShutdownNoise(logging.Filter):
    """Drops the tracebacks asyncio logs when Hypercorn's shutdown cancels open connections.

    Past its graceful timeout Hypercorn cancels each connection's task; asyncio then logs the
    cancellation as an unhandled exception in a stream callback, sometimes grouped with the
    ``RuntimeError`` of Hypercorn's task group refusing new tasks while it shuts down. Those
    are the expected end of a call cut short, not failures; anything else is still logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return error is None or not is_shutdown_noise(error)


def is_shutdown_noise(error: BaseException) -> bool:
    """Whether ``error`` is only what Hypercorn's shutdown raises for connections it cancels
    past the graceful timeout (it can also escape ``serve`` itself, as an exception group)."""
    if isinstance(error, BaseExceptionGroup):
        return all(is_shutdown_noise(inner) for inner in error.exceptions)
    if isinstance(error, RuntimeError):
        return str(error).endswith("is shutting down")
    # A cancellation (asyncio's CancelledError), the only BaseException-only error here.
    return not isinstance(error, Exception | KeyboardInterrupt | SystemExit)


_NOISE_FILTER = _ShutdownNoise()


def quiet_shutdown_noise() -> None:
    """Install the filter for the asyncio logger (once) in the process serving Hypercorn."""
    asyncio_logger = logging.getLogger("asyncio")
    if _NOISE_FILTER not in asyncio_logger.filters:
        asyncio_logger.addFilter(_NOISE_FILTER)
    # The same shutdown leaves one of Hypercorn's idle-timeout coroutines unawaited.
    warnings.filterwarnings(
        "ignore", message="coroutine 'TCPServer._idle_timeout' was never awaited"
    )


class ShutdownOutcome:
    """How a Hypercorn run ended, as :func:`absorb_shutdown_noise` saw it."""

    __slots__ = ("cut_off",)

    def __init__(self) -> None:
        self.cut_off = False
        """Calls still running past the graceful timeout were cancelled."""


@contextmanager
def absorb_shutdown_noise() -> Iterator[ShutdownOutcome]:
    """Run Hypercorn inside this: its shutdown noise is neither logged nor raised.

    Hypercorn sometimes raises the cancellations of the calls it cuts off as an exception
    group out of ``serve``/``run``; that is absorbed here and reported as ``cut_off``, for the
    caller to say in its own way. Any other error propagates.
    """
    quiet_shutdown_noise()
    outcome = ShutdownOutcome()
    try:
        yield outcome
    except BaseExceptionGroup as group:
        if not is_shutdown_noise(group):
            raise
        outcome.cut_off = True
