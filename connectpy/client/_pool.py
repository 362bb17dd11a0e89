"""The network transport: connections per origin, HTTP/1.1 or HTTP/2, cleartext or TLS.

HTTP/2 connections are shared by all calls to an origin (a new one opens only when the server
limits concurrent streams or goes away); HTTP/1.1 connections are pooled, one call each.
Over TLS, ALPN picks the version; in cleartext, HTTP/2 means prior knowledge (h2c).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Literal

import anyio
import anyio.abc
from anyio.streams.tls import TLSAttribute

from ._h1 import H1Connection
from ._h2 import H2Connection
from ._http import Exchange, RequestHead, Spawn, TransportError

__all__ = ["HttpTransport", "HttpVersion"]

HttpVersion = Literal["1.1", "2"]

_Origin = tuple[str, str, int]


class HttpTransport:
    """Opens exchanges over pooled connections.

    Args:
        spawn: starts a background task in the client's task group (connection readers).
        http_version: ``"2"`` or ``"1.1"``; over TLS ``None`` lets ALPN choose (HTTP/2 first),
            in cleartext ``None`` means HTTP/1.1.
        ssl_context: for ``https`` origins (certificates, client certificates).
        connect_timeout: seconds to open a connection.
    """

    def __init__(
        self,
        spawn: Spawn,
        *,
        http_version: HttpVersion | None = None,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self._spawn = spawn
        self._version = http_version
        self._ssl_context = ssl_context
        self._connect_timeout = connect_timeout
        self._h2: dict[_Origin, list[H2Connection]] = {}
        self._h1_idle: dict[_Origin, list[H1Connection]] = {}
        self._all: set[H1Connection | H2Connection] = set()
        self._locks: dict[_Origin, anyio.Lock] = {}
        self._closed = False

    async def open(self, head: RequestHead, body: bytes | None) -> Exchange:
        if self._closed:
            raise TransportError("the client is closed")
        origin = (head.scheme, head.host, head.port)
        for connection in self._h2.get(origin, []):
            if connection.usable and connection.has_room:
                return await connection.open(head, body)
        idle = self._h1_idle.get(origin, [])
        while idle:
            h1 = idle.pop()
            if h1.usable:
                return await h1.open(head, body)
        lock = self._locks.setdefault(origin, anyio.Lock())
        async with lock:  # one handshake at a time per origin, so HTTP/2 calls share one
            for connection in self._h2.get(origin, []):
                if connection.usable and connection.has_room:
                    return await connection.open(head, body)
            new = await self._connect(origin)
        return await new.open(head, body)

    async def _connect(self, origin: _Origin) -> H1Connection | H2Connection:
        scheme, host, port = origin
        tls = scheme == "https"
        try:
            with anyio.fail_after(self._connect_timeout):
                if tls:
                    stream: anyio.abc.ByteStream = await anyio.connect_tcp(
                        host,
                        port,
                        ssl_context=self._tls_context(),
                        tls_hostname=host,
                        tls_standard_compatible=False,
                    )
                else:
                    stream = await anyio.connect_tcp(host, port)
        except TimeoutError:
            raise TransportError(f"timed out connecting to {host}:{port}") from None
        except (OSError, ssl.SSLError, anyio.BrokenResourceError) as exc:
            raise TransportError(f"cannot connect to {host}:{port}: {exc}") from None
        if tls:
            use_h2 = stream.extra(TLSAttribute.alpn_protocol, None) == "h2"
        else:
            use_h2 = self._version == "2"
        connection: H1Connection | H2Connection
        if use_h2:
            connection = H2Connection(stream, self._spawn)
            try:
                await connection.start()
            except TransportError:
                await stream.aclose()
                raise
            self._h2.setdefault(origin, []).append(connection)
            self._h2[origin] = [c for c in self._h2[origin] if c.usable]
        else:
            connection = H1Connection(stream, self._spawn, self._release_h1(origin))
        self._all = {c for c in self._all if not c.closed}
        self._all.add(connection)
        return connection

    def _release_h1(self, origin: _Origin) -> Callable[[H1Connection], None]:
        def release(connection: H1Connection) -> None:
            if self._closed:
                connection.reset()
            else:
                self._h1_idle.setdefault(origin, []).append(connection)

        return release

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        context = self._ssl_context
        protocols = {"2": ["h2"], "1.1": ["http/1.1"]}.get(self._version or "", ["h2", "http/1.1"])
        context.set_alpn_protocols(protocols)
        return context

    async def aclose(self) -> None:
        self._closed = True
        connections, self._all = self._all, set()
        self._h2.clear()
        self._h1_idle.clear()
        for connection in connections:
            await connection.aclose()
