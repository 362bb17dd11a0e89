"""Keeps Hypercorn's HTTP/2 connection alive when request data arrives after the response.

A server may answer before the request body is complete: a deadline passes mid-upload, the
procedure does not exist, a stream's handler returns while its client still sends (RFC 9113
section 8.1 allows it). Hypercorn 0.18 forgets the stream once the response is out, and the
next DATA frame for it raises ``KeyError`` in ``H2Protocol._handle_events``
(pgjones/hypercorn#329, fixes proposed in #312 and #334, unmerged at the time of writing). The
exception ends the connection task: every other call on the connection dies with it.

Waiting for the rest of the body before answering cannot cover every case (a deadline that
has passed, an app such as FastAPI that answers 404 itself, a client that keeps sending for
as long as it likes), so the fix is here, on the server's side of the wire. Data for a stream
Hypercorn has forgotten is dropped, its bytes are handed back to the connection's
flow-control window (else the window shrinks with every such frame until the whole
connection stalls; the upstream PRs skip that), and once the response has gone out in full
the stream is reset with ``NO_ERROR``, which asks the client to stop sending, as RFC 9113
section 8.1 says and as grpc-go and Go's net/http do. Data that arrives later still is h2's
own business (it drops data for a stream reset by us).

Applied on import of connectpy to Hypercorn 0.16 to 0.18 only; a later Hypercorn may fix this
itself or change the code patched. ``tests/server/test_h2_late_data.py`` fails when the
patch no longer applies, so an upgrade re-examines it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import suppress
from importlib.metadata import PackageNotFoundError, version
from typing import Any

__all__ = ["PATCHED_VERSIONS", "apply", "is_applied"]

PATCHED_VERSIONS = ("0.16.", "0.17.", "0.18.")
"""Hypercorn releases whose ``H2Protocol`` has the bug and the shape this patch expects."""

_applied = False
"""Set once the patch is in. A flag rather than a mark on ``H2Protocol._handle_events``:
``client_gone`` wraps that method again afterwards, hiding any mark on ours."""


def is_applied() -> bool:
    """Whether this process's Hypercorn takes data for a finished stream without harm."""
    return _applied


def apply() -> bool:
    """Patch Hypercorn's HTTP/2 event handling once; False if this Hypercorn is not one of
    :data:`PATCHED_VERSIONS` or its code is not what this expects."""
    global _applied
    try:
        if not version("hypercorn").startswith(PATCHED_VERSIONS):
            return False
        import h2.errors
        import h2.events
        import h2.exceptions
        from hypercorn.protocol.h2 import H2Protocol
    except (ImportError, PackageNotFoundError):  # pragma: no cover - Hypercorn is a dependency
        return False
    handle_events: Callable[[Any, list[Any]], Awaitable[None]] | None = getattr(
        H2Protocol, "_handle_events", None
    )
    if handle_events is None:
        return False
    if _applied:
        return True

    async def drop_late_data(self: Any, stream_id: int, length: int, ended: bool) -> None:
        self.connection.acknowledge_received_data(length, stream_id)
        if not ended and stream_id not in self.stream_buffers:
            # The response is out in full (its END_STREAM is queued or sent ahead of this).
            with suppress(h2.exceptions.StreamClosedError):  # closed meanwhile: nothing to stop
                self.connection.reset_stream(stream_id, h2.errors.ErrorCodes.NO_ERROR)
        await self._flush()

    async def handle_events_keeping_late_data_out(self: Any, events: list[Any]) -> None:
        # One event at a time: the stream a DATA frame is for may close while the events
        # before it in the same batch are handled (the app finishing its response), so
        # whether it is late is known only when its turn comes.
        if not events:
            # Still a call: Hypercorn's ends with a flush, which frames queued by a wrapper
            # around this one (connectpy._server.hypercorn.client_gone's refusals) depend on.
            await handle_events(self, events)
        for event in events:
            if isinstance(event, h2.events.DataReceived) and event.stream_id not in self.streams:
                ended = event.stream_ended is not None
                await drop_late_data(self, event.stream_id, event.flow_controlled_length, ended)
            else:
                await handle_events(self, [event])

    H2Protocol._handle_events = handle_events_keeping_late_data_out  # type: ignore[method-assign]
    _applied = True
    return True
