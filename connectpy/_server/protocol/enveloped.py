"""What the enveloped protocols (Connect streaming, gRPC, gRPC-Web) share: reading the request
body's frames, reading what a handler left unread before the status goes out, and queueing
response frames so that messages produced back to back leave in one ASGI message."""

from __future__ import annotations

from collections.abc import AsyncGenerator, MutableMapping
from typing import Any

import anyio

from ..._wire.envelope import ENVELOPE_HEADER, Envelope, EnvelopeReader
from ...code import Code
from ...context import Context
from ...errors import ConnectError
from ..asgi import Disconnected, HttpRequest, drain_body, open_body_grace
from .base import not_one_message

__all__ = ["EnvelopedCall"]


class EnvelopedCall:
    """The request side of a call whose body is a sequence of envelopes.

    Subclasses set the attributes below in ``__init__`` and define ``_unwrap``, which checks
    a frame's flags and decompresses it.
    """

    request: HttpRequest
    read_max_bytes: int
    context: Context
    _body_done: bool
    """The last body message has been received: there is nothing left to read or drain."""
    _started: bool
    """The response headers have been sent."""
    _queue: list[bytes]
    """Response frames not yet sent."""
    _queued: int
    """Their size in bytes."""
    _plain_frames = False
    """Response messages are framed as is: no compression, no base64 (set by subclasses)."""
    _binary = True
    """Frames travel as bytes both ways (gRPC-Web-text base64-encodes them)."""

    def _unwrap(self, flags: int, data: bytes) -> bytes:
        raise NotImplementedError

    def _message_frame(self, data: bytes) -> bytes:
        """One response message as it travels in the body (compressed and enveloped)."""
        raise NotImplementedError

    async def _start_response(self) -> None:
        """Send the response headers (sets ``_started``)."""
        raise NotImplementedError

    def send_message(self, data: bytes) -> None:
        if self._plain_frames:
            frame = ENVELOPE_HEADER.pack(0, len(data)) + data  # encode_envelope, a call less
        else:
            frame = self._message_frame(data)
        self._queue.append(frame)
        self._queued += len(frame)

    @property
    def pending(self) -> int:
        return self._queued

    @property
    def headers_sent(self) -> bool:
        return self._started

    def _take(self) -> bytes:
        """The queued frames as one body chunk; the queue is empty afterwards."""
        queue = self._queue
        if not queue:
            return b""
        self._queue = []
        self._queued = 0
        return queue[0] if len(queue) == 1 else b"".join(queue)

    def _take_for_status(self, error: ConnectError | None) -> bytes:
        """What is still queued when the status goes out: a stream's messages go ahead of it,
        but an error replaces the one response message of a call that does not stream it."""
        chunk = self._take()
        if error is not None and not self.context.method.stream_type.server_streams:
            return b""
        return chunk

    async def flush(self) -> None:
        chunk = self._take()  # before any await: what is queued meanwhile waits its turn
        if not self._started:
            # Shielded: a streaming call is cancelled when its client goes away, and Hypercorn
            # sends HTTP/2 headers by encoding them, then waiting for the socket to write
            # them with whatever else the connection had pending: cut short there, those
            # bytes are lost and the connection's header compression goes out of step with
            # the client's. Bounded: the wait ends when the socket writes or the connection
            # closes. Body sends only wait for room in a buffer and may be cancelled.
            with anyio.CancelScope(shield=True):
                await self._start_response()
        if chunk:
            await self.request.send(
                {"type": "http.response.body", "body": chunk, "more_body": True}
            )

    def _body_bytes(self, chunk: bytes) -> bytes:
        """The envelope bytes in a body chunk (gRPC-Web-text decodes base64 here)."""
        return chunk

    def _body_end(self) -> None:
        """Called once the whole body is read (gRPC-Web-text checks it ended cleanly)."""
        return None

    def _frames(self, reader: EnvelopeReader, message: MutableMapping[str, Any]) -> list[Envelope]:
        """The frames one ASGI receive message completes."""
        if message["type"] == "http.disconnect":
            raise Disconnected
        if not message.get("more_body", False):
            # Set now, not after the frames are used: whoever stops early must not wait for
            # more body (a server may deliver the whole body in one message).
            self._body_done = True
        return reader.feed(self._body_bytes(message.get("body", b"")))

    def _end_of_body(self, reader: EnvelopeReader) -> None:
        self._body_end()
        if reader.pending:
            raise ConnectError(Code.INVALID_ARGUMENT, "request stream ended inside a message")

    async def messages(self) -> AsyncGenerator[bytes, None]:
        reader = EnvelopeReader(self.read_max_bytes)
        receive = self.request.receive
        while not self._body_done:
            for flags, data in self._frames(reader, await receive()):
                yield self._unwrap(flags, data)
        self._end_of_body(reader)

    async def read_single(self) -> bytes:
        receive = self.request.receive
        message = await receive()
        lone = self._lone_frame(message)
        if lone is None:
            return await self._read_single_from(message, None)
        if not self._body_done:
            # Hypercorn and Granian end every body with an empty message of their own.
            message = await receive()
            if message["type"] != "http.request" or message.get("body") or message.get("more_body"):
                return await self._read_single_from(message, self._unwrap(*lone))
            self._body_done = True
        return self._unwrap(*lone)

    def _lone_frame(self, message: MutableMapping[str, Any]) -> Envelope | None:
        """The frame in ``message`` if it holds exactly one whole frame, as the first body
        message of a unary call does; else None, and the general path reads the body.

        Read without an EnvelopeReader and its list: a unary call's framing is then one
        struct unpack and one slice.
        """
        body = message.get("body", b"")
        if not self._binary or message["type"] != "http.request" or len(body) < 5:
            return None
        flags, length = ENVELOPE_HEADER.unpack_from(body)
        if len(body) != 5 + length or length > self.read_max_bytes:
            return None
        if not message.get("more_body", False):
            self._body_done = True
        return flags, body[5:]

    async def _read_single_from(
        self, message: MutableMapping[str, Any], found: bytes | None
    ) -> bytes:
        """:meth:`read_single` from ``message`` on, ``found`` the message read before it."""
        reader = EnvelopeReader(self.read_max_bytes)
        receive = self.request.receive
        while True:
            for flags, data in self._frames(reader, message):
                if found is not None:  # any rest of the body is drained before the status
                    raise not_one_message(self.context.method, more=True)
                found = self._unwrap(flags, data)
            if self._body_done:
                break
            message = await receive()
        self._end_of_body(reader)
        if found is None:
            raise not_one_message(self.context.method, more=False)
        return found

    async def drain(self) -> None:
        if not self._body_done:
            self._body_done = True
            await drain_body(self.request.receive)

    async def _drain_before_status(self) -> None:
        """Read and drop the rest of the request body before answering with a status.

        A unary or server-streaming client sends its whole body without waiting, so wait
        for it (bounded by size). A client-streaming one may wait for our responses before it
        ends its stream (full duplex): wait only for :func:`open_body_grace`.
        """
        if self._body_done:
            return
        self._body_done = True
        client_streams = self.context.method.stream_type.client_streams
        bound = open_body_grace(self.request.scope) if client_streams else None
        with anyio.move_on_after(bound):
            try:
                await drain_body(self.request.receive)
            except ConnectError:  # the body overflowed a buffer: the status we owe still goes
                return
