"""Bounds what a long-lived HTTP/2 connection remembers of its closed streams (issue #14).

The h2 library keeps, per connection, how each closed stream ended (by END_STREAM or by
RST_STREAM), so that a frame arriving late for one of them is told apart: a stream error
for a reset stream, a connection error otherwise. It keeps up to 65,536 of them, about
100 bytes each: a busy gRPC channel, which keeps one connection for hours, made the server
grow by up to 6 MiB a connection (a 5-minute soak at 64 calls at once: 53 to 83 MiB).
Here each connection Hypercorn serves keeps the last ``CLOSED_STREAMS_KEPT``. The table
decides little: h2 answers DATA on a stream it no longer remembers with ``RST_STREAM`` (and
gives the connection's window back), and ignores WINDOW_UPDATE and RST_STREAM for it; only
a HEADERS frame on a stream we reset more than that many streams ago now closes the
connection, where it would have been refused alone, and no client sends one that late.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["CLOSED_STREAMS_KEPT", "apply"]

CLOSED_STREAMS_KEPT = 256

_MARK = "__connectpy_closed_streams__"


def apply() -> bool:
    """Patch Hypercorn's HTTP/2 protocol once; False if it is not what this expects."""
    try:
        from hypercorn.protocol.h2 import H2Protocol
    except ImportError:  # pragma: no cover - Hypercorn is a dependency
        return False
    init: Callable[..., None] = H2Protocol.__init__
    if getattr(init, _MARK, False):
        return True

    def bounded_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        closed = getattr(self.connection, "_closed_streams", None)
        if closed is not None and hasattr(closed, "_size_limit"):
            closed._size_limit = CLOSED_STREAMS_KEPT

    setattr(bounded_init, _MARK, True)
    H2Protocol.__init__ = bounded_init  # type: ignore[method-assign]
    return True
