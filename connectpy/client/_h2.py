"""An HTTP/2 client connection: the ``h2`` state machine over an anyio byte stream.

One task per connection reads frames and hands their events to the exchanges (streams) they
belong to; writers send through one lock. Flow control is credited as the caller consumes
response data, so a slow reader holds back only its own stream.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque

import anyio
import anyio.abc
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from ..code import Code
from ._http import Headers, RequestHead, Spawn, TransportError

__all__ = ["H2Connection", "H2Exchange"]

_log = logging.getLogger("connectpy.client")

_STREAM_WINDOW = 1 << 20
_CONNECTION_WINDOW = 1 << 24
"""Receive windows: large enough that flow control never paces a fast reader on loopback."""

_READ_SIZE = 1 << 16


class H2Connection:
    """A multiplexed connection; :meth:`open` starts one exchange per request."""

    def __init__(self, stream: anyio.abc.ByteStream, spawn: Spawn) -> None:
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self._h2 = h2.connection.H2Connection(config)
        self._stream = stream
        self._spawn = spawn
        self._exchanges: dict[int, H2Exchange] = {}
        self._write_lock = anyio.Lock()
        self._error: TransportError | None = None
        self._going_away = False
        self._room = anyio.Event()
        """Set when a stream closes: an opener waiting for a free stream slot tries again."""

    async def start(self) -> None:
        """Send the preface and settings, then read frames in the background."""
        self._h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _STREAM_WINDOW,
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
            },
        )
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(_CONNECTION_WINDOW - 65535)
        await self.flush()
        self._spawn(self._read_frames)

    @property
    def closed(self) -> bool:
        return self._error is not None

    @property
    def usable(self) -> bool:
        """Whether new streams may still start here."""
        return self._error is None and not self._going_away

    @property
    def has_room(self) -> bool:
        limit = self._h2.remote_settings.max_concurrent_streams
        return self._h2.open_outbound_streams < limit

    async def open(self, head: RequestHead, body: bytes | None) -> H2Exchange:
        while not self.has_room:
            self._check()
            if self._room.is_set():  # one event for every opener waiting: forget sets it
                self._room = anyio.Event()
            await self._room.wait()
        self._check()
        headers: Headers = [
            (b":method", head.method.encode()),
            (b":scheme", head.scheme.encode()),
            (b":authority", head.authority.encode()),
            (b":path", head.target.encode()),
            *head.headers,
        ]
        async with self._write_lock:
            stream_id = self._h2.get_next_available_stream_id()
            exchange = H2Exchange(self, stream_id)
            self._exchanges[stream_id] = exchange
            self._h2.send_headers(stream_id, headers, end_stream=body == b"")
            await self._write()
        if body:
            await exchange.send(body)
            await exchange.end()
        return exchange

    def _check(self) -> None:
        if self._error is not None:
            raise self._error
        if self._going_away:
            raise TransportError("the HTTP/2 connection is going away")

    async def flush(self) -> None:
        async with self._write_lock:
            await self._write()

    async def _write(self) -> None:
        data = self._h2.data_to_send()
        if not data:
            return
        # Shielded: a frame cut short leaves the peer's HPACK state out of step with ours.
        with anyio.CancelScope(shield=True):
            try:
                await self._stream.send(data)
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                self._fail(TransportError(f"HTTP/2 connection lost: {exc}"))
                raise self._error from None  # type: ignore[misc]

    def flush_soon(self) -> None:
        """Flush from code that cannot await (a reset during cleanup)."""
        # RuntimeError: the client is closing, and its connections go with it.
        with contextlib.suppress(RuntimeError):
            self._spawn(self._flush_quietly)

    async def _flush_quietly(self) -> None:
        with contextlib.suppress(TransportError):
            await self.flush()

    async def _read_frames(self) -> None:
        try:
            while True:
                try:
                    data = await self._stream.receive(_READ_SIZE)
                except anyio.EndOfStream:
                    raise TransportError("the server closed the HTTP/2 connection") from None
                try:
                    events = self._h2.receive_data(data)
                except h2.exceptions.ProtocolError as exc:
                    await self.flush()  # the GOAWAY h2 queued
                    raise TransportError(f"HTTP/2 protocol error: {exc}") from None
                for event in events:
                    self._handle(event)
                await self.flush()
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            self._fail(TransportError(f"HTTP/2 connection lost: {exc}"))
        except TransportError as exc:
            self._fail(exc)
        except Exception as exc:  # a bug here must not crash the caller's task group
            _log.exception("HTTP/2 connection reader failed")
            self._fail(TransportError(f"HTTP/2 client error: {exc!r}"))
        finally:
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()
            self._fail(TransportError("the HTTP/2 connection is closed"))

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ConnectionTerminated):
            self._going_away = True
            last = event.last_stream_id or 0
            for refused_id, refused in list(self._exchanges.items()):
                if refused_id > last:
                    refused.fail(TransportError("the server refused the stream (GOAWAY)"))
            return
        if isinstance(event, h2.events.RemoteSettingsChanged) or (
            isinstance(event, h2.events.WindowUpdated) and not event.stream_id
        ):
            for waiting in self._exchanges.values():  # the connection's window or settings
                waiting.wake()
            return
        stream_id = getattr(event, "stream_id", None)
        exchange = self._exchanges.get(stream_id) if stream_id else None
        if exchange is None:
            return
        if isinstance(event, h2.events.WindowUpdated):
            exchange.wake()
            return
        if isinstance(event, h2.events.ResponseReceived):
            exchange.on_headers(event.headers or [])
        elif isinstance(event, h2.events.DataReceived):
            exchange.on_data(event.data or b"", event.flow_controlled_length or 0)
        elif isinstance(event, h2.events.TrailersReceived):
            exchange.on_trailers(event.headers or [])
        elif isinstance(event, h2.events.StreamEnded):
            exchange.on_end()
        elif isinstance(event, h2.events.StreamReset):
            exchange.on_reset(event.error_code)

    def forget(self, stream_id: int) -> None:
        self._exchanges.pop(stream_id, None)
        self._room.set()

    def _fail(self, error: TransportError) -> None:
        if self._error is None:
            self._error = error
        for exchange in list(self._exchanges.values()):
            exchange.fail(error)
        self._exchanges.clear()
        self._room.set()

    async def aclose(self) -> None:
        if self._error is None:
            try:
                self._h2.close_connection()
                await self.flush()
            except (TransportError, h2.exceptions.ProtocolError):
                pass
            self._fail(TransportError("the client closed the connection"))
        with anyio.CancelScope(shield=True):
            await self._stream.aclose()


class H2Exchange:
    """One HTTP/2 stream."""

    full_duplex = True

    def __init__(self, connection: H2Connection, stream_id: int) -> None:
        self._connection = connection
        self._h2 = connection._h2
        self.stream_id = stream_id
        self._changed = anyio.Event()
        self._status: int | None = None
        self._headers: Headers = []
        self._data: deque[tuple[bytes, int]] = deque()
        self._ended = False
        self._sent_end = False
        self._trailers: Headers = []
        self._error: TransportError | None = None
        self._done = False

    # Events from the reader task.
    def wake(self) -> None:
        self._changed.set()

    def on_headers(self, headers: Headers) -> None:
        status = b"0"
        rest: Headers = []
        for name, value in headers:
            if name == b":status":
                status = value
            elif not name.startswith(b":"):
                rest.append((name, value))
        self._status = int(status)
        self._headers = rest
        self.wake()

    def on_data(self, data: bytes, flow_controlled: int) -> None:
        self._data.append((data, flow_controlled))
        self.wake()

    def on_trailers(self, headers: Headers) -> None:
        self._trailers = [(n, v) for n, v in headers if not n.startswith(b":")]

    def on_end(self) -> None:
        self._ended = True
        if self._sent_end:
            self._finish()
        self.wake()

    def on_reset(self, code: int) -> None:
        if self._ended:
            # The response was complete: the reset (NO_ERROR) only tells us to stop sending.
            self._finish()
            self.wake()
            return
        message = f"the server reset the stream ({_error_name(code)})"
        self.fail(TransportError(message, _RESET_CODES.get(code, Code.INTERNAL)))

    def fail(self, error: TransportError) -> None:
        if self._error is None:
            self._error = error
        self._finish()
        self.wake()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._connection.forget(self.stream_id)

    async def _wait(self) -> None:
        changed = self._changed
        await changed.wait()
        if changed is self._changed:
            self._changed = anyio.Event()

    # The exchange API.
    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._error is not None:
                raise self._error
            if self._ended:
                return  # the server answered already: it reads no more
            try:
                window = min(
                    self._h2.local_flow_control_window(self.stream_id),
                    self._h2.max_outbound_frame_size,
                )
            except h2.exceptions.StreamClosedError:
                raise TransportError("the stream is closed") from None
            if window <= 0:
                await self._wait()
                continue
            async with self._connection._write_lock:
                self._h2.send_data(self.stream_id, bytes(view[:window]))
                await self._connection._write()
            view = view[window:]

    async def end(self) -> None:
        if self._error is not None:
            raise self._error
        if self._sent_end:
            return
        self._sent_end = True
        if self._done:
            return
        async with self._connection._write_lock:
            try:
                self._h2.end_stream(self.stream_id)
            except h2.exceptions.StreamClosedError:
                return
            await self._connection._write()
        if self._ended:
            self._finish()

    async def response(self) -> tuple[int, Headers]:
        while self._status is None:
            if self._error is not None:
                raise self._error
            if self._ended:
                raise TransportError("the stream ended without response headers")
            await self._wait()
        return self._status, self._headers

    async def receive(self) -> bytes:
        while not self._data:
            if self._error is not None:
                raise self._error
            if self._ended:
                return b""
            await self._wait()
        data, flow_controlled = self._data.popleft()
        if flow_controlled:
            with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                self._h2.acknowledge_received_data(flow_controlled, self.stream_id)
            self._connection.flush_soon()
        return data if data else await self.receive()

    @property
    def trailers(self) -> Headers:
        return self._trailers

    def reset(self) -> None:
        if self._error is None:
            self._error = TransportError("the call was abandoned")
            self.wake()
        if self._done:
            return
        self._done = True
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self._h2.reset_stream(self.stream_id, h2.errors.ErrorCodes.CANCEL)
        self._connection.forget(self.stream_id)
        self._connection.flush_soon()


_RESET_CODES: dict[int, Code] = {
    h2.errors.ErrorCodes.REFUSED_STREAM: Code.UNAVAILABLE,
    h2.errors.ErrorCodes.CANCEL: Code.CANCELED,
    h2.errors.ErrorCodes.ENHANCE_YOUR_CALM: Code.RESOURCE_EXHAUSTED,
    h2.errors.ErrorCodes.INADEQUATE_SECURITY: Code.PERMISSION_DENIED,
}
"""RST_STREAM codes as gRPC reads them (PROTOCOL-HTTP2.md, "Errors"); the rest are internal."""


def _error_name(code: int) -> str:
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return f"error {code}"
