"""Runs a server call through its interceptors (the runner itself, shared with the client, is
:mod:`connectpy._intercept`).

They run between ``call.start()`` (the protocol headers and the deadline are parsed and valid)
and reading the request body, so a rejection costs no read or decode; the body is drained
unread when the status goes out.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

from .._intercept import Entered, abandon, check_interceptor, enter, leave
from .._model.message import MessageCodec
from ..code import Code
from ..errors import ConnectError
from ..interceptors import Interceptor, Observer
from .dispatch import _GONE, Endpoint, Serve, _run_guarded
from .protocol.base import ServerCall
from .stream_writer import StreamWriter

__all__ = ["InterceptorChain", "chain_of"]

logger = logging.getLogger("connectpy")


def chain_of(*layers: Sequence[Interceptor]) -> InterceptorChain | None:
    """The interceptors of ``layers`` (outermost first) as one chain, or ``None`` for none.

    Raises:
        TypeError: one of them is not a generator function (nor an object whose
            ``__call__`` is one).
    """
    interceptors = [interceptor for layer in layers for interceptor in layer]
    if not interceptors:
        return None
    for interceptor in interceptors:
        check_interceptor(interceptor)
    return InterceptorChain(interceptors)


class InterceptorChain:
    """The interceptors an endpoint's calls run through, outermost first."""

    __slots__ = ("_interceptors",)

    def __init__(self, interceptors: list[Interceptor]) -> None:
        self._interceptors = interceptors

    async def run(
        self,
        endpoint: Endpoint,
        call: ServerCall,
        serve: Serve,
        on_request: Callable[[], None] | None,
        writer: StreamWriter | None,
    ) -> Any:
        """Run the call through the interceptors; return what ``_run_guarded`` returns.

        A request whose protocol headers are invalid never reaches the interceptors.
        """
        refused = _start(call)
        if refused is not None:
            return refused
        entered: list[Entered] = []
        observers: list[Observer] = []
        try:
            outcome = await enter(
                self._interceptors, call.context, _procedure(call), entered, observers
            )
            if outcome is None:
                target = _observed(endpoint, observers) if observers else endpoint
                outcome = await _run_guarded(target, call, serve, on_request, writer, started=True)
        except BaseException:
            await abandon(entered)
            raise
        gone = outcome is _GONE
        error = ConnectError(Code.CANCELED, "the client went away") if gone else outcome
        error = await leave(entered, error)
        return _GONE if gone else error


def _start(call: ServerCall) -> ConnectError | None:
    """Parse the protocol headers and the deadline, as ``_run_guarded`` would."""
    try:
        call.start()
    except ConnectError as exc:
        return exc
    except Exception:
        logger.exception("starting %s failed", _procedure(call))
        return ConnectError(Code.INTERNAL, "internal error")
    return None


def _procedure(call: ServerCall) -> str:
    return call.context.method.procedure


def _observed(endpoint: Endpoint, observers: list[Observer]) -> Endpoint:
    """The endpoint for one call whose messages ``observers`` see as they are decoded and
    encoded (built per call: an observer is usually a closure over its interceptor's state)."""
    received = tuple(o.received for o in observers if o.received is not None)
    sent = tuple(o.sent for o in observers if o.sent is not None)
    request_codec, response_codec = endpoint.request_codec, endpoint.response_codec
    return dataclasses.replace(
        endpoint,
        request_codec=_ObservedCodec.wrap(request_codec, received) if received else request_codec,
        response_codec=_ObservedCodec.wrap(response_codec, sent) if sent else response_codec,
    )


MessageSeen = Callable[[Any, int], None]


@dataclasses.dataclass(frozen=True, slots=True)
class _ObservedCodec(MessageCodec[Any]):
    """A codec that shows every message it decodes or encodes to observers, with its size."""

    inner: MessageCodec[Any]
    observers: tuple[MessageSeen, ...]

    @classmethod
    def wrap(cls, inner: MessageCodec[Any], observers: tuple[MessageSeen, ...]) -> _ObservedCodec:
        return cls(
            inner.message_type, inner.full_name, inner.decoders, inner.encoders, inner, observers
        )

    def decode(self, codec: str, data: bytes) -> Any:
        message = self.inner.decode(codec, data)
        for observe in self.observers:
            observe(message, len(data))
        return message

    def encode(self, codec: str, value: Any) -> bytes:
        data = self.inner.encode(codec, value)
        for observe in self.observers:
            observe(value, len(data))
        return data

    def encoder(self, codec: str) -> Callable[[Any], bytes]:
        encode = self.inner.encoder(codec)
        observers = self.observers

        def encode_one(value: Any) -> bytes:
            data = encode(value)
            for observe in observers:
                observe(value, len(data))
            return data

        return encode_one
