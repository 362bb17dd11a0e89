"""A standalone server: Connect, gRPC and gRPC-Web on one port, through Hypercorn."""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Sequence

import anyio
from anyio.abc import TaskStatus
from hypercorn.asyncio import serve

from ._server.hypercorn import TLSFiles, absorb_shutdown_noise, bind_socket, hypercorn_config
from ._server.lifespan import Lifespan
from .app import DEFAULT_READ_MAX_BYTES, ASGIApp
from .interceptors import Interceptor

__all__ = ["AsyncIOServer", "TLSFiles"]

logger = logging.getLogger("connectpy")

_ANY_HOST = ("[::]", "::")


class AsyncIOServer:
    """Serves services over Connect, gRPC and gRPC-Web with Hypercorn, HTTP/1.1 and HTTP/2.

    Without TLS, HTTP/2 is h2c (prior knowledge, as gRPC clients use it); with ``tls``, ALPN
    picks h2 or http/1.1. Hypercorn's per-connection request limit is lifted, so a gRPC channel
    can make any number of calls on one connection.

    Server reflection and health checking are served too, unless turned off with
    ``reflection=False`` and ``health=False``.

    Example:
        ```python
        server = AsyncIOServer()  # every interface, port 50051
        asyncio.run(server.run(BookService()))
        ```

    Args:
        host: the address to listen on; ``"[::]"`` (the default) means every IPv6 and IPv4
            interface (``"0.0.0.0"``, IPv4 only, where the system has no dual-stack IPv6).
        port: the TCP port; 0 picks a free one (read it from :attr:`port` once started).
        tls: certificate and key files (:class:`TLSFiles`) to serve HTTPS, and mutual TLS
            when ``client_ca`` is set.
        app: an app to serve, with services mounted already; services passed to :meth:`run`
            are added to it. By default a new :class:`ASGIApp`.
        package: the protobuf package of services mounted without one (see :class:`ASGIApp`).
        read_max_bytes: the largest request message accepted.
        access_log: log every request to stderr.
        reflection: serve gRPC server reflection (:meth:`ASGIApp.enable_reflection`), so
            that ``grpcurl`` and similar tools find the services without a ``.proto``.
        health: serve ``grpc.health.v1.Health`` (:meth:`ASGIApp.enable_health`), for load
            balancers and Kubernetes probes; report statuses through ``server.app.health``.
        interceptors: wrap every call (see :class:`ASGIApp`).
        lifespan: startup and shutdown code around the serving (see :class:`ASGIApp`).

    ``package``, ``read_max_bytes``, ``interceptors`` and ``lifespan`` configure the app this
    server makes; with ``app``, give them to that app instead.
    """

    def __init__(
        self,
        host: str = "[::]",
        port: int = 50051,
        *,
        tls: TLSFiles | None = None,
        app: ASGIApp | None = None,
        package: str = "",
        read_max_bytes: int = DEFAULT_READ_MAX_BYTES,
        access_log: bool = False,
        reflection: bool = True,
        health: bool = True,
        interceptors: Sequence[Interceptor] = (),
        lifespan: Lifespan | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        if app is not None and (interceptors or lifespan is not None):
            raise ValueError("give interceptors and lifespan to the app passed as app=")
        self.app = app or ASGIApp(
            package=package,
            read_max_bytes=read_max_bytes,
            interceptors=interceptors,
            lifespan=lifespan,
        )
        self.access_log = access_log
        self.serve_reflection = reflection
        self.serve_health = health
        self._stop: anyio.Event | None = None
        self._stop_requested = False

    async def run(
        self, *services: object, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Mount ``services`` and serve until :meth:`shutdown`, SIGINT or SIGTERM.

        Run it with ``asyncio.run(server.run(...))``, or start it in a task group with
        ``port = await task_group.start(server.run, ...)``, which returns once the server
        listens.
        """
        for service in services:
            self.app.mount(service)
        if self.serve_reflection:
            self.app.enable_reflection()
        if self.serve_health:
            self.app.enable_health()
        self._stop = anyio.Event()
        if self._stop_requested:
            self._stop.set()
        sock = self._listen()
        self.port = sock.getsockname()[1]
        config = hypercorn_config(sock=sock, tls=self.tls, access_log=self.access_log)
        sock.detach()  # Hypercorn owns the descriptor now and closes it on shutdown
        task_status.started(self.port)
        with absorb_shutdown_noise() as shutdown:
            await serve(self.app, config, shutdown_trigger=self._wait_for_stop)  # type: ignore[arg-type]
        if shutdown.cut_off:
            logger.warning(
                "calls still running after the %g s graceful timeout were cut off",
                config.graceful_timeout,
            )

    def shutdown(self) -> None:
        """Stop accepting connections, let calls in flight finish, then return from :meth:`run`.

        Call it from the event loop that runs the server (from another thread, use
        ``anyio.from_thread.run_sync(server.shutdown)`` or the loop's ``call_soon_threadsafe``).
        """
        self._stop_requested = True
        if self._stop is not None:
            self._stop.set()

    def _listen(self) -> socket.socket:
        if self.host in _ANY_HOST and socket.has_dualstack_ipv6():
            sock = socket.create_server(
                ("::", self.port), family=socket.AF_INET6, backlog=1024, dualstack_ipv6=True
            )
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        host = "0.0.0.0" if self.host in _ANY_HOST else self.host.strip("[]")
        return bind_socket(host, self.port)

    async def _wait_for_stop(self) -> None:
        assert self._stop is not None
        async with anyio.create_task_group() as tasks:
            if threading.current_thread() is threading.main_thread():
                tasks.start_soon(self._stop_on_signal)
            await self._stop.wait()
            tasks.cancel_scope.cancel()

    async def _stop_on_signal(self) -> None:
        try:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    self.shutdown()
                    return
        except NotImplementedError:  # pragma: no cover - Windows: no loop signal handlers
            return
