"""Stops the work of a client that has gone, on Hypercorn 0.18 (issue #14).

Hypercorn tells an ASGI app that its client left only through ``receive()``, which a unary
call never awaits once it has its request: the handler ran to completion for nobody, and an
HTTP/2 client that opens and resets streams in a loop (rapid reset, CVE-2023-44487) piled up
handlers without bound. Watching ``receive()`` from the app would cost every call a task and
a cancel scope (the scope alone, measured in process: 5 µs on a 14 µs call). Hypercorn
already runs each request in a task of its own and knows the moment its stream closes, so
that is where this hooks in: one cancel scope per request inside Hypercorn's task (small
next to Hypercorn's own 400-700 µs a call, see docs/performance.md), no task:

- **cancel on disconnect**: when a request's stream closes (HTTP/1.1 connection closed,
  HTTP/2 ``RST_STREAM`` or connection closed) before its response is complete, the request's
  task is cancelled, if the app asked for it through the ASGI extension
  ``scope["extensions"][CANCEL_ON_DISCONNECT]`` (see :func:`cancel_on_disconnect`;
  connectpy's unary calls ask; other apps on the same server keep Hypercorn's behaviour);
- **a bound per connection**: HTTP/2 streams whose app still runs count against
  ``h2_max_concurrent_streams`` even after the client reset them, as grpc-go and Go's
  net/http count them since CVE-2023-44487; a stream past the limit is refused with
  ``RST_STREAM(REFUSED_STREAM)``, which tells the client that a retry is safe. Once the
  server shuts down, new streams are refused the same way (Hypercorn used ``NO_ERROR``), and
  the request data that came with a refused stream is dropped instead of reaching Hypercorn,
  which has no stream to give it to (it raised ``KeyError`` and lost the whole connection);
- **reset streams are forgotten**: their send buffers and priority-tree nodes were kept
  for the life of the connection (see :func:`_forget_stream`);
- **closed connections let go of their socket**: once the client has closed its side,
  Hypercorn's idle timer is stopped, so the socket is closed as soon as the connection's
  calls are done, not when the timer (``keep_alive_timeout``) fires.

Applied when connectpy is imported, like :mod:`.backpressure`, to the Hypercorn versions it
was written against (``_VERSIONS``); each patch checks that the code it wraps is there, and
leaves Hypercorn alone otherwise.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import anyio

__all__ = [
    "CANCEL_ON_DISCONNECT",
    "apply",
    "cancel_on_disconnect",
    "cut_by_shutdown",
    "running_apps",
]

logger = logging.getLogger("connectpy")

CANCEL_ON_DISCONNECT = "connectpy.cancel_on_disconnect"
"""The ASGI extension (in ``scope["extensions"]``) the patched server offers."""

_VERSIONS = ("0.18.",)  # the Hypercorn releases whose internals these patches wrap
_MARK = "__connectpy_client_gone__"
_CANCELLER = "_connectpy_canceller"  # on a Hypercorn HTTPStream: its app's _Canceller
_RUNNING = "_connectpy_running_apps"  # on a connection's task group: apps still running


def cancel_on_disconnect(scope: MutableMapping[str, Any]) -> None:
    """Have the server cancel this request's task if its client leaves before the response
    is complete (at once if it has left already), or when a shutdown's grace period is
    about to end; nothing on a server without the extension."""
    canceller = _canceller(scope)
    if canceller is not None:
        canceller.want()


def cut_by_shutdown(scope: MutableMapping[str, Any]) -> bool:
    """Whether the server cancelled this request because its shutdown grace period ends:
    the app, cancelled, may still answer (in a shielded scope) that it is unavailable."""
    canceller = _canceller(scope)
    return canceller is not None and canceller.draining


def _canceller(scope: MutableMapping[str, Any]) -> _Canceller | None:
    extensions = scope.get("extensions")
    return extensions.get(CANCEL_ON_DISCONNECT) if extensions else None


class _Canceller:
    """Cancels one request's task once the app wants it and the client has gone, or the
    server's shutdown grace period is ending."""

    __slots__ = ("_cancel", "_stream", "_wanted", "draining")

    def __init__(self, stream: Any, cancel: Callable[[], object]) -> None:
        self._stream = stream
        self._cancel = cancel
        self._wanted = False
        self.draining = False

    def want(self) -> None:
        self._wanted = True
        if _client_left(self._stream):  # before the app asked: a reset that came with the request
            self._cancel()

    def client_gone(self) -> None:
        if self._wanted:
            self._cancel()

    def drain(self) -> None:
        if self._wanted:
            self.draining = True
            self._cancel()


def running_apps(task_group: Any) -> set[_Canceller]:
    """The requests whose app still runs on a connection (Hypercorn's per-connection task
    group), whether or not their stream is still open."""
    running: set[_Canceller] | None = getattr(task_group, _RUNNING, None)
    if running is None:
        running = set()
        setattr(task_group, _RUNNING, running)
    return running


def _client_left(stream: Any) -> bool:
    """Whether Hypercorn's HTTPStream closed before its response was complete."""
    from hypercorn.protocol.http_stream import ASGIHTTPState

    return bool(stream.closed) and stream.state is not ASGIHTTPState.CLOSED


@contextmanager
def _running(stream: Any, scope: Any, cancel: Callable[[], object]) -> Iterator[None]:
    """Offer the extension on this request (``stream`` is Hypercorn's HTTPStream) and count
    the app as running on its connection meanwhile."""
    extensions = scope.get("extensions") if isinstance(scope, dict) else None
    tasks = getattr(stream, "task_group", None)
    if extensions is None or tasks is None:
        yield
        return
    canceller = _Canceller(stream, cancel)
    setattr(stream, _CANCELLER, canceller)
    extensions[CANCEL_ON_DISCONNECT] = canceller
    running = running_apps(tasks)
    running.add(canceller)
    try:
        yield
    finally:
        running.discard(canceller)


def apply() -> bool:
    """Patch Hypercorn once; False if its code is not what this expects."""
    try:
        version = importlib.metadata.version("hypercorn")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a dependency
        return False
    if not version.startswith(_VERSIONS):
        logger.warning(
            "Hypercorn %s is newer than connectpy knows: handlers are not cancelled when "
            "their client leaves, and reset streams do not count against their connection",
            version,
        )
        return False
    try:
        from hypercorn.asyncio import task_group as asyncio_tasks
        from hypercorn.asyncio.tcp_server import TCPServer as AsyncioTCPServer
        from hypercorn.protocol.h2 import H2Protocol
        from hypercorn.protocol.http_stream import HTTPStream
    except ImportError:  # pragma: no cover - Hypercorn is a dependency
        return False
    handle = getattr(asyncio_tasks, "_handle", None)
    if handle is None or getattr(handle, _MARK, False):
        return handle is not None
    if not all(
        callable(getattr(cls, name, None))
        for cls, name in (
            (HTTPStream, "handle"),
            (H2Protocol, "_handle_events"),
            (AsyncioTCPServer, "_read_data"),
        )
    ):
        return False
    asyncio_tasks._handle = _mark(_cancellable(handle))
    HTTPStream.handle = _mark(_cancel_when_closed(HTTPStream.handle))  # type: ignore[method-assign]
    H2Protocol._handle_events = _mark(_refusing(H2Protocol._handle_events))  # type: ignore[method-assign]
    AsyncioTCPServer._read_data = _mark(_stop_idle_timer(AsyncioTCPServer._read_data))  # type: ignore[method-assign]
    _apply_trio()
    return True


def _apply_trio() -> None:
    try:
        from hypercorn.trio import task_group as trio_tasks
        from hypercorn.trio.tcp_server import TCPServer as TrioTCPServer
    except ImportError:  # trio is optional
        return
    handle = getattr(trio_tasks, "_handle", None)
    if handle is None or not callable(getattr(TrioTCPServer, "_read_data", None)):
        return
    trio_tasks._handle = _mark(_cancellable(handle))
    TrioTCPServer._read_data = _mark(_stop_idle_timer(TrioTCPServer._read_data))  # type: ignore[method-assign]


def _mark(function: Any) -> Any:
    setattr(function, _MARK, True)
    return function


Handle = Callable[..., Awaitable[None]]


def _cancellable(original: Handle) -> Handle:
    """Hypercorn's task body for one request (asyncio or trio), made cancellable from its
    stream. Through an anyio cancel scope, not ``Task.cancel``: a shielded scope in the app
    (cleanup that must finish) holds the cancellation off, as anyio promises. The scope is
    the one cost per request, small next to Hypercorn's own."""

    async def handle(app: Any, config: Any, scope: Any, receive: Any, send: Any, *rest: Any) -> Any:
        stream = getattr(send, "__self__", None)  # send is the request's HTTPStream.app_send
        with anyio.CancelScope() as cancel_scope, _running(stream, scope, cancel_scope.cancel):
            await original(app, config, scope, receive, send, *rest)

    return handle


def _cancel_when_closed(original: Callable[[Any, Any], Awaitable[None]]) -> Any:
    from hypercorn.protocol.events import StreamClosed

    async def handle(self: Any, event: Any) -> None:
        await original(self, event)
        if isinstance(event, StreamClosed) and _client_left(self):
            canceller = getattr(self, _CANCELLER, None)
            if canceller is not None:
                canceller.client_gone()

    return handle


def _refusing(original: Callable[[Any, list[Any]], Awaitable[None]]) -> Any:
    """``H2Protocol._handle_events`` refusing the new streams it cannot take."""
    import h2.errors
    import h2.events
    import h2.settings

    refused_code = h2.errors.ErrorCodes.REFUSED_STREAM

    async def handle_events(self: Any, events: list[Any]) -> None:
        limit = self.config.h2_max_concurrent_streams
        running = len(running_apps(self.task_group))
        terminated = self.context.terminated.is_set()
        # Streams opened and reset in the same read (rapid reset) are never started at all.
        reset = {e.stream_id for e in events if isinstance(e, h2.events.StreamReset)}
        refused: set[int] = set()
        accepted = 0  # in this batch: their tasks start only after it
        kept: list[Any] = []
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                if event.stream_id in reset:
                    refused.add(event.stream_id)
                    continue
                if terminated or running + accepted >= limit:
                    _refuse(self.connection, event.stream_id, refused_code)
                    refused.add(event.stream_id)
                    continue
                accepted += 1
            if getattr(event, "stream_id", None) in refused:
                if isinstance(event, h2.events.DataReceived):
                    # Hand the connection's flow-control window back, or it shrinks for good.
                    self.connection.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                continue
            kept.append(event)
        if refused and terminated:
            # As Hypercorn does on shutdown: tell the client to open no more streams.
            self.connection.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 0})
        await original(self, kept)
        for event in kept:
            if isinstance(event, h2.events.StreamReset):
                await _forget_stream(self, event.stream_id)

    return handle_events


async def _forget_stream(protocol: Any, stream_id: int) -> None:
    """Let Hypercorn's sender drop a stream the client reset.

    Hypercorn keeps each stream's send buffer and priority-tree node until the stream's
    response has ended, which a reset stream's never does: they piled up for the life of the
    connection (memory), and past 1,000 the priority tree refused new streams
    (``TooManyStreamsError``) and the connection died. Closing the buffer and waking the
    sender takes the path Hypercorn itself takes for a stream that closed while it sent.
    """
    buffer = protocol.stream_buffers.get(stream_id)
    if buffer is None:
        return
    await buffer.close()
    protocol.priority.unblock(stream_id)
    await protocol.has_data.set()


def _refuse(connection: Any, stream_id: int, code: int) -> None:
    import h2.exceptions

    # StreamClosedError: the client reset it already, later in the same read.
    with contextlib.suppress(h2.exceptions.StreamClosedError):
        connection.reset_stream(stream_id, code)


def _stop_idle_timer(original: Callable[[Any], Awaitable[None]]) -> Any:
    """``TCPServer._read_data`` stopping the idle timer once the client has closed its side.

    Hypercorn's connection task ends when its tasks do, and the idle timer is one of them: a
    connection its client had closed kept its socket until ``keep_alive_timeout``.
    """

    async def read_data(self: Any) -> None:
        await original(self)
        await self.idle_task.stop()

    return read_data
