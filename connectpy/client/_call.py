"""Runs one call over an exchange: whatever its stream type, request messages go out, response
messages come back, and the status ends it. Transport failures become ``ConnectError`` here,
the client's one boundary: ``unavailable``, ``deadline_exceeded`` or ``canceled``."""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from typing import Any

import anyio

from ..code import Code
from ..errors import ConnectError
from ._http import Exchange, Headers, RequestHead, Spawn, Transport, TransportError
from ._options import CallInfo
from ._spec import CallSpec, ClientProtocol, ResponseReader

__all__ = ["Origin", "run_call"]

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


def transport_error(exc: TransportError, closed: bool) -> ConnectError:
    if closed:
        return ConnectError(Code.CANCELED, f"the client was closed: {exc}")
    code = getattr(exc, "code", None) or Code.UNAVAILABLE
    return ConnectError(code, str(exc))


async def run_call(
    *,
    transport: Transport,
    protocol: ClientProtocol,
    spec: CallSpec,
    origin: Origin,
    requests: AsyncIterable[bytes] | bytes,
    info: CallInfo,
    spawn: Spawn,
    closed: Callable[[], bool],
) -> AsyncGenerator[bytes, None]:
    """The call's response messages (encoded), raising its error at the end.

    ``requests`` is the one message of a call whose client does not stream, else the
    client's stream of encoded messages.
    """
    deadline = _Deadline(spec)
    single = requests if isinstance(requests, bytes) else None
    method, target, headers, body = protocol.request(spec, single)
    head = RequestHead(method, origin[0], origin[1], origin[2], target, headers)
    exchange: Exchange | None = None
    sender: _Sender | None = None
    reader: ResponseReader | None = None
    try:
        try:
            exchange = await deadline.run(lambda: transport.open(head, body))
            assert exchange is not None
            if body is None:
                assert not isinstance(requests, bytes)
                sender = _Sender(exchange, protocol, spec, requests, deadline.at)
                if exchange.full_duplex:
                    spawn(sender.run)
                else:
                    await sender.run()
                    sender.raise_failure()
            status, response_headers = await deadline.run(exchange.response)
            reader = protocol.reader(spec, status, response_headers)
            info.response_headers = _text_pairs(reader.headers)
            while True:
                chunk = await deadline.run(exchange.receive)
                if not chunk:
                    break
                for message in reader.feed(chunk):
                    deadline.check()
                    yield message
            messages, trailers = reader.finish(exchange.trailers)
            info.response_headers = _text_pairs(reader.headers)
            info.response_trailers = _text_pairs(trailers)
            for message in messages:
                yield message
        except TransportError as exc:
            if sender is not None:
                sender.raise_failure()
            raise transport_error(exc, closed()) from None
    except ConnectError as exc:
        if reader is not None:
            info.response_headers = _text_pairs(reader.headers)
        if not info.response_trailers:
            info.response_trailers = list(exc.metadata)
        raise
    finally:
        if sender is not None:
            sender.cancel()
        if exchange is not None:
            exchange.reset()


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

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    def cancel(self) -> None:
        self._cancelled = True
        if self._scope is not None:
            self._scope.cancel()
