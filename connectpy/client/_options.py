"""Per-call options and what a call reports besides its messages.

Calls on a typed client have exactly the service's signatures, so options travel beside them:
``with call_options(timeout=2.0) as call:`` applies to the calls made inside the block (in
this task and the tasks it starts), and ``call`` then holds the last one's response headers
and trailers.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import anyio.from_thread
import anyio.lowlevel

__all__ = ["CallInfo", "CallOptions", "call_options", "current_options"]

HeaderValues = Mapping[str, str | Sequence[str]] | Sequence[tuple[str, str]]


@dataclass(slots=True)
class CallInfo:
    """What the server sent besides messages, filled in as the call goes.

    Attributes:
        response_headers: ``(name, value)`` pairs, names lower-case.
        response_trailers: the trailers (for a failed call, the error's metadata).
    """

    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_trailers: list[tuple[str, str]] = field(default_factory=list)
    _cancel: Callable[[], None] | None = field(default=None, repr=False)
    _cancel_requested: bool = field(default=False, repr=False)

    def cancel(self) -> None:
        """Cancel the call in progress (it fails with ``canceled``), from any thread; a call
        not started yet is canceled when it starts."""
        self._cancel_requested = True
        if self._cancel is not None:
            self._cancel()

    def attach(self, cancel: Callable[[], None]) -> None:
        """Called by a starting call: what :meth:`cancel` runs, in the call's event loop."""
        token = anyio.lowlevel.current_token()
        loop_thread = threading.get_ident()

        def cancel_in_loop() -> None:
            if threading.get_ident() == loop_thread:
                cancel()
            else:
                anyio.from_thread.run_sync(cancel, token=token)

        self._cancel = cancel_in_loop
        if self._cancel_requested:
            cancel()

    def header(self, name: str) -> str | None:
        """The first response header called ``name``."""
        return _first(self.response_headers, name)

    def trailer(self, name: str) -> str | None:
        """The first response trailer called ``name``."""
        return _first(self.response_trailers, name)


def _first(pairs: list[tuple[str, str]], name: str) -> str | None:
    name = name.lower()
    return next((value for key, value in pairs if key == name), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallOptions:
    """Options of the calls made in a :func:`call_options` block; ``None`` keeps the
    client's setting."""

    timeout: float | None = None
    headers: tuple[tuple[str, str], ...] = ()
    send_compression: str | None = None
    accept_compression: tuple[str, ...] | None = None
    read_max_bytes: int | None = None
    send_max_bytes: int | None = None
    info: CallInfo = field(default_factory=CallInfo)


_CURRENT: contextvars.ContextVar[CallOptions | None] = contextvars.ContextVar(
    "connectpy_call_options", default=None
)


def current_options() -> CallOptions | None:
    return _CURRENT.get()


def header_pairs(headers: HeaderValues | None) -> tuple[tuple[str, str], ...]:
    if not headers:
        return ()
    if isinstance(headers, Mapping):
        pairs: list[tuple[str, str]] = []
        for name, value in headers.items():
            values = [value] if isinstance(value, str) else list(value)
            pairs += [(name.lower(), v) for v in values]
        return tuple(pairs)
    return tuple((name.lower(), value) for name, value in headers)


@contextmanager
def call_options(
    *,
    timeout: float | None = None,
    headers: HeaderValues | None = None,
    send_compression: str | None = None,
    accept_compression: Sequence[str] | None = None,
    read_max_bytes: int | None = None,
    send_max_bytes: int | None = None,
) -> Iterator[CallInfo]:
    """Options for the calls made inside the block; yields their :class:`CallInfo`.

    Args:
        timeout: seconds; sent as ``connect-timeout-ms`` or ``grpc-timeout`` and enforced
            here too (``deadline_exceeded``).
        headers: request headers to add.
        send_compression: ``"gzip"``, ``"br"``, ``"zstd"`` or ``"identity"``.
        accept_compression: response compressions to offer, in preference order.
        read_max_bytes: the largest response message accepted (``resource_exhausted``).
        send_max_bytes: the largest request message sent (``resource_exhausted``).
    """
    options = CallOptions(
        timeout=timeout,
        headers=header_pairs(headers),
        send_compression=send_compression,
        accept_compression=None if accept_compression is None else tuple(accept_compression),
        read_max_bytes=read_max_bytes,
        send_max_bytes=send_max_bytes,
    )
    token = _CURRENT.set(options)
    try:
        yield options.info
    finally:
        _CURRENT.reset(token)
