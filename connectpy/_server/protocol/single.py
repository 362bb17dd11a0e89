"""What the calls that answer with one whole HTTP response share: Connect unary (POST and GET)
and REST. Their one request message is read in one go, and their one response message is
held until ``finish``, which sends it with the headers, so nothing is ever flushed early."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from ..asgi import HttpRequest, drain_body

__all__ = ["SingleResponseCall"]


class SingleResponseCall:
    """The response side of such a call, and reading what the handler never asked for.

    Subclasses set ``request``, ``_body_read`` and ``_response`` in ``__init__`` and define
    ``read_single`` and ``finish``.
    """

    request: HttpRequest
    _body_read: bool
    """The request body has been read (or drained)."""
    _response: bytes | None
    """The response message, once the handler produced it."""

    pending = 0
    """The response message is held for ``finish``, never flushed."""
    headers_sent = False
    """Until ``finish``, which sends them with the message."""

    async def read_single(self) -> bytes:
        raise NotImplementedError

    async def messages(self) -> AsyncGenerator[bytes, None]:
        yield await self.read_single()

    async def drain(self) -> None:
        return None

    def send_message(self, data: bytes) -> None:
        self._response = data

    async def flush(self) -> None:
        return None

    async def _drain_unread_body(self) -> None:
        """Read the body nobody read (``finish`` calls this when ``_body_read`` is false, so
        the usual call pays no await for it): answering first makes Hypercorn drop the
        connection (HTTP/1.1) or crash it when the late DATA frames arrive (HTTP/2)."""
        self._body_read = True
        await drain_body(self.request.receive)
