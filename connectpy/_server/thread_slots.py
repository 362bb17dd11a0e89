"""Runs a sync handler in a worker thread that keeps its slot until the thread is done.

A call answers at once when its deadline passes or its client leaves, even while its sync
handler still runs: the thread cannot be interrupted, so it is abandoned. anyio gives the
abandoned thread's limiter token back at that moment, though, and starts a new thread for
the next call: a client that resets its calls in a loop (rapid reset) could keep any number
of threads busy. Here the token is held until the thread really ends, so no more than
anyio's default thread limiter (40 threads) ever run handlers, abandoned or not; the calls
beyond wait for a slot (and are cancelled if their client leaves meanwhile).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

__all__ = ["run_sync_in_slot"]

T = TypeVar("T")

# run_sync takes its own token unless given a limiter: this one never makes it wait.
_UNLIMITED: anyio.lowlevel.RunVar[anyio.CapacityLimiter] = anyio.lowlevel.RunVar("unlimited")


async def run_sync_in_slot(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in a worker thread holding a default-limiter token until it ends."""
    slots = anyio.to_thread.current_default_thread_limiter()
    slot = _Slot(slots)
    await slots.acquire_on_behalf_of(slot)
    try:
        result = await anyio.to_thread.run_sync(
            slot.run, function, args, abandon_on_cancel=True, limiter=_unlimited()
        )
    except BaseException:
        slot.abandon()  # the thread gives the token back when it ends, if it has not yet
        raise
    slots.release_on_behalf_of(slot)
    return result


def _unlimited() -> anyio.CapacityLimiter:
    try:
        return _UNLIMITED.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(math.inf)
        _UNLIMITED.set(limiter)
        return limiter


class _Slot:
    """One thread's token: released by the call, or by the thread if the call left first."""

    __slots__ = ("_abandoned", "_lock", "_running", "_slots")

    def __init__(self, slots: anyio.CapacityLimiter) -> None:
        self._slots = slots
        self._lock = threading.Lock()
        self._running = False
        self._abandoned = False

    def run(self, function: Callable[..., T], args: tuple[Any, ...]) -> T:
        with self._lock:
            self._running = True
        try:
            return function(*args)
        finally:
            with self._lock:
                self._running = False
                release = self._abandoned
            if release:
                # RuntimeError: the event loop has closed, there is nothing left to release.
                with contextlib.suppress(RuntimeError):
                    anyio.from_thread.run_sync(self._slots.release_on_behalf_of, self)

    def abandon(self) -> None:
        """The call has left: give the token back now, or once the running thread ends.

        A thread that has not started by now never will (anyio skips a job whose call was
        cancelled), bar a narrow race in which it then runs without a token.
        """
        with self._lock:
            self._abandoned = self._running
        if not self._abandoned:
            self._slots.release_on_behalf_of(self)
