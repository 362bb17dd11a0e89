"""Runs one call: decode, invoke the handler under its deadline, encode, report the status.

This is the one boundary where exceptions become ``ConnectError``: a handler's
``ConnectError`` passes through, a deadline becomes ``deadline_exceeded``, a client
disconnect ends the call quietly, and anything else is logged and sent as ``internal``
with a generic message (a traceback never leaves the process).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.to_thread

from .._model.message import MessageCodec
from .._model.service import MethodInfo, StreamType
from ..code import Code
from ..errors import ConnectError
from .asgi import BodyPump, Disconnected, HttpRequest, Receive, open_body_grace
from .hypercorn.client_gone import cancel_on_disconnect, cut_by_shutdown
from .protocol.base import ServerCall
from .stream_writer import StreamWriter
from .thread_iter import ThreadFeed
from .thread_slots import run_sync_in_slot

if TYPE_CHECKING:
    from .interceptors import InterceptorChain

__all__ = ["Endpoint", "run_call"]

logger = logging.getLogger("connectpy")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A routable procedure: its description, bound handler and message codecs."""

    method: MethodInfo
    handler: Callable[..., Any]
    request_codec: MessageCodec[Any]
    response_codec: MessageCodec[Any]
    interceptors: InterceptorChain | None = None
    """What wraps its calls; ``None`` when nothing does, so such calls pay nothing for it."""


async def run_call(endpoint: Endpoint, call: ServerCall, request: HttpRequest) -> None:
    """Serve ``call`` with ``endpoint`` and always finish it with a status."""
    stream_type = endpoint.method.stream_type
    if stream_type is StreamType.UNARY:
        # Nothing here watches for the client leaving: Hypercorn cancels the task (see
        # hypercorn.client_gone), which costs a call whose client stays nothing.
        cancel_on_disconnect(request.scope)
        try:
            error = await _run_guarded(endpoint, call, _serve_unary)
        except anyio.get_cancelled_exc_class():
            if cut_by_shutdown(request.scope):
                await _answer_unavailable(call)
            raise
        if error is _GONE:
            return
        if call.context.deadline is not None and await _left_past_deadline(call, request):
            return
        await _finish(call, error)
        return
    if stream_type is StreamType.SERVER_STREAM:
        await _run_server_stream(endpoint, call, request)
        return
    await _run_client_stream(endpoint, call, request)


async def _answer_unavailable(call: ServerCall) -> None:
    """Tell the client of a call the server's shutdown cut short that it may retry."""
    with anyio.move_on_after(_UNAVAILABLE_SECONDS, shield=True):
        await _finish(call, ConnectError(Code.UNAVAILABLE, "the server is shutting down"))


_UNAVAILABLE_SECONDS = (
    0.5  # the shutdown leaves this long to send it (connectpy._server.hypercorn.graceful)
)


async def _left_past_deadline(call: ServerCall, request: HttpRequest) -> bool:
    """Whether the client of a unary call answered past its deadline went away meanwhile.

    The client's deadline passes about when ours does (it started its clock first, but sends
    the timeout rounded down to the millisecond), and it then gives up on the response: an
    answer landing at that moment is cut short by the client, not by us. Go's net/http even
    hands over the head of a response that arrives as it cancels, having dropped the body:
    the caller sees an error status with a body that reads as empty. So the answer waits a
    moment for the client to leave (HTTP/2 resets the stream, HTTP/1.1 closes the connection)
    and goes only to one still there: one that does not enforce the deadline itself.
    """
    deadline = call.context.deadline
    if deadline is None or anyio.current_time() < deadline:
        return False
    with anyio.move_on_after(_DEADLINE_GRACE_SECONDS):
        while (await request.receive())["type"] == "http.request":
            pass  # what is left of a body the deadline cut short
        return True
    return False


_DEADLINE_GRACE_SECONDS = 0.5


async def _run_server_stream(endpoint: Endpoint, call: ServerCall, request: HttpRequest) -> None:
    """A server stream: the handler may send for a long time without reading anything, so a
    task watches for the client going away, which cancels the call.

    The request body (one message) is read before the watcher starts, and the watcher reads
    only what follows the body: ``http.disconnect``. That is all a server stream needs of the
    body pump that client streams have. The watcher starts the first time the handler pauses
    (see StreamWriter): a handler that never pauses has nothing to cancel.
    """
    async with anyio.create_task_group() as task_group:
        watcher = _DisconnectWatcher(request.receive, task_group.cancel_scope)

        def watch() -> None:
            watcher.started = True
            task_group.start_soon(watcher.run)

        writer = StreamWriter(call, task_group, on_pause=watch)
        call.context.set_header_sender(writer.send_headers)
        error = await _run_guarded(endpoint, call, _serve_server_stream, writer.start, writer)
        if error is not _GONE:
            await _finish(call, error, writer, watcher)
        if watcher.started:
            _let_tasks_end(task_group.cancel_scope, error)


class _DisconnectWatcher:
    """Cancels the call when the client goes away before the call is over."""

    __slots__ = ("_call_scope", "_receive", "call_over", "started")

    def __init__(self, receive: Receive, call_scope: anyio.CancelScope) -> None:
        self._receive = receive
        self._call_scope = call_scope
        self.call_over = False
        self.started = False

    async def run(self) -> None:
        while (await self._receive())["type"] == "http.request":
            pass  # only once the call is cancelled: the body is read before the watch starts
        if not self.call_over:
            self._call_scope.cancel()


def _let_tasks_end(scope: anyio.CancelScope, error: object) -> None:
    """Let a finished call's helper tasks (writer, watcher, pump) end on their own.

    They are not cancelled: on asyncio, anyio formats the repr of the current task for every
    cancellation, which costs more than the rest of a short stream. The writer has returned
    already, and the tasks reading ``receive`` return once the server answers it with
    ``http.disconnect``, which ASGI servers do as soon as the response is complete. The
    deadline is for a server that does not; a client already gone cancels at once.
    """
    if error is _GONE:
        scope.cancel()
    else:
        scope.deadline = anyio.current_time() + _TASKS_END_SECONDS


_TASKS_END_SECONDS = 1.0


async def _run_client_stream(endpoint: Endpoint, call: ServerCall, request: HttpRequest) -> None:
    pump = BodyPump(request.receive, 4 * call.read_max_bytes + _PUMP_SLACK)
    request.receive = pump.receive
    try:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(pump.run, task_group.cancel_scope)
            writer = None
            if endpoint.method.stream_type.server_streams:
                writer = StreamWriter(call, task_group)
                call.context.set_header_sender(writer.send_headers)
            error = await _run_guarded(endpoint, call, _serve_client_stream, None, writer)
            if error is not _GONE:
                grace = open_body_grace(request.scope)
                if grace and not pump.body_complete.is_set():
                    # Let the rest of the body arrive first, where late data can do harm;
                    # bounded: a full-duplex client may hold its side open for our answer.
                    with anyio.move_on_after(grace):
                        await pump.body_complete.wait()
                await _finish(call, error, writer, pump)
            _let_tasks_end(task_group.cancel_scope, error)
    finally:
        pump.close()


# Unread request bytes a streaming call may buffer beyond a few maximum-size messages.
_PUMP_SLACK = 1024 * 1024

_GONE: Any = object()
"""The client disconnected: there is nobody to send a status to."""


Serve = Callable[
    [Endpoint, ServerCall, Callable[[], None] | None, StreamWriter | None], Awaitable[None]
]
"""Reads the request, runs the handler and sends its response messages, for one stream type;
the callable, if any, is called once the request is read; a streamed response goes through
the writer."""


async def _run_guarded(
    endpoint: Endpoint,
    call: ServerCall,
    serve: Serve,
    on_request: Callable[[], None] | None = None,
    writer: StreamWriter | None = None,
    started: bool = False,
) -> Any:
    """Run the call under its deadline; return the error to report (or None), or ``_GONE``.

    With interceptors, they run the call: they start it (``started``) and call this back.
    """
    if endpoint.interceptors is not None and not started:
        return await endpoint.interceptors.run(endpoint, call, serve, on_request, writer)
    try:
        if not started:
            call.start()
        deadline = call.context.deadline
        if deadline is None:
            await serve(endpoint, call, on_request, writer)
            return None
        with anyio.CancelScope(deadline=deadline) as scope:
            await serve(endpoint, call, on_request, writer)
        if scope.cancelled_caught:
            return ConnectError(Code.DEADLINE_EXCEEDED, "the call's deadline passed")
        return None
    except ConnectError as exc:
        return exc
    except Disconnected:
        return _GONE
    except Exception:
        logger.exception("handler for %s failed", endpoint.method.procedure)
        return ConnectError(Code.INTERNAL, "internal error")


async def _finish(
    call: ServerCall,
    error: ConnectError | None,
    writer: StreamWriter | None = None,
    watch: _CallWatch | None = None,
) -> None:
    if error is not None and logger.isEnabledFor(logging.INFO):
        _log_failure(call, error)
    try:
        if writer is not None:
            await writer.close()  # what it has not sent yet goes with the status
        if watch is not None:
            # The server may report the client gone while the status is being sent (trio's
            # Hypercorn does, once the last body message is written): the call is over by
            # then, so that must not cancel the send.
            watch.call_over = True
        await call.finish(error)
    except (OSError, Disconnected):  # the client went away before the status
        return


def _log_failure(call: ServerCall, error: ConnectError) -> None:
    """One line per failed call, at INFO: ``connectpy`` users turn it on with that level."""
    context = call.context
    elapsed_ms = (time.monotonic() - context.started_at) * 1000
    logger.info(
        "%s failed: %s (%s, %.1f ms)",
        context.method.procedure,
        error.code.value,
        context.protocol,
        elapsed_ms,
    )


class _CallWatch(Protocol):
    """A helper task that cancels the call when the client goes away, until ``call_over``."""

    call_over: bool


async def _serve_unary(
    endpoint: Endpoint,
    call: ServerCall,
    on_request: Callable[[], None] | None,
    writer: StreamWriter | None,
) -> None:
    codec = call.codec
    request = endpoint.request_codec.decode(codec, await call.read_single())
    result = await _invoke(endpoint, call, request)
    call.send_message(endpoint.response_codec.encode(codec, result))


async def _serve_server_stream(
    endpoint: Endpoint,
    call: ServerCall,
    on_request: Callable[[], None] | None,
    writer: StreamWriter | None,
) -> None:
    assert writer is not None
    request = endpoint.request_codec.decode(call.codec, await call.read_single())
    if on_request is not None:
        on_request()
    await _send_stream(endpoint, call, await _invoke(endpoint, call, request), writer)


async def _serve_client_stream(
    endpoint: Endpoint,
    call: ServerCall,
    on_request: Callable[[], None] | None,
    writer: StreamWriter | None,
) -> None:
    # aclosing: a handler may abandon its request stream; close it here, not in the GC.
    async with aclosing(_decode_all(endpoint, call)) as requests:
        result = await _invoke(endpoint, call, requests)
        if writer is not None:
            await _send_stream(endpoint, call, result, writer)
        else:
            call.send_message(endpoint.response_codec.encode(call.codec, result))
    # Keep draining what the handler left unread so the server's per-stream queue never
    # fills and stalls other streams on the same HTTP/2 connection.
    await call.drain()


async def _send_stream(
    endpoint: Endpoint, call: ServerCall, result: Any, writer: StreamWriter
) -> None:
    encode = endpoint.response_codec.encoder(call.codec)
    queue = call.send_message
    queued = writer.queued
    if hasattr(result, "__aiter__"):
        # Iterated here, not through a wrapper generator: one hop less per message.
        try:
            async for response in result:
                queue(encode(response))
                if queued():
                    await writer.wait_for_room()
        finally:
            aclose = getattr(result, "aclose", None)
            if aclose is not None:
                await aclose()
        return
    # A sync iterator: run in one worker thread for the whole stream, not a hop per item.
    feed = ThreadFeed(iter(result))
    failure: Exception | None = None
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(feed.run)
        try:
            while (batch := await feed.next_batch()) is not None:
                for item in batch:
                    queue(encode(item))
                    if queued():
                        await writer.wait_for_room()
        except Exception as exc:  # raised below: a task group would wrap it in a group
            failure = exc
            task_group.cancel_scope.cancel()  # abandon a thread stuck in the iterator
        finally:
            feed.stop()
    if failure is not None:
        raise failure


async def _decode_all(endpoint: Endpoint, call: ServerCall) -> AsyncGenerator[Any, None]:
    decode = endpoint.request_codec.decode
    codec = call.codec
    async with aclosing(call.messages()) as messages:
        async for data in messages:
            yield decode(codec, data)


async def _invoke(endpoint: Endpoint, call: ServerCall, requests: Any) -> Any:
    args = (requests, call.context) if endpoint.method.wants_context else (requests,)
    handler = endpoint.handler
    if endpoint.method.is_async:
        result = handler(*args)
        return await result if inspect.isawaitable(result) else result
    if endpoint.method.stream_type.client_streams:
        # A sync handler cannot await its request stream: give it the collected messages.
        collected = [message async for message in requests]
        args = (iter(collected), *args[1:])
    # A deadline or disconnect answers now; the thread finishes on its own, in its slot.
    return await run_sync_in_slot(handler, *args)
