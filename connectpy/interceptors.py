"""Interceptors: code that wraps every call of an app or of a mounted service.

An interceptor is a generator function, sync or async, that takes the call's
:class:`~connectpy.Context` and yields once, as with ``contextlib.contextmanager``::

    async def require_token(context: Context) -> AsyncIterator[None]:
        if context.request_headers.get("authorization") != "Bearer s3cret":
            raise ConnectError(Code.UNAUTHENTICATED, "a valid bearer token is required")
        context.state["user"] = "alice"
        yield

    app = ASGIApp(interceptors=[require_token])

See docs/interceptors.md for the order several run in and what each part sees.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .context import Context

if TYPE_CHECKING:
    from .client._context import ClientContext

__all__ = ["ClientInterceptor", "Interceptor", "Observer"]


@dataclass(frozen=True, slots=True)
class Observer:
    """What an interceptor may yield to see each message of its call as it passes.

    Each callable gets the message and its encoded size in bytes (uncompressed). On a server,
    ``received`` sees each request message once decoded and ``sent`` each response message
    once encoded; on a client, ``sent`` sees each request message and ``received`` each
    response message. They run
    on the event loop between messages, so they should be quick; an exception they raise
    fails the call as the handler's would.
    """

    received: Callable[[Any, int], None] | None = None
    sent: Callable[[Any, int], None] | None = None


class Interceptor(Protocol):
    """A generator function (``def`` or ``async def``) that wraps one call, yielding once.

    Before its ``yield`` it sees the call's :class:`~connectpy.Context` (procedure, stream
    type, protocol, peer, request headers, deadline) and may raise
    :class:`~connectpy.ConnectError` to refuse the call before its request is read; it may set
    response headers and trailers, and leave values for the handler in ``context.state``. It
    may yield an :class:`Observer` to see every message. After the ``yield`` the call is over
    but its status not yet sent: the ``yield`` raises the call's ``ConnectError`` if it
    failed, and the interceptor may raise another in its place, or set trailers.
    """

    def __call__(
        self, context: Context, /
    ) -> Iterator[Observer | None] | AsyncIterator[Observer | None]: ...


class ClientInterceptor(Protocol):
    """The same shape on a client (``Client(..., interceptors=[...])``): a generator
    function that wraps one outgoing call, yielding once.

    Before its ``yield`` it sees the call's :class:`~connectpy.client.ClientContext`
    (procedure, stream type, protocol, URL and peer, the request headers, the deadline), may
    add request headers (a bearer token, a ``traceparent``) before anything is sent, or raise
    :class:`~connectpy.ConnectError` to fail the call without sending it. It may yield an
    :class:`Observer`: ``sent`` sees each request message, ``received`` each response
    message. The ``yield`` raises the call's ``ConnectError`` if it failed; after it the
    response headers and trailers are in the context, and the interceptor may raise another
    error in its place. An interceptor typed for a context-like view that both sides have
    (``method``, ``protocol``, ``request_headers``, ``peer``, ``deadline``, ``state``) serves
    both.
    """

    def __call__(
        self, context: ClientContext, /
    ) -> Iterator[Observer | None] | AsyncIterator[Observer | None]: ...
