"""Keeps Hypercorn's HTTP/2 back-pressure working when a client's flow-control window is shut.

Hypercorn 0.18 buffers each stream's response body and pauses the app's ``send`` past 32 KiB,
until its sender task has taken data off the buffer. When the client's window is zero the
sender still "takes" a zero-length chunk, and that releases the pause: every further ``send``
is then accepted at once, so a client that stops reading makes the server buffer a streaming
response without bound (measured here: about 290 MiB a second of 64 KiB messages, until the
process runs out of memory). With this fix a zero-length take moves nothing and releases
nothing; the app's ``send`` waits until the client opens its window again, as it should.

Applied when connectpy is imported, to whichever Hypercorn serves it; it changes only that
zero-window case.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["apply"]

_MARK = "__connectpy_zero_window_fix__"


def apply() -> bool:
    """Patch Hypercorn's stream buffer once; False if its code is not what this expects."""
    try:
        from hypercorn.protocol.h2 import StreamBuffer
    except ImportError:  # pragma: no cover - Hypercorn is a dependency
        return False
    pop: Callable[[Any, int], Awaitable[bytes]] | None = getattr(StreamBuffer, "pop", None)
    if pop is None:
        return False
    if getattr(pop, _MARK, False):
        return True

    async def pop_unless_window_shut(self: Any, max_length: int) -> bytes:
        if max_length <= 0 and self.buffer:
            return b""  # nothing can be sent: keep the producer paused
        return await pop(self, max_length)

    setattr(pop_unless_window_shut, _MARK, True)
    StreamBuffer.pop = pop_unless_window_shut  # type: ignore[method-assign]
    return True
