"""Graceful shutdown on Hypercorn 0.18, close to grpc-go's ``GracefulStop`` (issue #14).

When Hypercorn starts shutting down it stops accepting connections and gives the calls in
flight ``graceful_timeout`` seconds, then cancels whatever still runs: those calls were cut
without a status. Per connection, this module adds a small task (one per connection, none
per call) that, a moment before the grace period ends (``_margin``), cancels the calls that
asked for it (:func:`.client_gone.cancel_on_disconnect`) telling them why, so
they still answer ``unavailable`` (:func:`.client_gone.cut_by_shutdown`) before
Hypercorn cuts the connection. The task ends when its connection closes, so it never holds
a connection open. Streams opened during the drain are refused with ``REFUSED_STREAM``
(:mod:`connectpy._server.hypercorn.client_gone`), which tells the client that a retry is safe.

No early GOAWAY: an HTTP/2 server would announce the shutdown at once (GOAWAY with the
largest stream id, as Go's servers do) and let the streams in flight finish, but the h2
library moves a connection that received a GOAWAY to its closed state and rejects every
later frame: the Python clients built on it (httpx, connectpy's own client) would lose the
responses still in flight. Hypercorn sends its GOAWAY once a connection is idle, and
``SETTINGS_MAX_CONCURRENT_STREAMS = 0`` with the first refused stream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from .client_gone import running_apps

__all__ = ["apply"]

_MARK = "__connectpy_graceful__"
_WATCH = "_connectpy_shutdown_watch"  # on a ProtocolWrapper: its watcher's cancel scope


def apply() -> bool:
    """Patch Hypercorn's per-connection protocol once; False if it is not as expected."""
    try:
        from hypercorn.protocol import ProtocolWrapper
    except ImportError:  # pragma: no cover - Hypercorn is a dependency
        return False
    initiate = getattr(ProtocolWrapper, "initiate", None)
    handle = getattr(ProtocolWrapper, "handle", None)
    if initiate is None or handle is None:
        return False
    if getattr(initiate, _MARK, False):
        return True
    ProtocolWrapper.initiate = _watching(initiate)  # type: ignore[method-assign]
    ProtocolWrapper.handle = _unwatching(handle)  # type: ignore[method-assign]
    return True


def _watching(original: Callable[[Any], Awaitable[None]]) -> Any:
    async def initiate(self: Any) -> None:
        await original(self)
        self.task_group.spawn(_watch_shutdown, self)

    setattr(initiate, _MARK, True)
    return initiate


def _unwatching(original: Callable[[Any, Any], Awaitable[None]]) -> Any:
    from hypercorn.events import Closed

    async def handle(self: Any, event: Any) -> None:
        if isinstance(event, Closed):
            watch = getattr(self, _WATCH, None)
            if watch is not None:
                watch.cancel()
        await original(self, event)

    return handle


async def _watch_shutdown(connection: Any) -> None:
    """Wait for the server's shutdown, then for the end of its grace period but a margin."""
    with anyio.CancelScope() as scope:
        setattr(connection, _WATCH, scope)
        await connection.context.terminated.wait()
        grace = float(connection.config.graceful_timeout)
        await anyio.sleep(max(0.0, grace - _margin(grace)))
        for call in list(running_apps(connection.task_group)):
            call.drain()


def _margin(grace: float) -> float:
    """How long before the grace period ends calls are told to finish: enough to send a
    status, and never more than a quarter of the period."""
    return min(0.5, grace / 4)
