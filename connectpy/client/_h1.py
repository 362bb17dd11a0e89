"""An HTTP/1.1 client connection: the ``h11`` state machine over an anyio byte stream.

One exchange at a time, half duplex: the request body ends before the response is read (a
server may answer earlier; we read it once our side is done). A connection whose exchange
completed cleanly goes back to its pool.
"""

from __future__ import annotations

import contextlib
import select
from collections.abc import Callable

import anyio
import anyio.abc
import h11
from anyio.abc import SocketAttribute

from ._http import Headers, RequestHead, Spawn, TransportError

__all__ = ["H1Connection", "H1Exchange"]

_READ_SIZE = 1 << 16
_MAX_HEADERS = 1 << 20
_COALESCE_BYTES = 1 << 16


class H1Connection:
    """A connection carrying one exchange at a time."""

    full_duplex = False

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        spawn: Spawn,
        release: Callable[[H1Connection], None],
    ) -> None:
        self._stream = stream
        self._spawn = spawn
        self._release = release
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEADERS)
        self._broken = False
        self._trailers: Headers = []
        self._status: int | None = None
        self._headers: Headers = []
        self._body_ended = False
        self._released = False
        self.current: H1Exchange | None = None
        self._head_sent = False
        self._buffer = bytearray()

    @property
    def closed(self) -> bool:
        return self._broken

    @property
    def usable(self) -> bool:
        """Idle and still open: a server closes idle connections (Hypercorn after 5 s), and
        a closed socket reads as ready (EOF), as urllib3 checks before reusing one."""
        if self._broken or self._h11.our_state is not h11.IDLE:
            return False
        sock = self._stream.extra(SocketAttribute.raw_socket, None)
        if sock is not None and select.select([sock], [], [], 0)[0]:
            self.reset()
            return False
        return True

    async def open(self, head: RequestHead, body: bytes | None) -> H1Exchange:
        self._status = None
        self._headers = []
        self._trailers = []
        self._body_ended = False
        self._released = False
        self._head = head
        self._head_sent = False
        self._buffer = bytearray()
        self.current = H1Exchange(self)
        if body is not None:
            self._buffer += body
            await self.end()
        return self.current

    def _request(self, length: int | None) -> h11.Request:
        head = self._head
        headers: Headers = [(b"host", head.authority.encode()), *head.headers]
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        else:
            headers.append((b"transfer-encoding", b"chunked"))
        self._head_sent = True
        return h11.Request(method=head.method, target=head.target, headers=headers)

    async def _send(self, *events: h11.Event) -> None:
        """Send events in one write (a request's head goes with the start of its body)."""
        if self._broken:
            raise TransportError("the HTTP/1.1 connection is closed")
        try:
            data = b"".join(self._h11.send(event) or b"" for event in events)
        except h11.LocalProtocolError as exc:
            raise TransportError(f"HTTP/1.1 error: {exc}") from None
        if data:
            try:
                await self._stream.send(data)
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                self.reset()
                raise TransportError(f"HTTP/1.1 connection lost: {exc}") from None

    async def _next_event(self) -> h11.Event | type[h11.PAUSED]:
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                self.reset()
                raise TransportError(f"invalid HTTP/1.1 response: {exc}") from None
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            try:
                data = await self._stream.receive(_READ_SIZE)
            except anyio.EndOfStream:
                data = b""
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                self.reset()
                raise TransportError(f"HTTP/1.1 connection lost: {exc}") from None
            self._h11.receive_data(data)

    # The exchange API.
    async def send(self, data: bytes) -> None:
        # The body is held back up to _COALESCE_BYTES: a small stream then goes out with its
        # head in one write, with a content length. A server that answers before reading
        # the whole body may drop what arrives later (Go's net/http closes the body once
        # the response headers are flushed), which a half-duplex client cannot prevent.
        self._buffer += data
        if len(self._buffer) < _COALESCE_BYTES:
            return
        events: list[h11.Event] = [] if self._head_sent else [self._request(None)]
        events.append(h11.Data(data=bytes(self._buffer)))
        self._buffer.clear()
        await self._send(*events)

    async def end(self) -> None:
        events: list[h11.Event] = []
        if not self._head_sent:
            events.append(self._request(len(self._buffer)))
        elif self._h11.our_state is not h11.SEND_BODY:
            return
        if self._buffer:
            events.append(h11.Data(data=bytes(self._buffer)))
            self._buffer.clear()
        events.append(h11.EndOfMessage())
        await self._send(*events)

    async def response(self) -> tuple[int, Headers]:
        while self._status is None:
            event = await self._next_event()
            if isinstance(event, h11.Response):
                self._status = event.status_code
                self._headers = list(event.headers)
            elif isinstance(event, h11.ConnectionClosed):
                self.reset()
                raise TransportError("the server closed the connection before responding")
        return self._status, self._headers

    async def receive(self) -> bytes:
        if self._body_ended:
            return b""
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                if event.data:
                    return bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._trailers = list(event.headers)
                self._body_ended = True
                self._done()
                return b""
            elif isinstance(event, h11.ConnectionClosed):
                self.reset()
                raise TransportError("the server closed the connection mid-response")

    @property
    def trailers(self) -> Headers:
        return self._trailers

    def _done(self) -> None:
        """Back to the pool if both sides finished cleanly, else close."""
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
            if not self._released:
                self._released = True
                self.current = None
                self._release(self)

    def reset(self) -> None:
        if self._released:
            return  # finished cleanly and pooled already (perhaps busy with another exchange)
        if not self._broken:
            self._broken = True
            with contextlib.suppress(RuntimeError):
                self._spawn(self.aclose)

    async def aclose(self) -> None:
        self._broken = True
        with anyio.CancelScope(shield=True):
            await self._stream.aclose()


class H1Exchange:
    """One exchange on an :class:`H1Connection`; stale once the connection is pooled again."""

    full_duplex = False

    def __init__(self, connection: H1Connection) -> None:
        self._connection = connection
        self.send = connection.send
        self.end = connection.end
        self.response = connection.response
        self.receive = connection.receive

    def reset(self) -> None:
        if self._connection.current is self:
            self._connection.reset()

    @property
    def trailers(self) -> Headers:
        return self._connection.trailers
