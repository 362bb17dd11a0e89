"""Hypercorn configuration that every server connectpy starts shares."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

from hypercorn.config import Config

__all__ = ["TLSFiles", "bind_socket", "hypercorn_config"]

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
