"""Writes a streaming response: messages a handler produces back to back leave together.

A server's cost is per ASGI message, not per byte (Hypercorn spends more on one ``send``
than connectpy spends encoding a small message), so the handler's loop only queues each
message on the call, and a writer task sends everything queued whenever the handler pauses:
awaits something that is not ready, or finishes. A message is therefore on its way no later
than the handler's next real await, which is also when Hypercorn's HTTP/2 sender would have
written it anyway. Past ``HIGH_WATER`` queued bytes the handler waits for the writer, so a
fast producer and a slow client never queue without bound.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
from anyio.abc import TaskGroup

from .asgi import Disconnected
from .protocol.base import ServerCall

__all__ = ["HIGH_WATER", "StreamWriter"]

HIGH_WATER = 64 * 1024
"""Queued bytes past which the handler waits for the writer."""


class StreamWriter:
    """Flushes ``call``'s queued response messages from a task of its own.

    The handler side calls :meth:`queued` after each ``call.send_message`` (and
    :meth:`wait_for_room` when it says so) and :meth:`close`
    before ``call.finish``, which sends what is still queued with the status. Only the writer
    task flushes until ``close`` returns, so ASGI sends never overlap.

    ``on_pause`` runs in the writer task the first time it gets to run before ``close``: that
    is, the first time the handler pauses. A server stream starts its disconnect watcher
    there, so a stream that never pauses (its messages are all ready at once) spawns one task
    instead of two: spawning a task is the largest fixed cost of a short stream.
    """

    __slots__ = (
        "_busy",
        "_call",
        "_closed",
        "_headers_out",
        "_headers_wanted",
        "_idle",
        "_on_pause",
        "_room",
        "_running",
        "_tasks",
        "_wake",
        "error",
    )

    def __init__(
        self, call: ServerCall, tasks: TaskGroup, on_pause: Callable[[], None] | None = None
    ) -> None:
        self._call = call
        self._tasks = tasks
        self._on_pause = on_pause
        self._running = False
        self._busy = False
        self._closed = False
        self._wake: anyio.Event | None = None  # the writer waits on it for something to send
        self._room: anyio.Event | None = None  # the handler waits on it past HIGH_WATER
        self._idle: anyio.Event | None = None  # close waits on it for a flush in flight
        self._headers_wanted = False  # send_headers asked for a flush with nothing queued
        self._headers_out: anyio.Event | None = None  # send_headers waits on it
        self.error: BaseException | None = None
        """Why the writer stopped early (the client went away), raised to the handler side."""

    def start(self) -> None:
        """Spawn the writer task now (otherwise the first queued message does)."""
        if not self._running:
            self._running = True
            self._tasks.start_soon(self._run)

    def queued(self) -> bool:
        """Note that a message was queued. True: the handler must ``await wait_for_room()``
        before it queues more (too much is queued, or the writer stopped).

        Not a coroutine: it runs once a message, and nearly always has nothing to wait for.
        """
        if not self._running:
            self.start()
        elif self._wake is not None:  # checked here: this runs once a message
            self._wake_parked()
        return self._call.pending >= HIGH_WATER or self.error is not None

    async def wait_for_room(self) -> None:
        """Wait until the writer has taken the queue.

        Raises:
            Disconnected: the writer stopped because the client went away.
        """
        if self.error is None:
            room = self._room = anyio.Event()
            await room.wait()
        if self.error is not None:
            raise self.error

    async def send_headers(self) -> None:
        """Have the writer send the response headers now, if it has not yet; wait for it.

        Raises:
            Disconnected: the writer stopped because the client went away.
        """
        if self._closed or self._call.headers_sent:
            return
        self._headers_wanted = True
        out = self._headers_out = self._headers_out or anyio.Event()
        if not self._running:
            self.start()
        else:
            self._wake_parked()
        await out.wait()
        if self.error is not None:
            raise self.error

    async def close(self) -> None:
        """Stop the writer once any flush in flight is done; the rest goes with the status.

        Raises:
            Disconnected: a flush failed because the client went away.
        """
        self._closed = True
        if self._busy:
            idle = self._idle = anyio.Event()
            await idle.wait()
        else:
            self._wake_parked()  # to see that it is closed, and end
        if self.error is not None:
            raise self.error

    async def _run(self) -> None:
        if self._on_pause is not None and not self._closed:
            self._on_pause()
        call = self._call
        try:
            while not self._closed:
                if not call.pending and not self._headers_wanted:
                    wake = self._wake = anyio.Event()
                    await wake.wait()
                    continue
                self._busy = True
                self._headers_wanted = False
                await call.flush()  # the headers first, if they are not out yet
                self._busy = False
                self._release()
        except OSError:
            self.error = Disconnected()
        except Exception as exc:  # raised again on the handler side, which reports it
            self.error = exc
        finally:
            self._busy = False
            self._release()

    def _wake_parked(self) -> None:
        """Wake the writer if it waits for something to send."""
        if self._wake is not None:
            self._wake.set()
            self._wake = None

    def _release(self) -> None:
        for event in (self._room, self._idle, self._headers_out):
            if event is not None:
                event.set()
        self._room = self._idle = self._headers_out = None
