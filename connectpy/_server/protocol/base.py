"""The interface every wire protocol implements, so dispatch never branches on a protocol."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Protocol

from ...code import Code
from ...errors import ConnectError

if TYPE_CHECKING:
    from ..._model.service import MethodInfo
    from ...context import Context
    from ..asgi import HttpRequest

__all__ = ["ServerCall", "ServerProtocol", "not_one_message"]


def not_one_message(method: MethodInfo, more: bool) -> ConnectError:
    """The error for a unary or server-streaming request without exactly one message."""
    return ConnectError(
        Code.UNIMPLEMENTED,
        f"{method.procedure} takes exactly one request message, got "
        + ("more than one" if more else "none"),
    )


class ServerCall(Protocol):
    """One call on the wire: reads request messages, writes responses and the final status.

    ``start`` validates the request's protocol headers and may raise ``ConnectError``; the
    dispatcher then reports it through ``finish``, which every call must accept at any point.
    """

    codec: str
    """``"proto"`` or ``"json"``: how message bytes are encoded."""
    read_max_bytes: int
    context: Context

    def start(self) -> None: ...

    def messages(self) -> AsyncGenerator[bytes, None]:
        """The request messages' bytes, decompressed and size-checked, in order."""
        ...

    async def read_single(self) -> bytes:
        """The one request message of a call whose client does not stream, read to the end of
        the body in one await (no generator to set up and close, as ``messages`` needs).

        Raises:
            ConnectError: ``unimplemented`` (see :func:`not_one_message`) when the body holds
                no message or more than one, or whatever ``messages`` would raise.
        """
        ...

    async def drain(self) -> None:
        """Read and drop any request body the handler left unread."""
        ...

    def send_message(self, data: bytes) -> None:
        """Queue one response message (encoded); :meth:`flush` or :meth:`finish` sends it.

        Queueing is what lets a stream write the messages a handler produces back to back
        in one ASGI message: a server's cost is per message sent, not per byte.
        """
        ...

    @property
    def headers_sent(self) -> bool:
        """Whether the response headers have gone to the server."""
        ...

    @property
    def pending(self) -> int:
        """Bytes queued by :meth:`send_message` and not yet handed to the server."""
        ...

    async def flush(self) -> None:
        """Send the queued messages (after the response headers, the first time).

        Only streaming responses flush before ``finish``; never called concurrently with
        itself or with ``finish``.
        """
        ...

    async def finish(self, error: ConnectError | None) -> None:
        """Send whatever is still owed: headers, queued messages, then the status or error.

        A unary response queued before an error is dropped; a stream's queued messages
        were produced before the error and still go out ahead of it.
        """
        ...


class ServerProtocol(Protocol):
    """A wire protocol: recognises its requests and opens calls for them."""

    name: str
    content_types: tuple[str, ...]
    """The request content types it reads, named in a 415 (none for Connect GET)."""

    def matches(self, request: HttpRequest) -> bool:
        """Whether the HTTP method and content type belong to this protocol.

        For a POST the content type alone decides (the app keeps the answer per content
        type); a GET may look at the query too.
        """
        ...

    def refusal(self, request: HttpRequest, method: MethodInfo) -> int | None:
        """An HTTP status if this protocol cannot serve ``method`` (405, 415), else ``None``."""
        ...

    def open_call(
        self, request: HttpRequest, method: MethodInfo, read_max_bytes: int
    ) -> ServerCall: ...

    async def reject(self, request: HttpRequest, error: ConnectError) -> None:
        """Answer a request that never became a call (no such procedure) in this protocol."""
        ...
