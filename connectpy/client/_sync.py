"""The synchronous client: the async client run on an event loop in a background thread.

``with SyncClient(BookService, url) as books: books.get_book(request)``. Each call hands its
work to the loop thread through an anyio blocking portal and waits for it; streams are plain
iterators. Typed as the service class, like :class:`Client`: describe the service with plain
``def`` methods (``-> Book``, ``-> Iterator[Book]``) for mypy.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

import anyio.from_thread
import anyio.to_thread

from .._model.service import MethodInfo
from ._call import ResponseStream
from ._client import Client, _One
from ._options import _CURRENT, CallOptions, current_options

__all__ = ["SyncClient"]

S = TypeVar("S")

_DONE = object()


class SyncClient(Generic[S]):
    """A blocking client for one service; takes the same arguments as :class:`Client`.

    Args:
        backend: the event loop the calls run on (``"asyncio"`` or ``"trio"``).
    """

    def __init__(
        self, service: Callable[..., S], url: str, *, backend: str = "asyncio", **options: Any
    ) -> None:
        self._client: Client[Any] = Client(service, url, **options)
        self._backend = backend
        self._stack = contextlib.ExitStack()
        self._portal: anyio.from_thread.BlockingPortal | None = None

    def __enter__(self) -> S:
        stack = self._stack
        portal = stack.enter_context(anyio.from_thread.start_blocking_portal(self._backend))
        self._portal = portal
        stack.enter_context(portal.wrap_async_context_manager(self._client))
        stub = _SyncStub(self)
        for method in self._client._info.methods:
            setattr(stub, method.attribute, _caller(self, method))
        return stub  # type: ignore[return-value]

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections and stop the loop thread."""
        self._portal = None
        self._stack.close()

    def _run(self, options: CallOptions | None, function: Callable[..., Any], *args: Any) -> Any:
        portal = self._portal
        if portal is None:
            raise RuntimeError("the client is closed (use it inside `with`)")
        return portal.call(_with_options, options, function, *args)

    def _open(self, method: MethodInfo, requests: Any) -> ResponseStream:
        """Start a call's response stream in the loop thread, under the caller's options."""
        return self._run(current_options(), _open_stream, self._client, method, requests)  # type: ignore[no-any-return]


async def _with_options(
    options: CallOptions | None, function: Callable[..., Any], *args: Any
) -> Any:
    token = _CURRENT.set(options)
    try:
        result = function(*args)
        if hasattr(result, "__await__"):
            result = await result
        return result
    finally:
        _CURRENT.reset(token)


def _open_stream(client: Client[Any], method: MethodInfo, requests: Any) -> ResponseStream:
    return client._messages(method, requests)


async def _next(stream: ResponseStream) -> Any:
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return _DONE


class _SyncStream(Iterator[Any]):
    """A response stream read from another thread; closing or dropping it ends the call."""

    def __init__(self, client: SyncClient[Any], stream: ResponseStream) -> None:
        self._client = client
        self._stream = stream

    def __iter__(self) -> _SyncStream:
        return self

    def __next__(self) -> Any:
        item = self._client._run(None, _next, self._stream)
        if item is _DONE:
            raise StopIteration
        return item

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._client._run(None, self._stream.abandon)

    def __del__(self) -> None:
        self.close()


async def _from_thread(requests: Iterable[Any]) -> AsyncIterator[Any]:
    """A caller's blocking iterator, each ``next`` run in a worker thread (it may block)."""
    iterator = iter(requests)
    while True:
        item = await anyio.to_thread.run_sync(next, iterator, _DONE)
        if item is _DONE:
            return
        yield item


class _SyncStub:
    def __init__(self, client: SyncClient[Any]) -> None:
        self._client = client


def _caller(client: SyncClient[Any], method: MethodInfo) -> Callable[[Any], Any]:
    stream_type = method.stream_type
    if not stream_type.client_streams:

        def make(request: Any) -> Any:
            return _One(request)

    else:

        def make(request: Any) -> Any:
            return _from_thread(request)

    if not stream_type.server_streams:

        def unary(request: Any) -> Any:
            return client._run(current_options(), client._client._unary, method, make(request))

        return unary

    def streaming(request: Any) -> Iterator[Any]:
        return _SyncStream(client, client._open(method, make(request)))

    return streaming
