"""Runs one call over an exchange: whatever its stream type, request messages go out, response
messages come back, and the status ends it. Transport failures become ``ConnectError`` here,
the client's one boundary: ``unavailable``, ``deadline_exceeded`` or ``canceled``."""

from __future__ import annotations

import math
import weakref
from collections import deque
from collections.abc import AsyncIterable, Callable
from typing import Any

import anyio
import anyio.lowlevel
from starlette.datastructures import MutableHeaders

from ..code import Code
from ..errors import ConnectError
from ._context import ClientContext
from ._hooks import CallHooks
from ._http import Exchange, Headers, RequestHead, Spawn, Transport, TransportError
from ._options import CallInfo
from ._spec import CallSpec, ClientProtocol, ResponseReader

__all__ = ["Origin", "ResponseStream"]

Origin = tuple[str, str, int]
"""``(scheme, host, port)``."""


def _deadline_error(spec: CallSpec) -> ConnectError:
    return ConnectError(Code.DEADLINE_EXCEEDED, f"{spec.method.procedure}: the deadline passed")


class _Deadline:
    """Bounds each await of a call by its deadline, without a scope around the caller's code
    (a generator cannot hold a cancel scope across ``yield``)."""

    def __init__(self, spec: CallSpec) -> None:
        self.spec = spec
        self.at = (
            math.inf if spec.timeout_ms is None else anyio.current_time() + spec.timeout_ms / 1000
        )

    def check(self) -> None:
        if anyio.current_time() >= self.at:
            raise _deadline_error(self.spec)

    async def run(self, make: Callable[[], Any]) -> Any:
        self.check()
        with anyio.move_on_at(self.at) as scope:
            return await make()
        if scope.cancelled_caught:
            raise _deadline_error(self.spec)
        return None  # pragma: no cover - move_on_at returned without result


async def _yield_to_an_expired_scope() -> None:
    """Let the caller's cancel scope end the call when its deadline was the call's.

    A call's deadline is taken from the caller's ``move_on_after``/``fail_after`` (deadline
    propagation), so our timer, the server's and the scope's all pass together. The scope's
    cancellation, due at the next checkpoints, is what the caller asked for; a
    ``deadline_exceeded`` raised first would escape a ``move_on_after`` as an error.
    """
    if anyio.current_effective_deadline() <= anyio.current_time():
        with anyio.move_on_after(_EXPIRED_SCOPE_GRACE_SECONDS):
            await anyio.sleep_forever()  # cancelled by the caller's scope, now due


_EXPIRED_SCOPE_GRACE_SECONDS = 1.0  # a shielded caller never cancels: give up then


def _canceled() -> ConnectError:
    return ConnectError(Code.CANCELED, "the call was canceled")


def transport_error(exc: TransportError, closed: bool) -> ConnectError:
    if closed:
        return ConnectError(Code.CANCELED, f"the client was closed: {exc}")
    return ConnectError(exc.code, str(exc))


class ResponseStream:
    """The call's response messages, decoded, raising its error at the end.

    An iterator object rather than an async generator: a caller that leaves ``async for``
    early drops it, and ``__del__`` abandons the call then (an HTTP/2 reset or a closed
    HTTP/1.1 connection) with no await and no warning from the event loop about a generator
    collected unfinished.

    ``requests`` is the one message of a call whose client does not stream, else the client's
    stream of encoded messages.
    """

    def __init__(
        self,
        *,
        transport: Transport,
        protocol: ClientProtocol,
        spec: CallSpec,
        origin: Origin,
        requests: AsyncIterable[bytes] | bytes,
        info: CallInfo,
        spawn: Spawn,
        closed: Callable[[], bool],
        decode: Callable[[bytes], Any],
        hooks: CallHooks | None = None,
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        self._spec = spec
        self._origin = origin
        self._requests = requests
        self._info = info
        self._spawn = spawn
        self._closed = closed
        self._decode = decode
        self._hooks = hooks
        self._deadline: _Deadline | None = None
        self._exchange: Exchange | None = None
        self._sender: _Sender | None = None
        self._reader: ResponseReader | None = None
        self._pending: deque[bytes] = deque()
        self._done = False
        self._cancelled = False
        # Weakly: a stream the caller dropped must be collected (and abandoned) at once,
        # not kept alive by its CallInfo.
        weak_cancel = weakref.WeakMethod(self.cancel)

        def cancel() -> None:
            method = weak_cancel()
            if method is not None:
                method()

        info.attach(cancel)

    def __aiter__(self) -> ResponseStream:
        return self

    async def __anext__(self) -> Any:
        # Even with messages buffered, a cancelled caller must see its cancellation here:
        # otherwise a stream read to its end from the buffer never yields to it.
        await anyio.lowlevel.checkpoint_if_cancelled()
        if self._cancelled:
            raise _canceled()
        if self._done and not self._pending:
            return await self._end()
        try:
            try:
                message = await self._next_message()
            except TransportError as exc:
                if self._cancelled:
                    raise _canceled() from None
                if self._deadline is not None and anyio.current_time() >= self._deadline.at:
                    # The server enforced our deadline (gRPC resets the stream) a moment
                    # before our own timer fired.
                    raise _deadline_error(self._spec) from None
                if self._sender is not None:
                    self._sender.raise_failure()
                raise transport_error(exc, self._closed()) from None
        except ConnectError as exc:
            self._record()
            self._release()
            error = exc if self._hooks is None else await self._hooks.finish(exc) or exc
            if error.code is Code.DEADLINE_EXCEEDED:
                await _yield_to_an_expired_scope()
            raise error from None
        except BaseException:
            self._release()
            if self._hooks is not None:
                await self._hooks.cancel()
            raise
        if message is _END:
            return await self._end()
        return message

    async def _next_message(self) -> Any:
        """The next response message, decoded, or ``_END`` after the last."""
        if self._deadline is None:
            self._deadline = _Deadline(self._spec)
            await self._start(self._deadline)
        while not self._pending:
            if self._done:
                if self._cancelled:
                    raise _canceled()
                return _END
            await self._read(self._deadline)
        self._deadline.check()
        data = self._pending.popleft()
        message = self._decode(data)
        if self._hooks is not None:
            self._hooks.received(message, len(data))
        return message

    async def _end(self) -> Any:
        """The call ended well: its interceptors see it, and may fail it still."""
        if self._hooks is not None:
            error = await self._hooks.finish(None)
            if error is not None:
                raise error
        raise StopAsyncIteration

    async def _start(self, deadline: _Deadline) -> None:
        spec, requests = self._spec, self._requests
        single = requests if isinstance(requests, bytes) else None
        method, target, headers, body = self._protocol.request(spec, single)
        scheme, host, port = self._origin
        if self._hooks is not None:
            headers = await deadline.run(lambda: self._intercept(target, headers))
        head = RequestHead(method, scheme, host, port, target, headers)
        transport = self._transport
        exchange: Exchange = await deadline.run(lambda: transport.open(head, body))
        self._exchange = exchange
        if self._cancelled:
            raise TransportError("canceled")
        if body is None:
            assert not isinstance(requests, bytes)
            sender = self._sender = _Sender(exchange, self._protocol, spec, requests, deadline.at)
            if exchange.full_duplex:
                self._spawn(sender.run)
            else:
                await sender.run()
                sender.raise_failure()
        status, response_headers = await deadline.run(exchange.response)
        self._reader = self._protocol.reader(spec, status, response_headers)
        self._record()

    async def _intercept(self, target: str, headers: Headers) -> Headers:
        """Run the interceptors to their ``yield``; the request headers they leave."""
        assert self._hooks is not None
        scheme, host, port = self._origin
        context = ClientContext(
            method=self._spec.method,
            protocol=self._protocol.name,
            url=f"{scheme}://{host}:{port}{target.split('?', 1)[0]}",
            peer=(host, port),
            request_headers=MutableHeaders(raw=headers),
            timeout_ms=self._spec.timeout_ms,
        )
        await self._hooks.start(context)
        return context.request_headers.raw

    async def _read(self, deadline: _Deadline) -> None:
        exchange, reader = self._exchange, self._reader
        assert exchange is not None
        assert reader is not None
        chunk: bytes = await deadline.run(exchange.receive)
        if chunk:
            self._pending.extend(reader.feed(chunk))
            return
        messages, _ = reader.finish(exchange.trailers)
        self._pending.extend(messages)
        self._done = True
        self._record()
        self._release()  # nothing left to read: release the exchange

    def _record(self) -> None:
        reader = self._reader
        if reader is not None:
            self._info.response_headers = _text_pairs(reader.headers)
            self._info.response_trailers = _text_pairs(reader.trailers)
            hooks = self._hooks
            if hooks is not None and hooks.context is not None:
                hooks.context.record_response(reader.headers, reader.trailers)

    def abandon(self) -> None:
        """End the call here, whatever its state (no await)."""
        self._release()
        if self._hooks is not None:
            self._hooks.drop()

    def _release(self) -> None:
        """Let go of the exchange (the call is over, or being abandoned)."""
        self._done = True
        if self._sender is not None:
            self._sender.cancel()
        if self._exchange is not None:
            self._exchange.reset()

    def cancel(self) -> None:
        """Abandon the call, reporting ``canceled`` to whoever waits for it."""
        if not self._done:
            self._cancelled = True
            self.abandon()

    async def aclose(self) -> None:
        self._release()
        if self._hooks is not None:
            await self._hooks.cancel()

    def __del__(self) -> None:
        self.abandon()


_END: Any = object()


def _text_pairs(headers: Headers) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]


class _Sender:
    """Sends a streaming client's messages; in the background over HTTP/2 (full duplex).

    A failure of the caller's own iterator is kept and raised by the receiving side; a
    failure to send (the server answered and closed its side) ends sending quietly: the
    response says what happened.
    """

    def __init__(
        self,
        exchange: Exchange,
        protocol: ClientProtocol,
        spec: CallSpec,
        requests: AsyncIterable[bytes],
        deadline: float,
    ) -> None:
        self._exchange = exchange
        self._protocol = protocol
        self._spec = spec
        self._requests = requests
        self._deadline = deadline
        self._scope: anyio.CancelScope | None = None
        self._cancelled = False
        self.failure: BaseException | None = None

    async def run(self) -> None:
        with anyio.CancelScope(deadline=self._deadline) as scope:
            self._scope = scope
            if self._cancelled:
                scope.cancel()
            try:
                async for message in self._requests:
                    await self._exchange.send(self._protocol.frame(self._spec, message))
                await self._exchange.end()
            except TransportError:
                return
            except Exception as exc:  # the caller's iterator failed: the call fails with it
                self.failure = exc
                self._exchange.reset()
            finally:
                close = getattr(self._requests, "aclose", None)
                if close is not None:
                    with anyio.CancelScope(shield=True):
                        await close()

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    def cancel(self) -> None:
        self._cancelled = True
        if self._scope is not None:
            self._scope.cancel()
