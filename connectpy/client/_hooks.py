"""Runs a client call through its interceptors, with the runner the server uses
(:mod:`connectpy._intercept`): :class:`CallHooks` is one call's part, driven by the response
stream at the call's start, at each message and at its end, however it ends."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .._intercept import Entered, abandon, abandon_now, enter, leave
from ..errors import ConnectError
from ..interceptors import ClientInterceptor, Observer
from ._context import ClientContext
from ._http import Spawn

__all__ = ["CallHooks"]

MessageSeen = Callable[[Any, int], None]


class CallHooks:
    """One call's interceptors: entered once, left once (with the outcome, or ``canceled``)."""

    __slots__ = (
        "_entered",
        "_finished",
        "_interceptors",
        "_loop_thread",
        "_received",
        "_sent",
        "_spawn",
        "_unsent",
        "context",
    )

    def __init__(self, interceptors: Sequence[ClientInterceptor], spawn: Spawn) -> None:
        self._interceptors = interceptors
        self._spawn = spawn
        self._entered: list[Entered] = []
        self._sent: tuple[MessageSeen, ...] = ()
        self._received: tuple[MessageSeen, ...] = ()
        self._unsent: tuple[Any, int] | None = None
        self._finished = False
        self._loop_thread = threading.get_ident()
        self.context: ClientContext | None = None

    def encoded_early(self, message: Any, size: int) -> None:
        """The one request message of a unary or server-streaming call, encoded before the
        interceptors ran: their ``sent`` observers see it once they are in."""
        self._unsent = (message, size)

    def encoding(self, encode: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
        """``encode`` for a streamed request, showing each message to the ``sent`` observers."""

        def encode_seen(message: Any) -> bytes:
            data = encode(message)
            for observe in self._sent:
                observe(message, len(data))
            return data

        return encode_seen

    async def start(self, context: ClientContext) -> None:
        """Run the interceptors to their ``yield``.

        Raises:
            ConnectError: one refused the call (after the ones before it saw the refusal).
        """
        self.context = context
        observers: list[Observer] = []
        refused = await enter(
            self._interceptors, context, context.method.procedure, self._entered, observers
        )
        if refused is not None:
            self._finished = True
            raise await leave(self._entered, refused) or refused
        self._sent = tuple(o.sent for o in observers if o.sent is not None)
        self._received = tuple(o.received for o in observers if o.received is not None)
        if self._unsent is not None:
            message, size = self._unsent
            for observe in self._sent:
                observe(message, size)

    def received(self, message: Any, size: int) -> None:
        for observe in self._received:
            observe(message, size)

    async def finish(self, error: ConnectError | None) -> ConnectError | None:
        """Resume the interceptors with the call's outcome; the outcome to raise. Once only:
        later calls give ``error`` back."""
        if self._finished:
            return error
        self._finished = True
        return await leave(self._entered, error)

    async def cancel(self) -> None:
        """The call was cancelled (its task, or the caller closed the stream)."""
        if not self._finished:
            self._finished = True
            await abandon(self._entered, "the call was canceled")

    def drop(self) -> None:
        """The caller let go of the call unfinished (left its ``async for``, dropped it)."""
        if self._finished:
            return
        self._finished = True
        if threading.get_ident() != self._loop_thread:
            return  # collected in another thread: nothing of the loop may be touched there
        with contextlib.suppress(RuntimeError):  # the client's task group is closed already
            abandon_now(self._entered, "the call was canceled", self._spawn)
